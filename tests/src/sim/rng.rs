//! The simulator's only source of randomness: raft-core's seeded
//! [`SplitMix64`], the same generator the nodes draw their timeouts from.
//! Every fault, delay and client choice comes from a stream of the run's seed.

pub use raft_core::rng::{SplitMix64, mix64};

/// The simulator's generator (an alias kept for the many call sites).
pub type SimRng = SplitMix64;
