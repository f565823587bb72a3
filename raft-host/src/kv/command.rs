//! What clients ask of the key-value store, what they get back, and how a
//! command is stored in a log entry.

use raft_core::LogIndex;
use raft_core::codec::{self, DecodeError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One operation on the replicated map.
///
/// Encoded by variant position: new variants are only ever appended, so logs
/// written by an older build stay readable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KvOp {
    /// Set `key` to `value`, replacing any previous value.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Read `key`. Going through the log makes the read linearizable.
    Get {
        /// The key.
        key: String,
    },
    /// Remove `key` if present.
    Delete {
        /// The key.
        key: String,
    },
    /// Compare-and-swap: set `key` to `new` only if its current value equals
    /// `expected` (`None`: only if the key is absent).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold for the swap to happen.
        expected: Option<String>,
        /// The value to store if it does.
        new: String,
    },
}

/// The result of one [`KvOp`], identical on every replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KvOutput {
    /// The put was applied.
    Put,
    /// The value of the key when the read was applied.
    Get(Option<String>),
    /// The delete was applied; `existed` says whether the key was present.
    Delete {
        /// True if the key held a value that is now gone.
        existed: bool,
    },
    /// The compare-and-swap was applied.
    Cas {
        /// True if the key held `expected` and now holds `new`.
        swapped: bool,
        /// The key's value after the operation: `new` if swapped, otherwise
        /// the unchanged value that did not match.
        current: Option<String>,
    },
    /// A session was registered ([`KvEntry::Register`](super::KvEntry::Register));
    /// its id is the registration's log index.
    Registered {
        /// The new session's id.
        session: u64,
    },
}

// Constructors and display, shared with the linearizability checker in raft-tests.

impl KvOp {
    /// `Put { key, value }`.
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Self {
        KvOp::Put { key: key.into(), value: value.into() }
    }

    /// `Get { key }`.
    pub fn get(key: impl Into<String>) -> Self {
        KvOp::Get { key: key.into() }
    }

    /// `Delete { key }`.
    pub fn delete(key: impl Into<String>) -> Self {
        KvOp::Delete { key: key.into() }
    }

    /// `Cas { key, expected, new }`.
    pub fn cas(key: impl Into<String>, expected: Option<&str>, new: impl Into<String>) -> Self {
        KvOp::Cas { key: key.into(), expected: expected.map(str::to_owned), new: new.into() }
    }

    /// The single key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Put { key, .. } | KvOp::Get { key } | KvOp::Delete { key } | KvOp::Cas { key, .. } => key,
        }
    }

    /// Whether `output` is the right kind of output for this operation.
    pub fn accepts(&self, output: &KvOutput) -> bool {
        matches!(
            (self, output),
            (KvOp::Put { .. }, KvOutput::Put)
                | (KvOp::Get { .. }, KvOutput::Get(_))
                | (KvOp::Delete { .. }, KvOutput::Delete { .. })
                | (KvOp::Cas { .. }, KvOutput::Cas { .. })
        )
    }
}

impl fmt::Display for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOp::Put { key, value } => write!(f, "put({key:?}, {value:?})"),
            KvOp::Get { key } => write!(f, "get({key:?})"),
            KvOp::Delete { key } => write!(f, "delete({key:?})"),
            KvOp::Cas { key, expected, new } => {
                write!(f, "cas({key:?}, expected {}, new {new:?})", OptValue(expected))
            }
        }
    }
}

impl KvOutput {
    /// `Get(value)`.
    pub fn get(value: Option<&str>) -> Self {
        KvOutput::Get(value.map(str::to_owned))
    }

    /// `Delete { existed }`.
    pub fn delete(existed: bool) -> Self {
        KvOutput::Delete { existed }
    }

    /// `Cas { swapped, current }`.
    pub fn cas(swapped: bool, current: Option<&str>) -> Self {
        KvOutput::Cas { swapped, current: current.map(str::to_owned) }
    }
}

impl fmt::Display for KvOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOutput::Put => f.write_str("ok"),
            KvOutput::Get(v) => write!(f, "{}", OptValue(v)),
            KvOutput::Delete { existed } => write!(f, "existed={existed}"),
            KvOutput::Cas { swapped, current } => {
                write!(f, "swapped={swapped}, current={}", OptValue(current))
            }
            KvOutput::Registered { session } => write!(f, "session {session}"),
        }
    }
}

/// Displays `Some(v)` as `"v"` and `None` as `absent`.
pub(crate) struct OptValue<'a>(&'a Option<String>);

