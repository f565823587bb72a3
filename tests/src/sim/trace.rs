//! A bounded ring buffer of readable simulator events, plus a digest of all of them.
//!
//! Every event the simulator traces is kept structurally (cheap to record) and
//! formatted only when shown, e.g.
//! `t=1234.500ms n2 -> n3 AppendEntries{term 3, prev i4/t2, 2 entries, commit 4}`.
//! The digest covers every event ever traced, not just the ones still in the
//! buffer, so two runs can be compared for determinism cheaply.

use raft_core::{
    AppendEntries, AppendResponse, AppendResult, Body, InstallSnapshot, Instant, LogIndex, Membership, Message, NodeId,
    RequestVote, Role, SnapshotResponse, Term, TransferOutcome, VoteResponse, Write,
};
use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A message reduced to what a trace line shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MsgSummary {
    /// `RequestVote`.
    RequestVote {
        /// Sender's term.
        term: Term,
        /// Candidate's last log index.
        last_index: LogIndex,
        /// Candidate's last log term.
        last_term: Term,
        /// A pre-vote.
        pre_vote: bool,
    },
    /// `RequestVoteResponse`.
    Vote {
        /// Sender's term.
        term: Term,
        /// Whether the vote was granted.
        granted: bool,
        /// Answers a pre-vote.
        pre_vote: bool,
    },
    /// `AppendEntries`.
    Append {
        /// Sender's term.
        term: Term,
        /// Index before the entries.
        prev_index: LogIndex,
        /// Term of that entry.
        prev_term: Term,
        /// Number of entries carried.
        entries: usize,
        /// Leader's commit index.
        commit: LogIndex,
    },
    /// A successful `AppendEntriesResponse`.
    AppendOk {
        /// Sender's term.
        term: Term,
        /// Acknowledged match index.
        match_index: LogIndex,
    },
    /// A rejecting `AppendEntriesResponse`.
    AppendReject {
        /// Sender's term.
        term: Term,
        /// The rejected request's previous index.
        prev_index: LogIndex,
        /// The follower's last index.
        last_index: LogIndex,
        /// Hinted conflicting term.
        conflict_term: Option<Term>,
        /// Hinted first index of that term.
        conflict_index: LogIndex,
    },
    /// `InstallSnapshot` (one chunk).
    Snapshot {
        /// Sender's term.
        term: Term,
        /// Last index the snapshot covers.
        index: LogIndex,
        /// Term of that entry.
        snapshot_term: Term,
        /// Chunk offset.
        offset: u64,
        /// Chunk length.
        len: usize,
        /// Snapshot size.
        total: u64,
    },
    /// `InstallSnapshotResponse`.
    SnapshotAck {
        /// Sender's term.
        term: Term,
        /// The snapshot answered.
        index: LogIndex,
        /// Offset wanted next.
        next_offset: u64,
        /// Whole snapshot durable.
        done: bool,
    },
    /// A message kind this simulator does not know in detail.
    Other {
        /// Sender's term.
        term: Term,
        /// `Body::kind()`.
        kind: &'static str,
    },
}

impl MsgSummary {
    /// Summarises `msg`.
    pub fn of(msg: &Message) -> MsgSummary {
        let term = msg.term;
        match &msg.body {
            Body::RequestVote(RequestVote { last_log_index, last_log_term, pre_vote, .. }) => MsgSummary::RequestVote {
                term,
                last_index: *last_log_index,
                last_term: *last_log_term,
                pre_vote: *pre_vote,
            },
            Body::RequestVoteResponse(VoteResponse { granted, pre_vote }) => {
                MsgSummary::Vote { term, granted: *granted, pre_vote: *pre_vote }
            }
            Body::AppendEntries(AppendEntries { prev_log_index, prev_log_term, entries, leader_commit, .. }) => {
                MsgSummary::Append {
                    term,
                    prev_index: *prev_log_index,
                    prev_term: *prev_log_term,
                    entries: entries.len(),
                    commit: *leader_commit,
                }
            }
            Body::AppendEntriesResponse(AppendResponse { result: AppendResult::Success { match_index }, .. }) => {
                MsgSummary::AppendOk { term, match_index: *match_index }
            }
            Body::AppendEntriesResponse(AppendResponse {
                result: AppendResult::Reject { prev_log_index, last_log_index, conflict_term, conflict_index },
                ..
            }) => MsgSummary::AppendReject {
                term,
                prev_index: *prev_log_index,
                last_index: *last_log_index,
                conflict_term: *conflict_term,
                conflict_index: *conflict_index,
            },
            Body::InstallSnapshot(InstallSnapshot { index, snapshot_term, offset, total_len, data, .. }) => {
                MsgSummary::Snapshot {
                    term,
                    index: *index,
                    snapshot_term: *snapshot_term,
                    offset: *offset,
                    len: data.len(),
                    total: *total_len,
                }
            }
            Body::InstallSnapshotResponse(SnapshotResponse { index, next_offset, done, .. }) => {
                MsgSummary::SnapshotAck { term, index: *index, next_offset: *next_offset, done: *done }
            }
            other => MsgSummary::Other { term, kind: other.kind() },
        }
    }
}

