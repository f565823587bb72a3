//! Messages between nodes (paper Figure 2, plus pre-vote, leadership
//! transfer and ReadIndex from Ongaro's dissertation), as values.
//! [`crate::codec`] turns them into bytes.

use crate::types::{Bytes, Entry, LogIndex, Term};
use alloc::boxed::Box;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One message. The sender's term is common to every kind, so the term rules
/// (paper §5.1: adopt a higher term, reject a lower one) are applied once,
/// before the body is looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender's current term. For a pre-vote request, the term the
    /// sender would campaign in (its term + 1), which no one adopts.
    pub term: Term,
    /// What the message says.
    pub body: Body,
}

/// The kinds of message. Each carries a struct of its own. New kinds are
/// only ever appended, so the wire format of existing ones never changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A candidate asks for a vote (paper §5.2, §5.4.1), or a would-be
    /// candidate asks whether it would get one (pre-vote).
    RequestVote(RequestVote),
    /// The answer to `RequestVote`.
    RequestVoteResponse(VoteResponse),
    /// Log replication and heartbeat (paper §5.3). Heartbeats carry no entries.
    AppendEntries(AppendEntries),
    /// The answer to `AppendEntries`.
    AppendEntriesResponse(AppendResponse),
    /// One chunk of the leader's snapshot (paper §7).
    InstallSnapshot(InstallSnapshot),
    /// The answer to `InstallSnapshot`.
    InstallSnapshotResponse(SnapshotResponse),
    /// The leader hands its leadership to the recipient: campaign now,
    /// without a pre-vote (dissertation §3.10).
    TimeoutNow,
    /// A follower asks the leader for a read index (dissertation §6.4).
    ReadIndex(ReadIndexRequest),
    /// The leader's answer to `ReadIndex`.
    ReadIndexResponse(ReadIndexResponse),
    /// A follower forwards a client's command to the leader.
    Forward(ForwardProposal),
    /// The leader's answer to `Forward`.
    ForwardResponse(ForwardResponse),
}

/// A command a follower forwards to its leader on behalf of a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardProposal {
    /// The follower's id for the proposal, echoed in the response.
    pub id: u64,
    /// The command.
    pub command: Bytes,
}

/// The leader's answer to [`ForwardProposal`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardResponse {
    /// The request's id.
    pub id: u64,
    /// What the leader did with it.
    pub outcome: ForwardOutcome,
}

/// What a leader did with a forwarded command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardOutcome {
    /// Appended at `index` in the term of the response.
    Appended {
        /// Its index.
        index: LogIndex,
    },
    /// Not appended: the sender is not (or no longer) the leader.
    NotLeader,
    /// Not appended: a leadership transfer is under way.
    TransferInProgress,
    /// Not appended: larger than the leader's `max_entry_bytes`.
    TooLarge,
}

/// `RequestVote`: the candidate's last log position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// Index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// Term of the candidate's last log entry.
    pub last_log_term: Term,
    /// A pre-vote (dissertation §9.6): no one changes term or records a vote.
    pub pre_vote: bool,
    /// The election follows a leadership transfer (`TimeoutNow`): voters
    /// grant even while they still hear from a leader.
    pub transfer: bool,
}

/// The answer to [`RequestVote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// True if the (pre-)vote was granted.
    pub granted: bool,
    /// Answers a pre-vote.
    pub pre_vote: bool,
}

/// `AppendEntries`: entries to store after `prev_log_index`, and the commit index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// Index of the entry just before `entries`.
    pub prev_log_index: LogIndex,
    /// Term of that entry.
    pub prev_log_term: Term,
    /// Entries to store, contiguous from `prev_log_index + 1`.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
    /// The leader's heartbeat round when it sent this; echoed in the
    /// response. A response to round `r` proves the follower still
    /// recognised this leader after round `r` began (ReadIndex, check-quorum).
    pub round: u64,
}

/// A follower's answer to `AppendEntries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The `round` of the request answered.
    pub round: u64,
    /// Whether the entries were stored.
    pub result: AppendResult,
}

/// Whether the follower stored the entries of an `AppendEntries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
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

/// One chunk of the leader's snapshot, for a follower whose next entry the
/// leader has compacted away. Chunks are sent in order, one at a time; the
/// follower can ask to resume at any offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of that entry.
    pub snapshot_term: Term,
    /// Where `data` starts within the snapshot.
    pub offset: u64,
    /// The snapshot's total size in bytes.
    pub total_len: u64,
    /// The chunk.
    pub data: Bytes,
    /// CRC-32 of the whole snapshot: the follower checks the assembled
    /// bytes against it before installing them.
    pub checksum: u32,
    /// The configuration in effect at `index` (boxed, as everywhere outside
    /// the node: inline, its four sets would make every [`Body`] three times
    /// larger; the encoding is the same).
    pub membership: Box<crate::Membership>,
    /// The leader's heartbeat round, as in [`AppendEntries::round`].
    pub round: u64,
}

/// The answer to [`InstallSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    /// The `index` of the snapshot being answered.
    pub index: LogIndex,
    /// The offset the follower wants next (0: start over).
    pub next_offset: u64,
    /// The follower has the whole snapshot durably (or is already past it).
    pub done: bool,
    /// The follower will not take the snapshot: it exceeds its
    /// `Config::max_snapshot_bytes`. The leader stops sending it.
    pub too_large: bool,
    /// The `round` of the request answered.
    pub round: u64,
}

/// A follower's request for a read index, on behalf of one of its reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// The follower's id for the read, echoed in the response.
    pub id: u64,
}

/// The leader's answer to [`ReadIndexRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexResponse {
    /// The request's id.
    pub id: u64,
    /// The read index, once the leader confirmed its leadership after the
    /// request arrived; `None` if it could not (it is not, or no longer, leader).
    pub index: Option<LogIndex>,
}

impl Body {
    /// A short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::RequestVote(r) if r.pre_vote => "PreVote",
            Body::RequestVote(_) => "RequestVote",
            Body::RequestVoteResponse(r) if r.pre_vote => "PreVoteResponse",
            Body::RequestVoteResponse(_) => "RequestVoteResponse",
            Body::AppendEntries(_) => "AppendEntries",
            Body::AppendEntriesResponse(_) => "AppendEntriesResponse",
            Body::InstallSnapshot(_) => "InstallSnapshot",
            Body::InstallSnapshotResponse(_) => "InstallSnapshotResponse",
            Body::TimeoutNow => "TimeoutNow",
            Body::ReadIndex(_) => "ReadIndex",
            Body::ReadIndexResponse(_) => "ReadIndexResponse",
            Body::Forward(_) => "Forward",
            Body::ForwardResponse(_) => "ForwardResponse",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_tells_a_pre_vote_from_a_vote() {
        let request = |pre_vote| {
            Body::RequestVote(RequestVote {
                last_log_index: LogIndex(1),
                last_log_term: Term(1),
                pre_vote,
                transfer: false,
            })
        };
        let response = |pre_vote| Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote });
        assert_eq!(request(true).kind(), "PreVote");
        assert_eq!(request(false).kind(), "RequestVote");
        assert_eq!(response(true).kind(), "PreVoteResponse");
        assert_eq!(response(false).kind(), "RequestVoteResponse");
        assert_eq!(Body::TimeoutNow.kind(), "TimeoutNow");
    }
}
