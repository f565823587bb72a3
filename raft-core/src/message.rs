//! Messages between nodes (paper Figure 2), as values. [`crate::codec`] turns them into bytes.

use crate::types::{Bytes, Entry, LogIndex, Term};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One message. The sender's term is common to every kind, so the term rules
/// (paper §5.1: adopt a higher term, reject a lower one) are applied once,
/// before the body is looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender's current term.
    pub term: Term,
    /// What the message says.
    pub body: Body,
}

/// The kinds of message. New kinds are only ever appended, so the wire format
/// of existing ones never changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Body {
    /// A candidate asks for a vote (paper §5.2, §5.4.1).
    RequestVote {
        /// Index of the candidate's last log entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
    },
    /// The answer to `RequestVote`.
    RequestVoteResponse {
        /// True if the vote was granted.
        granted: bool,
    },
    /// Log replication and heartbeat (paper §5.3). Heartbeats carry no entries.
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// Entries to store, contiguous from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: LogIndex,
    },
    /// The answer to `AppendEntries`.
    AppendEntriesResponse(AppendResponse),
    /// One chunk of the leader's snapshot, for a follower whose next entry
    /// the leader has compacted away (paper §7). Chunks are sent in order, one
    /// at a time; the follower can ask to resume at any offset.
    InstallSnapshot {
        /// The last index the snapshot covers.
        index: LogIndex,
        /// The term of that entry.
        snapshot_term: Term,
        /// Where `data` starts within the snapshot.
        offset: u64,
        /// The snapshot's total size in bytes.
        total_len: u64,
        /// The chunk.
        data: Bytes,
    },
    /// The answer to `InstallSnapshot`.
    InstallSnapshotResponse {
        /// The `index` of the snapshot being answered.
        index: LogIndex,
        /// The offset the follower wants next (0: start over).
        next_offset: u64,
        /// The follower has the whole snapshot durably (or is already past it).
        done: bool,
    },
}

/// A follower's answer to `AppendEntries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AppendResponse {
    /// The follower's log matches the leader's up to and including `match_index`,
    /// and those entries are durable on the follower.
    Success {
        /// The last index known to match.
        match_index: LogIndex,
    },
    /// The consistency check failed at `prev_log_index`. The hint lets the
    /// leader skip a whole term of entries per round trip (fast backtracking).
    Reject {
        /// The `prev_log_index` of the rejected request (lets the leader drop stale rejects).
        prev_log_index: LogIndex,
        /// The follower's last log index.
        last_log_index: LogIndex,
        /// The term of the follower's entry at `prev_log_index`, if it has one.
        conflict_term: Option<Term>,
        /// The first index of `conflict_term` in the follower's log, or
        /// `last_log_index + 1` if the follower's log is too short.
        conflict_index: LogIndex,
    },
}

impl Body {
    /// A short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::RequestVote { .. } => "RequestVote",
            Body::RequestVoteResponse { .. } => "RequestVoteResponse",
            Body::AppendEntries { .. } => "AppendEntries",
            Body::AppendEntriesResponse(_) => "AppendEntriesResponse",
            Body::InstallSnapshot { .. } => "InstallSnapshot",
            Body::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
        }
    }
}
