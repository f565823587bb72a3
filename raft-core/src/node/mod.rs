//! [`Node`]: one Raft member as a deterministic state machine.

mod durability;
mod election;
mod forward;
#[cfg(test)]
mod fuzz_tests;
mod leader;
#[cfg(test)]
mod leadership_tests;
mod membership;
#[cfg(test)]
mod membership_tests;
mod reads;
mod replication;
#[cfg(test)]
mod review_tests;
#[cfg(test)]
mod robustness_tests;
mod snapshot;
#[cfg(test)]
pub(crate) mod test_harness;
mod transfer;

use crate::config::Config;
use crate::error::{ProposeError, TransferError};
use crate::log::Log;
use crate::membership::{JointQuorum, Membership};
use crate::message::{Body, Message};
use crate::output::{Event, Outgoing, Output, PersistToken, ReadId, Role};
use crate::restore::{NewNodeError, Restored};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::types::{Bytes, Entry, HardState, LogIndex, NodeId, Payload, Snapshot, SnapshotDigest, Term};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use durability::Durability;
use leader::LeaderState;

/// Most entries handed out in one [`Output::Apply`].
const APPLY_BATCH: usize = 4096;

/// Terms and indexes above this are refused as hostile: no real cluster gets
/// near them, and staying far below `u64::MAX` means an election can always
/// move to a fresh term and an index can always grow.
pub(crate) const MAX_TERM: Term = Term(1 << 62);
/// See [`MAX_TERM`].
pub(crate) const MAX_INDEX: LogIndex = LogIndex(1 << 62);

#[derive(Debug)]
enum RoleState {
    Follower,
    PreCandidate { votes: BTreeMap<NodeId, bool> },
    Candidate { votes: BTreeMap<NodeId, bool> },
    Leader(Box<LeaderState>),
}

/// A small sorted set of peers that keeps its allocation when emptied.
#[derive(Debug, Default)]
pub(crate) struct PeerSet(Vec<NodeId>);

