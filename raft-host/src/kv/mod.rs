//! The replicated key-value state machine: pure, deterministic, no I/O.
//!
//! A client registers a session through the log ([`KvEntry::Register`]),
//! wraps each [`KvOp`] in a [`KvEntry::Command`] of that session (or, in the
//! original format, in a [`KvCommand`] with an id of its own), proposes
//! [`encode_entry`]'s (or [`encode_command`]'s) bytes, and every replica's
//! [`KvStore`] applies the committed entry through
//! [`StateMachine::apply`](crate::StateMachine::apply), yielding the same
//! [`KvOutput`] (or [`KvError`]) everywhere.

mod command;
mod entry;
mod session;
#[cfg(test)]
mod session_tests;
mod store;
#[cfg(test)]
mod tests;

pub use command::{KvCommand, KvError, KvOp, KvOutput, decode_command, encode_command};
pub use entry::{AnyEntry, ENTRY_V2_TAG, KvEntry, decode_entry, encode_entry};
pub use session::{SEQ_WINDOW, SESSION_OVERHEAD_BYTES, SessionLimits};
pub use store::KvStore;
