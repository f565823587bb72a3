//! Per-node clocks that drift from the simulator's virtual time.
//!
//! The simulator's virtual time is the truth: the network, the disks and the
//! clients run on it. Each node sees its own local time instead, which runs
//! at `1 + ppm / 1,000,000` of virtual time (`ppm` may be negative). A rate
//! change takes effect from the moment it is made and keeps the local clock
//! continuous and monotonic. Node timers are set in local time; the simulator
//! fires them at the first virtual instant whose local time has reached them.

use raft_core::Instant;

/// Parts per million of the rate `1.0`.
const MILLION: u128 = 1_000_000;

/// Slowest rate a clock may run at: `-999,999` ppm (one millionth of real speed).
pub const MIN_PPM: i64 = -999_999;

/// A node's clock: a linear map from virtual time to local time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Virtual time of the latest rate change.
    base_virtual: u64,
    /// Local time at that moment.
    base_local: u64,
    /// Local microseconds per million virtual microseconds.
    rate: u64,
    ppm: i64,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new(0)
    }
}

impl Clock {
    /// A clock reading local time `0` at virtual time `0`, running at `ppm`.
    ///
    /// Panics if `ppm < MIN_PPM`.
    pub fn new(ppm: i64) -> Clock {
        Clock { base_virtual: 0, base_local: 0, rate: rate_of(ppm), ppm }
    }

    /// The drift rate in parts per million.
    pub fn ppm(&self) -> i64 {
        self.ppm
    }

    /// The local time at virtual time `t` (not earlier than the latest rate change).
    pub fn local(&self, t: Instant) -> Instant {
        let since = u128::from(t.as_micros().saturating_sub(self.base_virtual));
        let local = u128::from(self.base_local) + since * u128::from(self.rate) / MILLION;
        Instant::from_micros(u64::try_from(local).unwrap_or(u64::MAX))
    }

    /// The first virtual instant at which the local time reads `local` or
    /// more (the latest rate change if it already did then).
    pub fn virtual_at(&self, local: Instant) -> Instant {
        let ahead = u128::from(local.as_micros().saturating_sub(self.base_local));
        let since = (ahead * MILLION).div_ceil(u128::from(self.rate));
        let t = u128::from(self.base_virtual) + since;
        Instant::from_micros(u64::try_from(t).unwrap_or(u64::MAX))
    }

    /// From virtual time `now` on, runs at `ppm`.
    ///
    /// Panics if `ppm < MIN_PPM`.
    pub fn set_rate(&mut self, now: Instant, ppm: i64) {
        let local = self.local(now);
        *self = Clock { base_virtual: now.as_micros(), base_local: local.as_micros(), rate: rate_of(ppm), ppm };
    }
}

fn rate_of(ppm: i64) -> u64 {
    assert!(ppm >= MIN_PPM, "a clock rate of {ppm} ppm would stop or reverse time");
    (1_000_000 + ppm) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    #[test]
    fn a_fast_clock_runs_ahead_and_timers_fire_when_it_reaches_them() {
        let c = Clock::new(500_000); // 1.5x
        assert_eq!(c.local(at(1_000_000)), at(1_500_000));
        assert_eq!(c.virtual_at(at(1_500_000)), at(1_000_000));
        // A deadline between two local ticks fires at the first virtual microsecond past it.
        let t = c.virtual_at(at(1_000));
        assert!(c.local(t) >= at(1_000) && c.local(t - raft_core::Duration::from_micros(1)) < at(1_000));
    }

    #[test]
    fn rate_changes_keep_local_time_continuous() {
        let mut c = Clock::new(0);
        assert_eq!(c.local(at(1_000)), at(1_000));
        c.set_rate(at(1_000), -500_000); // half speed from now
        assert_eq!(c.local(at(1_000)), at(1_000));
        assert_eq!(c.local(at(3_000)), at(2_000));
        assert_eq!(c.virtual_at(at(2_000)), at(3_000));
        assert_eq!(c.virtual_at(at(500)), at(1_000), "a past local time maps to the change");
        c.set_rate(at(3_000), 1_000_000);
        assert_eq!(c.local(at(4_000)), at(4_000));
        assert_eq!(c.ppm(), 1_000_000);
    }

    #[test]
    fn every_virtual_instant_maps_to_a_local_one_that_does_not_go_back() {
        let c = Clock::new(-333_333);
        let mut last = Instant::ZERO;
        for us in 0..5_000 {
            let l = c.local(at(us));
            assert!(l >= last);
            assert!(c.local(c.virtual_at(l)) >= l);
            last = l;
        }
    }
}
