//! Log entries of registered client sessions (format 2), beside the
//! original [`KvCommand`] entries, which stay readable.

use super::command::{KvCommand, KvOp, decode_command};
use super::session::SessionLimits;
use raft_core::codec::{self, DecodeError};
use serde::{Deserialize, Serialize};

/// First byte of a format-2 entry. No [`KvCommand`] encoding starts with it:
/// a command starts with its client id, a varint, and `0xFF` is not a
/// varint prefix.
pub const ENTRY_V2_TAG: u8 = 0xFF;

/// A format-2 log entry: what a leader proposes for a registered session
/// (the dissertation's RegisterClient, §6.3). Every entry carries the
/// leader's clock (milliseconds since the Unix epoch) when it proposed it:
/// the store's log time is the largest such timestamp applied, and sessions
/// expire by it, so all replicas expire them alike.
///
/// Encoded by variant position after [`ENTRY_V2_TAG`]; variants are only
/// ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvEntry {
    /// Opens a session whose id is this entry's log index, and makes
    /// `limits` the store's session limits.
    Register {
        /// The leader's clock.
        time_ms: u64,
        /// The leader's session limits.
        limits: SessionLimits,
    },
    /// A command in session `session` (see [`KvStore`](super::KvStore) for
    /// the rules).
    Command {
        /// The session id (the index of its registration).
        session: u64,
        /// The command's sequence number in the session, from 1.
        seq: u64,
        /// The leader's clock.
        time_ms: u64,
        /// What to do.
        op: KvOp,
    },
}

/// A decoded command entry of either format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyEntry {
    /// A format-1 command with a client-chosen id (an implicit session).
    Legacy(KvCommand),
    /// A format-2 entry.
    V2(KvEntry),
}

/// Encodes a format-2 entry as the bytes of a `Payload::Command`.
pub fn encode_entry(entry: &KvEntry) -> Vec<u8> {
    // Always encodes (integers, strings, enums); see `encode_command`.
    let mut out = vec![ENTRY_V2_TAG];
    out.extend_from_slice(&codec::encode_value(entry).unwrap_or_default());
    out
}

/// Decodes the bytes of a `Payload::Command` of either format. Never
/// panics; any defect, including trailing bytes, is an error.
pub fn decode_entry(bytes: &[u8]) -> Result<AnyEntry, DecodeError> {
    match bytes.split_first() {
        Some((&ENTRY_V2_TAG, rest)) => codec::decode_value(rest).map(AnyEntry::V2),
        _ => decode_command(bytes).map(AnyEntry::Legacy),
    }
}
