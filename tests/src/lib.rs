//! Test support for the raft workspace: the deterministic cluster simulator
//! ([`sim`]), which drives `raft-core` nodes through its public API only, and
//! the linearizability checker for key-value histories ([`linearizability`]),
//! and the soak runner behind `sim soak` ([`soak`]).
pub mod linearizability;
pub mod sim;
pub mod soak;
pub mod wait;