impl fmt::Display for MsgSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgSummary::RequestVote { term, last_index, last_term, pre_vote } => {
                let kind = if *pre_vote { "PreVote" } else { "RequestVote" };
                write!(f, "{kind}{{term {term}, last i{last_index}/t{last_term}}}")
            }
            MsgSummary::Vote { term, granted, pre_vote } => {
                let kind = if *pre_vote { "PreVoteAnswer" } else { "Vote" };
                write!(f, "{kind}{{term {term}, {}}}", if *granted { "granted" } else { "refused" })
            }
            MsgSummary::Append { term, prev_index, prev_term, entries, commit } => {
                let noun = if *entries == 1 { "entry" } else { "entries" };
                write!(
                    f,
                    "AppendEntries{{term {term}, prev i{prev_index}/t{prev_term}, {entries} {noun}, commit {commit}}}"
                )
            }
            MsgSummary::AppendOk { term, match_index } => write!(f, "AppendOk{{term {term}, match {match_index}}}"),
            MsgSummary::AppendReject { term, prev_index, last_index, conflict_term, conflict_index } => {
                write!(f, "AppendReject{{term {term}, prev i{prev_index}, last i{last_index}, conflict ")?;
                match conflict_term {
                    Some(t) => write!(f, "t{t}")?,
                    None => write!(f, "-")?,
                }
                write!(f, " from i{conflict_index}}}")
            }
            MsgSummary::Snapshot { term, index, snapshot_term, offset, len, total } => write!(
                f,
                "InstallSnapshot{{term {term}, upto i{index}/t{snapshot_term}, bytes {offset}..{} of {total}}}",
                offset + *len as u64
            ),
            MsgSummary::SnapshotAck { term, index, next_offset, done } => {
                write!(f, "SnapshotAck{{term {term}, i{index}, next {next_offset}, done {done}}}")
            }
            MsgSummary::Other { term, kind } => write!(f, "{kind}{{term {term}}}"),
        }
    }
}

/// A [`Write`] reduced to what a trace line shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WriteSummary {
    /// New (term, vote), if the write stores a hard state.
    pub hard_state: Option<(Term, Option<NodeId>)>,
    /// Snapshot stored (last index and term covered), if any.
    pub snapshot: Option<(LogIndex, Term)>,
    /// Truncation point, if any.
    pub truncate_from: Option<LogIndex>,
    /// First and last appended index, if any entries.
    pub appended: Option<(LogIndex, LogIndex)>,
}

impl WriteSummary {
    /// Summarises `w`.
    pub fn of(w: &Write) -> WriteSummary {
        WriteSummary {
            hard_state: w.hard_state.map(|h| (h.term, h.voted_for)),
            snapshot: w.snapshot.as_ref().map(|s| (s.meta.index, s.meta.term)),
            truncate_from: w.truncate_from,
            appended: w.entries.first().zip(w.entries.last()).map(|(a, b)| (a.index, b.index)),
        }
    }
}

impl fmt::Display for WriteSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some((t, v)) = self.hard_state {
            match v {
                Some(v) => parts.push(format!("term {t} vote n{v}")),
                None => parts.push(format!("term {t} no vote")),
            }
        }
        if let Some((i, t)) = self.snapshot {
            parts.push(format!("snapshot upto i{i}/t{t}"));
        }
        if let Some(i) = self.truncate_from {
            parts.push(format!("truncate from i{i}"));
        }
        if let Some((a, b)) = self.appended {
            parts.push(format!("+{} entries i{a}..=i{b}", b.0 - a.0 + 1));
        }
        write!(f, "{{{}}}", parts.join(", "))
    }
}

