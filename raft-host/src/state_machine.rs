//! The interface between committed log entries and the application.

use raft_core::codec::DecodeError;
use raft_core::{Entry, LogIndex};

/// A deterministic replicated state machine, fed committed entries in log order.
///
/// # Contract
///
/// * **Determinism.** Given the same sequence of entries (and the same
///   snapshot to start from), every replica reaches the same state and
///   returns the same outputs. No clock, randomness or I/O may influence
///   `apply`.
/// * **Total.** `apply` never panics on entry contents: bytes that are not a
///   valid command are applied as a no-op that returns an error output, the
///   same on every replica.
/// * **Order.** Entries are given in increasing index order. An entry at or
///   below [`last_applied`](StateMachine::last_applied) is ignored (returns
///   `None`), which makes replaying entries after a restore harmless.
pub trait StateMachine {
    /// The commands applications propose. Hosts encode them with
    /// [`raft_core::codec::encode_value`] (raft-net's `Handle::propose`);
    /// [`apply`](StateMachine::apply) decodes the entry's bytes with
    /// [`raft_core::codec::decode_value`] (applying undecodable bytes as a
    /// no-op with an error output). Raw byte commands stay possible: a host
    /// may propose any bytes that `apply` understands.
    type Command: serde::Serialize;

    /// What applying one command yields (returned to the proposing client).
    type Output;

    /// Applies one committed entry and advances `last_applied` to its index.
    /// Returns `None` for entries that carry no command (`Payload::Noop`) and
    /// for entries at or below `last_applied`.
    fn apply(&mut self, entry: &Entry) -> Option<Self::Output>;

    /// Serializes the whole state, including `last_applied` and anything that
    /// influences future outputs. Equal states give equal bytes.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with one produced by [`snapshot`](StateMachine::snapshot).
    /// On error the state is unchanged.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError>;

    /// The index of the last entry reflected in the state (0: none).
    fn last_applied(&self) -> LogIndex;
}
