//! How long a client waits for one attempt: a retransmission timeout from
//! the round trips it has observed (RFC 6298's smoothed estimate and
//! variation), doubled after each unanswered attempt, instead of a fixed
//! share of the command's timeout. A dead server so costs about one round
//! trip's worth of waiting, not hundreds of milliseconds.

use std::time::Duration;

/// The wait before any round trip was observed.
const INITIAL: Duration = Duration::from_millis(50);
/// Never wait less: below this, scheduling noise alone would look like loss.
const MIN: Duration = Duration::from_millis(10);

/// Round-trip estimate of one client.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimate {
    /// Smoothed round trip and its mean deviation, once one was observed.
    smoothed: Option<(Duration, Duration)>,
    /// Unanswered attempts in a row since the last answer.
    backoff: u32,
    /// The longest wait for one attempt.
    max: Duration,
}

impl RttEstimate {
    /// An estimate whose waits never exceed `max`.
    pub(crate) fn new(max: Duration) -> RttEstimate {
        RttEstimate { smoothed: None, backoff: 0, max: max.max(MIN) }
    }

    /// An attempt was answered after `sample`.
    pub(crate) fn observe(&mut self, sample: Duration) {
        self.backoff = 0;
        self.smoothed = Some(match self.smoothed {
            None => (sample, sample / 2),
            Some((srtt, var)) => {
                let err = srtt.abs_diff(sample);
                (srtt * 7 / 8 + sample / 8, var * 3 / 4 + err / 4)
            }
        });
    }

    /// Some node answered, though not the latest attempt (a late answer, to
    /// an earlier attempt of the command): no round trip to sample, but
    /// the cluster answers, so the next attempt need not wait longer than
    /// the estimate. Without this, the misses of a failover (attempts
    /// forwarded to a dead leader) left the wait doubled four or five times
    /// after the new leader was up: 160-320 ms spent on one attempt.
    pub(crate) fn heard(&mut self) {
        self.backoff = 0;
    }

    /// An attempt went unanswered: the next one waits twice as long.
    pub(crate) fn missed(&mut self) {
        self.backoff = self.backoff.saturating_add(1).min(16);
    }

    /// How long to wait for the next attempt's answer.
    pub(crate) fn timeout(&self) -> Duration {
        let base = match self.smoothed {
            None => INITIAL,
            Some((srtt, var)) => srtt + 4 * var,
        };
        base.max(MIN).saturating_mul(1 << self.backoff).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_observed_round_trips() {
        let mut r = RttEstimate::new(Duration::from_millis(500));
        assert_eq!(r.timeout(), INITIAL);
        for _ in 0..50 {
            r.observe(Duration::from_millis(4));
        }
        // Steady 4 ms trips: the wait settles near them (above the floor).
        assert!(r.timeout() < Duration::from_millis(12), "{:?}", r.timeout());
        for _ in 0..50 {
            r.observe(Duration::from_millis(40));
        }
        assert!(r.timeout() >= Duration::from_millis(40) && r.timeout() < Duration::from_millis(80));
    }

    #[test]
    fn misses_back_off_up_to_the_cap_and_an_answer_resets() {
        let mut r = RttEstimate::new(Duration::from_millis(200));
        r.observe(Duration::from_micros(300));
        assert_eq!(r.timeout(), MIN, "a loopback trip waits the floor");
        r.missed();
        assert_eq!(r.timeout(), MIN * 2);
        for _ in 0..40 {
            r.missed();
        }
        assert_eq!(r.timeout(), Duration::from_millis(200));
        r.observe(Duration::from_micros(300));
        assert_eq!(r.timeout(), MIN);
    }

    #[test]
    fn a_late_answer_ends_the_backoff_without_a_sample() {
        let mut r = RttEstimate::new(Duration::from_millis(500));
        r.observe(Duration::from_millis(4));
        let settled = r.timeout();
        for _ in 0..5 {
            r.missed();
        }
        assert!(r.timeout() >= settled * 16);
        r.heard();
        assert_eq!(r.timeout(), settled, "back to the estimate, which is unchanged");
    }
}