/// Why the network dropped a message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Random loss.
    Lost,
    /// Sender or receiver disconnected, partitioned apart, or the link is cut.
    Disconnected,
    /// The receiver was crashed when the message arrived.
    Down,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceKind {
    /// A message was delivered (`sent` is when it left the sender).
    Deliver {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// The message.
        msg: MsgSummary,
        /// When it was sent.
        sent: Instant,
    },
    /// A message was dropped.
    Drop {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// The message.
        msg: MsgSummary,
        /// Why.
        reason: DropReason,
    },
    /// A node's timer fired (in the role it had then).
    Timeout {
        /// The node.
        node: NodeId,
        /// Its role before the timer fired.
        role: Role,
    },
    /// A `RoleChanged` event.
    Role {
        /// The node.
        node: NodeId,
        /// New role.
        role: Role,
        /// Its term.
        term: Term,
        /// Known leader.
        leader: Option<NodeId>,
    },
    /// A write was issued to the node's disk.
    Persist {
        /// The node.
        node: NodeId,
        /// Its token.
        token: u64,
        /// What it writes.
        write: WriteSummary,
    },
    /// A write became durable and was reported.
    Durable {
        /// The node.
        node: NodeId,
        /// Its token.
        token: u64,
    },
    /// Committed entries were applied.
    Apply {
        /// The node.
        node: NodeId,
        /// First applied index.
        first: LogIndex,
        /// Last applied index.
        last: LogIndex,
    },
    /// The state machine was told to restore a snapshot.
    RestoreSnapshot {
        /// The node.
        node: NodeId,
        /// Last index covered.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The host compacted a node's log into a snapshot.
    Compact {
        /// The node.
        node: NodeId,
        /// Last index covered.
        index: LogIndex,
        /// Whether the core accepted it.
        ok: bool,
    },
    /// A command was proposed at a node.
    Propose {
        /// The node.
        node: NodeId,
        /// Its log index, or `None` if refused.
        index: Option<LogIndex>,
    },
    /// A node crashed.
    Crash {
        /// The node.
        node: NodeId,
        /// Writes lost because they were not yet durable.
        lost_writes: usize,
    },
    /// A node restarted from its durable state.
    Restart {
        /// The node.
        node: NodeId,
        /// Its new lifetime number (0 is the first).
        lifetime: u32,
        /// Restored term.
        term: Term,
        /// Restored log length.
        log_len: u64,
    },
    /// `disconnect(node)`.
    Disconnect {
        /// The node.
        node: NodeId,
    },
    /// `connect(node)`.
    Connect {
        /// The node.
        node: NodeId,
    },
    /// `partition(groups)`; nodes not listed are isolated.
    Partition {
        /// The groups.
        groups: Vec<Vec<NodeId>>,
    },
    /// `cut_link(from, to)`.
    CutLink {
        /// Sender side.
        from: NodeId,
        /// Receiver side.
        to: NodeId,
    },
    /// `heal()`: full connectivity.
    Heal,
    /// A read was started at a node (`refused`: `read_index` returned this error).
    ReadStart {
        /// The node.
        node: NodeId,
        /// The read's id.
        id: u64,
        /// Why `read_index` refused, if it did.
        refused: Option<String>,
    },
    /// A node reported a read's outcome (`Output::Read`).
    Read {
        /// The node.
        node: NodeId,
        /// The read's id.
        id: u64,
        /// The read index, on success.
        index: Option<LogIndex>,
        /// The error, on failure.
        error: Option<String>,
    },
    /// A leadership transfer was asked of a node.
    TransferStart {
        /// The leader asked.
        node: NodeId,
        /// The target.
        to: NodeId,
        /// Why `transfer_leadership` refused, if it did.
        refused: Option<String>,
    },
    /// A leadership transfer ended (`Event::TransferFinished`).
    TransferEnd {
        /// The leader that started it.
        node: NodeId,
        /// The target.
        to: NodeId,
        /// How it ended.
        outcome: TransferOutcome,
    },
    /// A node's clock rate changed.
    ClockRate {
        /// The node.
        node: NodeId,
        /// The new rate, in parts per million off virtual time.
        ppm: i64,
    },
    /// A node was added to the simulation (empty, joining).
    AddNode {
        /// The new node.
        node: NodeId,
    },
    /// A configuration change was asked of a node.
    Change {
        /// The node asked.
        node: NodeId,
        /// The change (its `Debug` form).
        change: String,
        /// The configuration entry's index, or why the node refused.
        result: Result<LogIndex, String>,
    },
    /// A node's configuration changed (`Event::MembershipChanged`).
    Config {
        /// The node.
        node: NodeId,
        /// Its configuration now.
        config: ConfigSummary,
    },
    /// Free text from a test.
    Note(String),
}

/// Who votes and who learns in a configuration, for the trace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfigSummary {
    /// Voters (the incoming ones in a joint configuration).
    pub voters: Vec<NodeId>,
    /// Outgoing voters (empty unless joint).
    pub outgoing: Vec<NodeId>,
    /// Learners.
    pub learners: Vec<NodeId>,
}