impl fmt::Display for OptValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:?}"),
            None => f.write_str("absent"),
        }
    }
}

/// A client's request as stored in the log.
///
/// # Sessions (exactly-once)
///
/// A client numbers its commands `seq` = 1, 2, 3... and has at most one
/// outstanding at a time; it retries the same `(client, seq)` until it gets an
/// answer, then moves on to a higher `seq`. The store remembers, per client,
/// the last applied `seq` and its output, so that a command that reaches the
/// log twice (a retry after a lost answer or a leader change) runs only once:
///
/// * `seq` greater than the last applied one: executed (gaps are allowed: a
///   client that gave up on a command may move on);
/// * `seq` equal to it: not executed again; the cached output is returned;
/// * `seq` lower (or 0): not executed; [`KvError::Stale`](crate::kv::KvError::Stale).
///
/// Reads ([`KvOp::Get`]) are never cached and do not move `seq`: a read is
/// executed whenever it is applied (unless its `seq` is below the last
/// applied one), which is linearizable for a retry too.
///
/// A `KvCommand` opens its session implicitly; such sessions share the
/// table, its bound and its expiry with registered sessions
/// ([`KvEntry`](super::KvEntry)), but carry no time of their own.
///
/// Client ids must be unique among live clients (e.g. random 64-bit values).
/// A retry must carry the same `op`; the store does not compare them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvCommand {
    /// The client's id.
    pub client: u64,
    /// The client's sequence number for this command, from 1.
    pub seq: u64,
    /// What to do.
    pub op: KvOp,
}

/// Why a command produced no [`KvOutput`]. Like outputs, errors are the same
/// on every replica, and the state changes (or not) identically.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// The client already moved past `seq`; the command was not executed and
    /// its original output is no longer kept.
    Stale {
        /// The client.
        client: u64,
        /// The command's sequence number.
        seq: u64,
        /// The client's last applied sequence number.
        last_seq: u64,
    },
    /// The entry's bytes are not a [`KvCommand`]. The entry counts as applied
    /// and changed nothing.
    Malformed {
        /// The entry's index.
        index: LogIndex,
        /// What the decoder said.
        reason: String,
    },
    /// The index was at or below the store's last applied index; nothing was
    /// done. Only a misbehaving host causes this.
    AlreadyApplied {
        /// The index given.
        index: LogIndex,
        /// The store's last applied index.
        last_applied: LogIndex,
    },
    /// The command's session was never registered, or has expired (idle
    /// too long, or expired to keep the table within its bound). Nothing was
    /// executed; register a new session.
    UnknownSession {
        /// The session id.
        session: u64,
    },
    /// The command's sequence number is more than
    /// [`SEQ_WINDOW`](super::SEQ_WINDOW) past the session's last applied
    /// one; nothing was executed.
    SeqOutOfWindow {
        /// The session id.
        session: u64,
        /// The command's sequence number.
        seq: u64,
        /// The session's last applied sequence number.
        last_seq: u64,
    },
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::Stale { client, seq, last_seq } => {
                write!(f, "stale command: client {client} seq {seq} is below its last applied seq {last_seq}")
            }
            KvError::Malformed { index, reason } => write!(f, "entry {index} is not a key-value command: {reason}"),
            KvError::AlreadyApplied { index, last_applied } => {
                write!(f, "entry {index} is at or below the last applied index {last_applied}")
            }
            KvError::UnknownSession { session } => {
                write!(f, "unknown or expired session {session}; register a new session")
            }
            KvError::SeqOutOfWindow { session, seq, last_seq } => write!(
                f,
                "session {session}: seq {seq} is more than {} past the last applied seq {last_seq}",
                super::SEQ_WINDOW
            ),
        }
    }
}

impl std::error::Error for KvError {}

/// Encodes a command as the bytes of a `Payload::Command`.
pub fn encode_command(cmd: &KvCommand) -> Vec<u8> {
    // Encoding only fails for values that serde cannot describe with a known
    // length; a command (integers, strings, an enum) always can. Should it
    // ever fail, the empty payload decodes as `Malformed` on every replica.
    codec::encode_value(cmd).unwrap_or_default()
}

/// Decodes the bytes of a `Payload::Command`. Never panics; any defect,
/// including trailing bytes, is an error.
pub fn decode_command(bytes: &[u8]) -> Result<KvCommand, DecodeError> {
    codec::decode_value(bytes)
}
