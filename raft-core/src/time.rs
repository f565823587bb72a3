//! Owned time types. The core never reads a clock: every input carries `now`.
//!
//! [`Instant`] and [`Duration`] count microseconds in a `u64` (about 584,000
//! years), so arithmetic saturates instead of overflowing. Adapters map their
//! runtime's clock onto these types (for std, `raft_host::StdClock`).

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A span of time in microseconds.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// A duration of `us` microseconds.
    pub const fn from_micros(us: u64) -> Duration {
        Duration(us)
    }

    /// A duration of `ms` milliseconds (saturating).
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms.saturating_mul(1_000))
    }

    /// A duration of `s` seconds (saturating).
    pub const fn from_secs(s: u64) -> Duration {
        Duration(s.saturating_mul(1_000_000))
    }

    /// Whole microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// `self * n`, saturating.
    pub const fn saturating_mul(self, n: u64) -> Duration {
        Duration(self.0.saturating_mul(n))
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}ms", self.0 / 1_000, self.0 % 1_000)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Duration {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_sub(rhs.0))
    }
}

impl From<core::time::Duration> for Duration {
    fn from(d: core::time::Duration) -> Duration {
        Duration(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> core::time::Duration {
        core::time::Duration::from_micros(d.0)
    }
}

/// A point in time: microseconds since an origin chosen by the host.
///
/// Only differences between instants of one host mean anything; the origin
/// never leaves the node.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// The instant `us` microseconds after the origin.
    pub const fn from_micros(us: u64) -> Instant {
        Instant(us)
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}.{:03}ms", self.0 / 1_000, self.0 % 1_000)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturates at the origin.
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(rhs.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_micros(u64::MAX - 1);
        assert_eq!((t + Duration::from_secs(1)).as_micros(), u64::MAX);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(Instant::from_micros(5) - Duration::from_micros(9), Instant::ZERO);
        assert_eq!(Duration::from_millis(3) - Duration::from_millis(5), Duration::ZERO);
        assert_eq!(Duration::from_secs(u64::MAX).as_micros(), u64::MAX);
    }

    #[test]
    fn arithmetic_below_the_bounds_is_exact() {
        let d = Duration::from_micros(2_500);
        assert_eq!(d + Duration::from_micros(700), Duration::from_micros(3_200));
        assert_eq!(d - Duration::from_micros(700), Duration::from_micros(1_800));
        assert_eq!(d.saturating_mul(3), Duration::from_micros(7_500));
        let t = Instant::from_micros(10_000);
        assert_eq!(t + d, Instant::from_micros(12_500));
        assert_eq!(t - d, Instant::from_micros(7_500));
        let mut u = t;
        u += d;
        assert_eq!(u - t, d);
        assert_eq!(t.saturating_since(u), Duration::ZERO);
    }

    #[test]
    fn as_millis_rounds_down() {
        assert_eq!(Duration::from_micros(2_999).as_millis(), 2);
        assert_eq!(Duration::from_micros(3_000).as_millis(), 3);
        assert_eq!(Duration::from_millis(110).as_millis(), 110);
        assert_eq!(Duration::from_micros(999).as_millis(), 0);
    }

    #[test]
    fn conversions_round_trip() {
        let d = Duration::from_millis(110);
        let c: core::time::Duration = d.into();
        assert_eq!(c.as_millis(), 110);
        assert_eq!(Duration::from(c), d);
        assert_eq!(Instant::from_micros(1_500) - Instant::from_micros(500), Duration::from_millis(1));
    }
}