impl From<&Membership> for ConfigSummary {
    fn from(m: &Membership) -> ConfigSummary {
        ConfigSummary {
            voters: m.voters.iter().copied().collect(),
            outgoing: m.outgoing.iter().copied().collect(),
            learners: m.learners.iter().copied().collect(),
        }
    }
}

impl fmt::Display for ConfigSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[NodeId]| v.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(",");
        write!(f, "voters [{}]", list(&self.voters))?;
        if !self.outgoing.is_empty() {
            write!(f, " joint with outgoing [{}]", list(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners [{}]", list(&self.learners))?;
        }
        Ok(())
    }
}

/// One traced event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// Virtual time.
    pub at: Instant,
    /// What happened.
    pub kind: TraceKind,
}

/// Formats an instant as `1234.500ms`.
pub fn fmt_instant(t: Instant) -> String {
    let us = t.as_micros();
    format!("{}.{:03}ms", us / 1000, us % 1000)
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
        _ => "follower",
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={} ", fmt_instant(self.at))?;
        match &self.kind {
            TraceKind::Deliver { from, to, msg, sent } => {
                write!(f, "n{from} -> n{to} {msg} (sent t={})", fmt_instant(*sent))
            }
            TraceKind::Drop { from, to, msg, reason } => {
                let why = match reason {
                    DropReason::Lost => "lost",
                    DropReason::Disconnected => "disconnected",
                    DropReason::Down => "receiver down",
                };
                write!(f, "n{from} -> n{to} {msg} DROPPED ({why})")
            }
            TraceKind::Timeout { node, role } => write!(f, "n{node} timeout as {}", role_name(*role)),
            TraceKind::Role { node, role, term, leader } => {
                write!(f, "n{node} is {} in term {term}", role_name(*role))?;
                match leader {
                    Some(l) => write!(f, " (leader n{l})"),
                    None => write!(f, " (leader unknown)"),
                }
            }
            TraceKind::Persist { node, token, write } => write!(f, "n{node} persist #{token} {write}"),
            TraceKind::Durable { node, token } => write!(f, "n{node} durable #{token}"),
            TraceKind::Apply { node, first, last } => write!(f, "n{node} apply i{first}..=i{last}"),
            TraceKind::RestoreSnapshot { node, index, term } => {
                write!(f, "n{node} restore snapshot upto i{index}/t{term}")
            }
            TraceKind::Compact { node, index, ok } => {
                write!(f, "n{node} compact upto i{index}{}", if *ok { "" } else { " REFUSED" })
            }
            TraceKind::Propose { node, index: Some(i) } => write!(f, "n{node} propose -> i{i}"),
            TraceKind::Propose { node, index: None } => write!(f, "n{node} propose refused"),
            TraceKind::Crash { node, lost_writes } => write!(f, "n{node} CRASH ({lost_writes} writes lost)"),
            TraceKind::Restart { node, lifetime, term, log_len } => {
                write!(f, "n{node} RESTART (lifetime {lifetime}, term {term}, {log_len} entries)")
            }
            TraceKind::Disconnect { node } => write!(f, "n{node} DISCONNECTED"),
            TraceKind::Connect { node } => write!(f, "n{node} CONNECTED"),
            TraceKind::Partition { groups } => {
                let g: Vec<String> =
                    groups.iter().map(|g| g.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(" ")).collect();
                write!(f, "PARTITION [{}]", g.join(" | "))
            }
            TraceKind::CutLink { from, to } => write!(f, "CUT n{from} -> n{to}"),
            TraceKind::Heal => write!(f, "HEAL"),
            TraceKind::ReadStart { node, id, refused: None } => write!(f, "n{node} read #{id} started"),
            TraceKind::ReadStart { node, id, refused: Some(e) } => write!(f, "n{node} read #{id} REFUSED ({e})"),
            TraceKind::Read { node, id, index: Some(i), .. } => write!(f, "n{node} read #{id} -> read index i{i}"),
            TraceKind::Read { node, id, error, .. } => {
                write!(f, "n{node} read #{id} FAILED ({})", error.as_deref().unwrap_or("?"))
            }
            TraceKind::TransferStart { node, to, refused: None } => write!(f, "n{node} TRANSFER to n{to}"),
            TraceKind::TransferStart { node, to, refused: Some(e) } => {
                write!(f, "n{node} transfer to n{to} REFUSED ({e})")
            }
            TraceKind::TransferEnd { node, to, outcome } => write!(f, "n{node} transfer to n{to} ended: {outcome:?}"),
            TraceKind::ClockRate { node, ppm } => write!(f, "n{node} clock rate {ppm:+} ppm"),
            TraceKind::AddNode { node } => write!(f, "n{node} ADDED (joining, empty disk)"),
            TraceKind::Change { node, change, result: Ok(i) } => write!(f, "n{node} CHANGE {change} -> i{i}"),
            TraceKind::Change { node, change, result: Err(e) } => write!(f, "n{node} change {change} REFUSED ({e})"),
            TraceKind::Config { node, config } => write!(f, "n{node} config: {config}"),
            TraceKind::Note(s) => write!(f, "note: {s}"),
        }
    }
}

