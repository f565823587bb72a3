//! Simulator and test support for raft-core.
pub mod linearizability;
