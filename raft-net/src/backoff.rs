//! Reconnect delays: capped exponential backoff with "equal jitter", drawn
//! from a deterministic per-connection generator (no global RNG), so that
//! peers that lost each other at the same moment do not retry in lockstep.

use raft_core::rng::SplitMix64;
use std::time::Duration;

/// Connections that stayed up at least this long start over at the minimum delay.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(1);

/// The delay before the next connection attempt.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// Delays from `min` doubling up to `max`; `seed` picks the jitter sequence.
    pub(crate) fn new(seed: u64, min: Duration, max: Duration) -> Backoff {
        Backoff { min, max: max.max(min), attempt: 0, rng: SplitMix64::new(seed) }
    }

    /// The next delay: `d = min(max, min * 2^attempt)`, then uniform in
    /// `[d/2, d]`. Never above `max`, never below `min / 2`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let shift = self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let d = self.min.saturating_mul(1 << shift).min(self.max);
        let half = d / 2;
        let span = (d - half).as_micros() as u64;
        let jitter = self.rng.between(0, span);
        half + Duration::from_micros(jitter)
    }

    /// Starts over at the minimum delay.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let (min, max) = (Duration::from_millis(20), Duration::from_millis(1000));
        let mut b = Backoff::new(7, min, max);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let cap = min.saturating_mul(1 << i.min(20)).min(max);
            assert!(*d <= cap && *d >= cap / 2, "attempt {i}: {d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
        assert!(delays[11] >= max / 2);
        b.reset();
        assert!(b.next_delay() <= min);
        // Deterministic per seed, different across seeds.
        let mut again = Backoff::new(7, min, max);
        assert_eq!((0..12).map(|_| again.next_delay()).collect::<Vec<_>>(), delays);
        let mut other = Backoff::new(8, min, max);
        assert_ne!((0..12).map(|_| other.next_delay()).collect::<Vec<_>>(), delays);
    }
}
