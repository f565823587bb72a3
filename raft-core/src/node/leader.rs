//! What only a leader keeps: each follower's progress, the heartbeat rounds
//! that confirm its leadership (for ReadIndex, leases and check-quorum),
//! reads waiting for such a confirmation, and a leadership transfer.

use super::PeerSet;
use crate::membership::JointQuorum;
use crate::output::ReadId;
use crate::progress::Progress;
use crate::time::Instant;
use crate::types::{LogIndex, NodeId};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// Rounds whose start time is kept; an answer to an older round proves no
/// contact later than what the follower's newer answers prove.
const MAX_ROUNDS: usize = 1024;

/// Who asked for a read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum ReadTarget {
    /// This node's host.
    Local(ReadId),
    /// A follower, with its id for the read.
    Remote(NodeId, u64),
}

/// A read waiting for a heartbeat round to be acknowledged by a majority.
#[derive(Copy, Clone, Debug)]
pub(super) struct PendingRead {
    pub(super) target: ReadTarget,
    /// The commit index when the read was registered.
    pub(super) index: LogIndex,
    /// The first round that started after the read arrived.
    pub(super) round: u64,
}

/// A leadership transfer in progress.
#[derive(Copy, Clone, Debug)]
pub(super) struct Transfer {
    pub(super) to: NodeId,
    pub(super) deadline: Instant,
    /// The round in which `TimeoutNow` last went out (the lease is then
    /// given up), if it did.
    pub(super) timeout_now_round: Option<u64>,
}

#[derive(Debug)]
pub(super) struct LeaderState {
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// Followers to send AppendEntries to at the next flush.
    pub(super) dirty: PeerSet,
    /// Every peer is to be added to `dirty` (see [`LeaderState::mark_all_dirty`]).
    dirty_all: bool,
    pub(super) heartbeat_deadline: Instant,
    /// The current heartbeat round (every AppendEntries carries it).
    pub(super) round: u64,
    /// When each recent round started, oldest first.
    round_started: VecDeque<(u64, Instant)>,
    /// Reads registered since the last round started want a new one.
    pub(super) round_wanted: bool,
    /// Reads waiting for their round, in round order.
    pub(super) reads: VecDeque<PendingRead>,
    /// Reads that arrived before an entry of this term committed.
    pub(super) early_reads: Vec<ReadTarget>,
    pub(super) transfer: Option<Transfer>,
    /// `TimeoutNow` was sent during this leadership: the target may be
    /// elected by voters that ignore their stickiness, so no more lease.
    pub(super) lease_forfeited: bool,
    /// Per follower: the start of the newest round it answered, i.e. the
    /// latest moment it is known to have recognised this leader.
    contact: BTreeMap<NodeId, Instant>,
    /// Members the latest configurations removed, with the index of the
    /// configuration that removed each: they still get the log until they
    /// hold that entry, so that they learn they were removed (and stop
    /// campaigning) instead of waiting forever in the configuration before.
    /// Given up at the next configuration change.
    pub(super) retiring: BTreeMap<NodeId, LogIndex>,
}

impl LeaderState {
    pub(super) fn new(peers: &[NodeId], next: LogIndex, now: Instant, heartbeat_deadline: Instant) -> LeaderState {
        LeaderState {
            progress: peers.iter().map(|&p| (p, Progress::new(next))).collect(),
            dirty: PeerSet::default(),
            dirty_all: false,
            heartbeat_deadline,
            // Round 0 is the election itself: until a majority answers a
            // later round, the leader counts on the votes that elected it.
            round: 0,
            round_started: VecDeque::from([(0, now)]),
            round_wanted: false,
            reads: VecDeque::new(),
            early_reads: Vec::new(),
            transfer: None,
            lease_forfeited: false,
            // Until a follower answers a later round, the election (round 0)
            // is the last contact: the voters recognised this leader then.
            contact: peers.iter().map(|&p| (p, now)).collect(),
            retiring: BTreeMap::new(),
        }
    }

    /// Marks every peer for AppendEntries at the next flush (an entry was
    /// appended, or the commit index moved). Only a flag: a batch of
    /// proposals marks once, and [`LeaderState::take_dirty_all`] adds the
    /// peers to `dirty` at flush, or before the peer set changes.
    #[inline]
    pub(super) fn mark_all_dirty(&mut self) {
        self.dirty_all = true;
    }

    /// Adds `peers` (the node's peers since the marks) to `dirty` if
    /// [`LeaderState::mark_all_dirty`] was called since the last time.
    pub(super) fn take_dirty_all(&mut self, peers: &[NodeId]) {
        if core::mem::take(&mut self.dirty_all) {
            self.dirty.insert_sorted(peers);
        }
    }