/// FNV-1a, 64 bit: a stable hasher (std's `DefaultHasher` may change between releases).
#[derive(Clone, Debug)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01B3);
        }
    }
}

/// A callback that sees every traced event as it happens.
pub type TraceObserver = Box<dyn FnMut(&TraceEvent)>;

/// The ring buffer. Keeps the newest `capacity` events.
pub struct Trace {
    events: VecDeque<TraceEvent>,
    capacity: usize,
    total: u64,
    digest: Fnv,
    observer: Option<TraceObserver>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("kept", &self.events.len())
            .field("capacity", &self.capacity)
            .field("total", &self.total)
            .field("digest", &self.digest.0)
            .finish_non_exhaustive()
    }
}

impl Trace {
    /// An empty trace keeping at most `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Trace {
        let capacity = capacity.max(1);
        Trace {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            total: 0,
            digest: Fnv(0xCBF2_9CE4_8422_2325),
            observer: None,
        }
    }

    /// Records an event: folds it into the digest, shows it to the observer,
    /// and keeps it (evicting the oldest if full).
    pub fn push(&mut self, at: Instant, kind: TraceKind) {
        let ev = TraceEvent { at, kind };
        ev.hash(&mut self.digest);
        self.total += 1;
        if let Some(obs) = self.observer.as_mut() {
            obs(&ev);
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(ev);
    }

    /// Installs (or removes) the observer.
    pub fn set_observer(&mut self, observer: Option<TraceObserver>) {
        self.observer = observer;
    }

    /// The newest `n` events, oldest first.
    pub fn tail(&self, n: usize) -> impl Iterator<Item = &TraceEvent> {
        self.events.iter().skip(self.events.len().saturating_sub(n))
    }

    /// The newest `n` events formatted one per line.
    pub fn tail_text(&self, n: usize) -> String {
        let mut s = String::new();
        for e in self.tail(n) {
            s.push_str(&e.to_string());
            s.push('\n');
        }
        s
    }

    /// A hash of every event ever pushed, in order.
    pub fn digest(&self) -> u64 {
        self.digest.0
    }

    /// How many events were ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_newest_and_digest_covers_all() {
        let mut a = Trace::new(2);
        let mut b = Trace::new(100);
        for i in 0..5 {
            a.push(Instant::from_micros(i), TraceKind::Heal);
            b.push(Instant::from_micros(i), TraceKind::Heal);
        }
        assert_eq!(a.tail(10).count(), 2);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.total(), 5);
        assert!(a.tail_text(1).starts_with("t=0.004ms HEAL"));
        let m = MsgSummary::Append {
            term: Term(3),
            prev_index: LogIndex(4),
            prev_term: Term(2),
            entries: 2,
            commit: LogIndex(4),
        };
        let e = TraceEvent {
            at: Instant::from_micros(1_234_500),
            kind: TraceKind::Deliver { from: NodeId(2), to: NodeId(3), msg: m, sent: Instant::from_micros(1_230_000) },
        };
        assert_eq!(
            e.to_string(),
            "t=1234.500ms n2 -> n3 AppendEntries{term 3, prev i4/t2, 2 entries, commit 4} (sent t=1230.000ms)"
        );
    }
}