impl PeerSet {
    pub(crate) fn insert(&mut self, id: NodeId) {
        if let Err(at) = self.0.binary_search(&id) {
            self.0.insert(at, id);
        }
    }
    /// Adds every id of `ids`, which is sorted (as `Node::peers` is). A set
    /// that already is `ids`, as after the first proposal of a step, is left
    /// as it is at the cost of one comparison.
    pub(crate) fn insert_sorted(&mut self, ids: &[NodeId]) {
        debug_assert!(ids.is_sorted());
        if self.0 != ids {
            for &id in ids {
                self.insert(id);
            }
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One Raft member. It performs no I/O: feed it inputs with the `handle_*`
/// methods, [`Node::propose`], [`Node::read_index`] and
/// [`Node::transfer_leadership`], then drain [`Node::poll_output`] until it
/// returns `None` and sleep until [`Node::poll_timeout`].
///
/// Every method is deterministic in its inputs, the config and the restored
/// state; none panics on any message content.
#[derive(Debug)]
pub struct Node {
    config: Config,
    /// The configuration in effect: the newest in the log (or snapshot, or
    /// the bootstrap `Config::members`).
    membership: Membership,
    /// Its majorities.
    quorum: JointQuorum,
    /// Every other member (voters and learners): where a leader replicates.
    peers: Vec<NodeId>,
    /// The configuration at the snapshot base (or the bootstrap one), and
    /// whether it came from the log (a snapshot) rather than `Config::members`.
    base_membership: (Membership, bool),
    /// Configuration entries in the log after the base, in index order.
    configs: Vec<(LogIndex, Membership)>,
    rng: SplitMix64,
    hard: HardState,
    role: RoleState,
    leader: Option<NodeId>,
    /// When this node last heard from the leader of its term (stickiness).
    leader_contact: Option<Instant>,
    log: Log,
    commit: LogIndex,
    applied: LogIndex,
    election_deadline: Instant,
    /// The `now` of the latest input (flush has no `now` of its own).
    last_now: Instant,
    /// An input came since the last flush (or the last flush left work
    /// over): `poll_output` flushes only then. A flush with no input since
    /// the previous one has nothing to do, and the host's last
    /// `poll_output` of a drain (the one that returns `None`) would
    /// otherwise run a whole flush for nothing.
    flush_due: bool,
    /// When this node (re)started: it does not vote for `election_timeout_min` after.
    started_at: Instant,
    durability: Durability,
    out: VecDeque<Output>,
    reported: Option<(Role, Term, Option<NodeId>)>,
    /// The latest snapshot (taken or installed).
    snapshot: Option<Snapshot>,
    /// CRC-32 of `snapshot`'s data, computed when first sent.
    snapshot_checksum: Option<u32>,
    /// Set if the host holds `snapshot`'s bytes (its `data` is then empty).
    snapshot_digest: Option<SnapshotDigest>,
    /// A snapshot being received.
    incoming: Option<snapshot::Incoming>,
    /// A snapshot the state machine must restore once it is durable.
    pending_restore: Option<Snapshot>,
    /// `Event::SnapshotWanted` was emitted and not yet answered by `compact`.
    snapshot_wanted: bool,
    /// This node's reads that its leader is confirming, by wire id: the
    /// host's id and the give-up time.
    remote_reads: BTreeMap<u64, (ReadId, Instant)>,
    /// Commands this node forwarded to its leader, by wire id: the host's
    /// id and the give-up time.
    forwards: BTreeMap<u64, (crate::ProposalId, Instant)>,
    /// The last wire id given to a read or forward of this node.
    last_wire_id: u64,
    /// The configuration last reported in `Event::MembershipChanged`.
    reported_membership: Option<Membership>,
    /// `membership` was replaced since the last flush (compared with
    /// `reported_membership` only then: comparing four sets on every flush
    /// cost 5 % of a one-at-a-time proposal in core-bench).
    membership_moved: bool,
}

impl Node {
    /// Starts a node from `restored` (use [`Restored::fresh`] the first time).
    /// It starts as a follower and waits one randomized election timeout.
    pub fn new(config: Config, restored: Restored, now: Instant) -> Result<Node, NewNodeError> {
        config.validate()?;
        restored.validate()?;
        let Restored { mut hard_state, snapshot, snapshot_digest, entries, last_applied, .. } = restored;
        let base = snapshot.as_ref().map(|s| s.meta).unwrap_or_default();
        let log = Log::with_base(base.index, base.term, entries);
        let pending_restore = snapshot.clone().filter(|s| s.meta.index > last_applied);
        // A crash between storing entries and storing the hard state of the
        // same write can leave entries of a term the hard state has not seen.
        // Adopting that term without a vote is safe: no message that depended
        // on the lost vote was ever sent (they wait for the whole write).
        if log.last_term() > hard_state.term {
            hard_state = HardState { term: log.last_term(), voted_for: None, ..hard_state };
        }
        // A node that lost entries may have acknowledged them in its current
        // term, and that term's leader may still count those answers. It
        // moves to a term of its own, so that only a leader of a later term,
        // elected without it, can end its catching up.
        let catch_up_term = hard_state.catching_up.then(|| hard_state.term.next());
        let base_membership = match snapshot.as_ref().map(|s| &s.membership) {
            Some(m) if !m.voters.is_empty() => (Membership::clone(m), true),
            _ => {
                let mut m = Membership::with_voters(config.members.iter().copied());
                m.addrs = config
                    .member_addrs
                    .iter()
                    .filter(|(id, _)| m.voters.contains(id))
                    .map(|(&id, a)| (id, a.clone()))
                    .collect();
                (m, false)
            }
        };
        let mut node = Node {
            rng: SplitMix64::new(config.seed),
            membership: Membership::default(),
            quorum: Membership::default().quorum(),
            peers: Vec::new(),
            base_membership,
            configs: Vec::new(),
            hard: hard_state,
            role: RoleState::Follower,
            leader: None,
            leader_contact: None,
            durability: Durability::new(log.last_index()),
            log,
            commit: last_applied.max(base.index),
            applied: last_applied,
            election_deadline: now,
            last_now: now,
            flush_due: true,
            started_at: now,
            out: VecDeque::new(),
            reported: None,
            snapshot,
            snapshot_checksum: None,
            snapshot_digest,
            incoming: None,
            pending_restore,
            snapshot_wanted: false,
            remote_reads: BTreeMap::new(),
            forwards: BTreeMap::new(),
            last_wire_id: 0,
            reported_membership: None,
            membership_moved: false,
            config,
        };
        if let Some(term) = catch_up_term {
            node.set_hard_state(HardState { term, voted_for: None, catching_up: true });
        }
        // Wire ids start at a point of this lifetime's own (from the seed), so
        // that a leader's late answer to a request sent before a restart
        // cannot complete a read of the new lifetime that reuses its id.
        node.last_wire_id = node.rng.next_u64() >> 1;
        node.note_configs_from(LogIndex(0));
        node.reported_membership = Some(node.membership.clone());
        node.membership_moved = false;
        node.reset_election_timer(now);
        Ok(node)
    }

    // ---- inputs ----

    /// A message from `from` arrived. Messages from non-members or from this
    /// node itself, and malformed, inconsistent or out-of-range messages, are
    /// ignored.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        self.input(now);
        // Any authenticated sender is heard: a node may not yet have the
        // configuration entry that added it. Only voters' votes count.
        if from == self.config.id || msg.term > MAX_TERM {
            return;
        }
        if !self.apply_term_rules(now, from, &msg) {
            return;
        }
        match msg.body {
            Body::RequestVote(req) => self.handle_request_vote(now, from, msg.term, req),
            Body::RequestVoteResponse(resp) => self.handle_vote_response(now, from, msg.term, resp),
            Body::AppendEntries(req) => self.handle_append(now, from, req),
            Body::AppendEntriesResponse(resp) => self.handle_append_response(from, resp),
            Body::InstallSnapshot(req) => self.handle_install_snapshot(now, from, req),
            Body::InstallSnapshotResponse(resp) => self.handle_snapshot_response(from, resp),
            Body::TimeoutNow => self.handle_timeout_now(now, from),
            Body::ReadIndex(req) => self.handle_read_index_request(from, req),
            Body::ReadIndexResponse(resp) => self.handle_read_index_response(from, resp),
            Body::Forward(req) => self.handle_forward(now, from, req),
            Body::ForwardResponse(resp) => self.handle_forward_response(from, msg.term, resp),
        }
    }

    /// Time has reached `now`. Fires whichever timers are due (election,
    /// heartbeat and check-quorum, leadership transfer and read deadlines);
    /// a call before [`Node::poll_timeout`] is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.input(now);
        self.expire_remote_reads(now);
        self.expire_forwards(Some(now));
        self.expire_incoming(now);
        match &self.role {
            RoleState::Leader(l) => {
                if now >= l.heartbeat_deadline {
                    self.leader_tick(now);
                }
            }
            RoleState::Follower | RoleState::PreCandidate { .. } | RoleState::Candidate { .. } => {
                if now >= self.election_deadline {
                    self.campaign(now, false);
                }
            }
        }
    }

    /// The write with `token`, and every earlier one, is durable. Unknown or
    /// repeated tokens are ignored.
    pub fn handle_persisted(&mut self, now: Instant, token: PersistToken) {
        self.input(now);
        if self.durability.persisted(token) {
            self.maybe_commit();
        }
    }

    /// Appends `command` to the log if this node is the leader, and returns
    /// the index it will have if committed. A later [`Output::Apply`] of that
    /// index with a different term means the command was lost to a leader change.
    pub fn propose(&mut self, now: Instant, command: impl Into<Bytes>) -> Result<LogIndex, ProposeError> {
        self.input(now);
        let command = command.into();
        let RoleState::Leader(l) = &self.role else {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        };
        if let Some(t) = l.transfer {
            return Err(ProposeError::TransferInProgress { to: t.to });
        }
        if command.len() > self.config.max_entry_bytes {
            return Err(ProposeError::TooLarge { size: command.len(), max: self.config.max_entry_bytes });
        }
        Ok(self.append_as_leader(Payload::Command(command)))
    }

    /// Hands leadership to `to`, a voter (dissertation §3.10): this leader
    /// stops accepting proposals, brings `to` up to date, then tells it to
    /// campaign at once. The transfer ends with [`Event::TransferFinished`]:
    /// handed over, or timed out after `election_timeout_max` (then this node
    /// leads on as before), or leadership lost otherwise.
    pub fn transfer_leadership(&mut self, now: Instant, to: NodeId) -> Result<(), TransferError> {
        self.input(now);
        self.start_transfer(now, to)
    }

    /// Starts a linearizable read (dissertation §6.4) that the host will serve
    /// from its state machine: its outcome comes as exactly one
    /// [`Output::Read`] with `id`, carrying the index the state machine must
    /// have applied before serving it. A leader confirms its leadership with
    /// a heartbeat round that starts after this call (batching every read of
    /// one step), or by its lease in [`ReadMode::Lease`](crate::ReadMode), and
    /// never before it has committed an entry of its own term. A follower
    /// asks its leader. An `Err` means no `Output::Read` will follow.
    pub fn read_index(&mut self, now: Instant, id: ReadId) -> Result<(), crate::ReadError> {
        self.input(now);
        self.start_read(now, id)
    }

    // ---- outputs ----

    /// The next thing for the host to do, or `None` when there is nothing
    /// left. Call until `None` after every input.
    #[must_use]
    #[inline]
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() && self.flush_due {
            self.flush_due = false;
            self.flush();
        }
        self.out.pop_front()
    }