    /// Starts a new heartbeat round at `now`.
    pub(super) fn start_round(&mut self, now: Instant) {
        self.round += 1;
        self.round_wanted = false;
        if self.round_started.len() == MAX_ROUNDS {
            self.round_started.pop_front();
        }
        self.round_started.push_back((self.round, now));
    }

    /// A follower answered a message of `round` in this term. A round this
    /// leader never sent (an echo from another leadership) proves nothing.
    /// Returns the follower's progress (`None` if it is not replicated to),
    /// so that an answer looks the follower up once.
    pub(super) fn acked_round(&mut self, from: NodeId, round: u64) -> Option<&mut Progress> {
        let p = self.progress.get_mut(&from)?;
        // Nothing to learn from a round already answered, round 0 included:
        // every follower's contact starts at or after round 0's start (the
        // election, or the round in which it was added). This is the common
        // case (every ack of one round), so it costs one comparison.
        if round > self.round || round <= p.acked_round {
            return Some(p);
        }
        p.acked_round = round;
        let at = self.round_started.partition_point(|&(r, _)| r < round);
        if let Some(&(r, t)) = self.round_started.get(at)
            && r == round
        {
            let c = self.contact.entry(from).or_insert(t);
            *c = (*c).max(t);
        }
        Some(p)
    }

    /// The highest round a majority (this leader included) has answered.
    pub(super) fn quorum_round(&self, voters: &JointQuorum, me: NodeId) -> u64 {
        voters
            .quorum_value(|id| if id == me { self.round } else { self.progress.get(&id).map_or(0, |p| p.acked_round) })
    }

    /// The last moment a majority (this leader included) is known to have
    /// recognised this leader: the start of a round each of them answered.
    pub(super) fn quorum_contact(&self, voters: &JointQuorum, me: NodeId) -> Instant {
        let t = voters
            .quorum_value(|id| if id == me { u64::MAX } else { self.contact.get(&id).map_or(0, |t| t.as_micros()) });
        Instant::from_micros(t)
    }

    /// Removes and returns the reads whose round a majority has answered.
    pub(super) fn confirmed_reads(&mut self, quorum_round: u64) -> Vec<PendingRead> {
        let mut done = Vec::new();
        while self.reads.front().is_some_and(|r| r.round <= quorum_round) {
            done.extend(self.reads.pop_front());
        }
        done
    }

    /// Follows a configuration change (the configuration entry at
    /// `config_index`): new members are probed from `next`; removed ones keep
    /// getting the log until they hold that entry (see `retiring`), and those
    /// an earlier change removed are forgotten.
    pub(super) fn sync_peers(&mut self, peers: &[NodeId], next: LogIndex, config_index: LogIndex) {
        let mut retiring = BTreeMap::new();
        for &id in self.progress.keys() {
            match self.retiring.get(&id) {
                // Still waiting for the configuration that removed it.
                Some(&at) if at >= config_index && !peers.contains(&id) => _ = retiring.insert(id, at),
                // Removed by an earlier change (or added again).
                Some(_) => {}
                None if !peers.contains(&id) => _ = retiring.insert(id, config_index),
                None => {}
            }
        }
        self.retiring = retiring;
        let retiring = &self.retiring;
        self.progress.retain(|id, _| peers.contains(id) || retiring.contains_key(id));
        self.contact.retain(|id, _| peers.contains(id) || retiring.contains_key(id));
        let now = self.round_started.back().map_or(Instant::ZERO, |&(_, t)| t);
        for &p in peers {
            if let alloc::collections::btree_map::Entry::Vacant(slot) = self.progress.entry(p) {
                slot.insert(Progress::new(next));
                // A new voter has not answered yet: count it as heard at the
                // latest round's start, so that adding it cannot depose a leader at once.
                self.contact.insert(p, now);
                self.dirty.insert(p);
            }
        }
    }

    /// A removed member acknowledged up to `matched`: once it holds the
    /// configuration that removed it, it gets nothing more.
    pub(super) fn retire_if_done(&mut self, id: NodeId, matched: LogIndex) {
        if self.retiring.get(&id).is_some_and(|&at| matched >= at) {
            self.retiring.remove(&id);
            self.progress.remove(&id);
            self.contact.remove(&id);
        }
    }

    /// True if a read with this local id is waiting here.
    pub(super) fn has_local_read(&self, id: ReadId) -> bool {
        let local = ReadTarget::Local(id);
        self.reads.iter().any(|r| r.target == local) || self.early_reads.contains(&local)
    }
}
