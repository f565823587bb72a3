//! The replicated key-value state machine: pure, deterministic, no I/O.
//!
//! A client wraps a [`KvOp`] in a [`KvCommand`] (its id and sequence number,
//! for exactly-once retries), proposes [`encode_command`]'s bytes, and every
//! replica's [`KvStore`] applies the committed entry through
//! [`StateMachine::apply`](crate::StateMachine::apply), yielding the same
//! [`KvOutput`] (or [`KvError`]) everywhere.

mod command;
mod store;
#[cfg(test)]
mod tests;

pub use command::{KvCommand, KvError, KvOp, KvOutput, decode_command, encode_command};
pub use store::KvStore;