    /// The earliest instant at which [`Node::handle_timeout`] has something
    /// to do: the election deadline (follower, candidate), or the next
    /// heartbeat (leader), or an earlier deadline of a follower's read or of
    /// a stalled incoming snapshot. Always `Some` (a node
    /// always has a timer); calling earlier is a harmless no-op.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = match &self.role {
            RoleState::Leader(l) => l.heartbeat_deadline,
            _ => self.election_deadline,
        };
        let reads = self.remote_reads.values().map(|&(_, t)| t).chain(self.forwards.values().map(|&(_, t)| t));
        let incoming = self.incoming.as_ref().map(|i| i.give_up_at);
        Some(reads.chain(incoming).fold(timer, Instant::min))
    }

    // ---- read-only view ----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The current term.
    pub fn term(&self) -> Term {
        self.hard.term
    }
    /// The current role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate { .. } => Role::PreCandidate,
            RoleState::Candidate { .. } => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }
    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// Whom this node voted for in the current term.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.hard.voted_for
    }
    /// True while this node withholds its vote after a disk repair (see
    /// [`HardState::catching_up`]).
    pub fn catching_up(&self) -> bool {
        self.hard.catching_up
    }
    /// The configuration in effect (the newest in the log).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// The target of the leadership transfer in progress, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        match &self.role {
            RoleState::Leader(l) => l.transfer.map(|t| t.to),
            _ => None,
        }
    }
    /// On a leader, the highest index known durable on `peer` (its match
    /// index); `None` on other roles and for ids the leader does not replicate to.
    pub fn match_index(&self, peer: NodeId) -> Option<LogIndex> {
        match &self.role {
            RoleState::Leader(l) => l.progress.get(&peer).map(|p| p.matched),
            _ => None,
        }
    }
    /// The highest index known to be committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    /// The highest index handed out in an [`Output::Apply`] (or restored as applied).
    pub fn last_applied(&self) -> LogIndex {
        self.applied
    }
    /// The index of the last entry in the log (durable or not).
    pub fn last_log_index(&self) -> LogIndex {
        self.log.last_index()
    }
    /// The term of the last entry in the log.
    pub fn last_log_term(&self) -> Term {
        self.log.last_term()
    }
    /// The highest index known durable on this node.
    pub fn durable_index(&self) -> LogIndex {
        self.durability.durable_index()
    }
    /// The term of the entry at `index`, if the log holds it (index 0 has term 0).
    pub fn log_term(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }
    /// How many entries the in-memory log holds (bounded by the snapshot policy).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }
    /// Bytes the in-memory log holds, by [`Entry::size_bound`].
    pub fn log_bytes(&self) -> usize {
        self.log.bytes()
    }
    /// The entry at `index`, if the log holds it.
    pub fn log_entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.entry(index)
    }

    // ---- internals shared by the role modules ----

    /// Every input starts here: records its `now` and that a flush is due.
    fn input(&mut self, now: Instant) {
        self.last_now = now;
        self.flush_due = true;
    }

    fn next_wire_id(&mut self) -> u64 {
        self.last_wire_id = self.last_wire_id.wrapping_add(1);
        self.last_wire_id
    }

    fn reset_election_timer(&mut self, now: Instant) {
        let (lo, hi) = (self.config.election_timeout_min, self.config.election_timeout_max);
        let wait = self.rng.range(lo.as_micros(), hi.as_micros());
        self.election_deadline = now + Duration::from_micros(wait);
    }

    fn set_hard_state(&mut self, hs: HardState) {
        if hs != self.hard {
            self.hard = hs;
            self.durability.set_hard_state(hs);
        }
    }

    /// Sends a message that depends on nothing durable beyond the term.
    fn send(&mut self, to: NodeId, body: Body) {
        let message = Message { term: self.hard.term, body };
        self.out.push_back(Output::Send(Outgoing { to, message }));
    }

    /// Sends a message once everything written so far is durable.
    fn send_after_persist(&mut self, to: NodeId, body: Body) {
        let message = Message { term: self.hard.term, body };
        self.durability.hold(Outgoing { to, message });
    }

    /// Restores a pending snapshot once durable, then applies committed,
    /// locally durable entries; asks for a snapshot when the policy says so.
    fn deliver_committed(&mut self) {
        let durable = self.durability.durable_index();
        if let Some(s) = self.pending_restore.take_if(|s| s.meta.index <= durable) {
            self.applied = self.applied.max(s.meta.index);
            self.out.push_back(Output::RestoreSnapshot(s));
        }
        if self.pending_restore.is_some() {
            return;
        }
        let applicable = self.commit.min(durable);
        if applicable > self.applied {
            let entries = self.log.range(self.applied, applicable, APPLY_BATCH);
            if let Some(last) = entries.last() {
                self.applied = last.index;
                self.out.push_back(Output::Apply(entries));
                // Capped at APPLY_BATCH: the next poll delivers the rest.
                self.flush_due |= self.applied < applicable;
            }
        }
        let since = self.applied.0.saturating_sub(self.log.base_index().0);
        let by_count = self.config.snapshot_after_entries.is_some_and(|n| since >= n);
        let by_bytes = self.config.snapshot_after_log_bytes.is_some_and(|b| self.log.bytes() >= b);
        if !self.snapshot_wanted && since > 0 && (by_count || by_bytes) {
            self.snapshot_wanted = true;
            let applied = self.applied;
            self.out.push_back(Output::Event(Event::SnapshotWanted { applied }));
        }
    }

    /// Accepts `from` as the leader of the current term (a candidate yields,
    /// §5.2) and restarts the election timer. False if this node leads the
    /// term itself: two leaders in one term cannot happen, so the message is forged.
    fn accept_leader(&mut self, now: Instant, from: NodeId) -> bool {
        if matches!(self.role, RoleState::Leader(_)) {
            return false;
        }
        self.role = RoleState::Follower;
        self.set_leader(Some(from));
        self.leader_contact = Some(now);
        self.reset_election_timer(now);
        true
    }

    /// Ends a step: issues the gathered write, sends what the leader can,
    /// releases held messages, delivers committed entries, reports changes.
    /// Out of line, so that `poll_output` inlines into the host's loop
    /// and most of its calls (an output is queued) stay a `pop_front`.
    #[inline(never)]
    fn flush(&mut self) {
        self.maybe_finish_catching_up();
        let out = &mut self.out;
        self.durability.issue(self.log.last_index(), |token, write| {
            out.push_back(Output::Persist(crate::output::Persist { token, write }));
        });
        self.start_wanted_round();
        self.send_dirty_appends();
        let out = &mut self.out;
        self.durability.release(|m| out.push_back(Output::Send(m)));
        self.deliver_committed();
        if core::mem::take(&mut self.membership_moved) && self.reported_membership.as_ref() != Some(&self.membership) {
            let membership = self.membership.clone();
            self.reported_membership = Some(membership.clone());
            self.out.push_back(Output::Event(Event::MembershipChanged { membership: Box::new(membership) }));
        }
        let now = (self.role(), self.hard.term, self.leader);
        if self.reported != Some(now) {
            self.reported = Some(now);
            let (role, term, leader) = now;
            self.out.push_back(Output::Event(Event::RoleChanged { role, term, leader }));
        }
    }

    /// A node repaired after losing entries votes again once it durably holds
    /// an entry that the leader of its term committed in that term: then its
    /// log holds every committed entry (leader completeness), like any voter's.
    fn maybe_finish_catching_up(&mut self) {
        if !self.hard.catching_up || !matches!(self.role, RoleState::Follower) || self.leader.is_none() {
            return;
        }
        let held = self.commit.min(self.durability.durable_index());
        if self.log.term_at(held) == Some(self.hard.term) {
            self.set_hard_state(HardState { catching_up: false, ..self.hard });
        }
    }
}
