//! The wall clock, mapped onto raft-core's time types. The core never reads a
//! clock; hosts read this one and pass `now` with every input.

use raft_core::{Duration, Instant};

/// Maps `std::time::Instant` onto the core's [`Instant`] against a fixed origin.
#[derive(Debug, Clone, Copy)]
pub struct StdClock {
    origin: std::time::Instant,
}

impl StdClock {
    /// A clock whose origin is the current moment.
    pub fn new() -> StdClock {
        StdClock { origin: std::time::Instant::now() }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.to_core(std::time::Instant::now())
    }

    /// Converts a std instant (clamped to the origin if earlier).
    pub fn to_core(&self, t: std::time::Instant) -> Instant {
        Instant::from_micros(Duration::from(t.saturating_duration_since(self.origin)).as_micros())
    }

    /// Converts back to a std instant.
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        self.origin + std::time::Duration::from_micros(t.as_micros())
    }
}

impl Default for StdClock {
    fn default() -> Self {
        StdClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_clamps_before_the_origin() {
        let before = std::time::Instant::now();
        let c = StdClock::new();
        assert_eq!(c.to_core(before), Instant::ZERO);
        let later = c.to_std(Instant::from_micros(1_500));
        assert_eq!(c.to_core(later), Instant::from_micros(1_500));
    }
}
