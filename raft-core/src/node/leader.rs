//! What only a leader keeps: each follower's progress, the heartbeat rounds
//! that confirm its leadership (for ReadIndex, leases and check-quorum),
//! reads waiting for such a confirmation, and a leadership transfer.

use super::PeerSet;
use crate::output::ReadId;
use crate::progress::Progress;
use crate::quorum::Majority;
use crate::time::Instant;
use crate::types::{LogIndex, NodeId};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// Rounds whose start time is kept; an older round a majority acknowledges
/// counts as no contact at all.
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
    /// `TimeoutNow` went out: the lease is given up.
    pub(super) timeout_now_sent: bool,
}

#[derive(Debug)]
pub(super) struct LeaderState {
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// Followers to send AppendEntries to at the next flush.
    pub(super) dirty: PeerSet,
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
}

impl LeaderState {
    pub(super) fn new(peers: &[NodeId], next: LogIndex, now: Instant, heartbeat_deadline: Instant) -> LeaderState {
        LeaderState {
            progress: peers.iter().map(|&p| (p, Progress::new(next))).collect(),
            dirty: PeerSet::default(),
            heartbeat_deadline,
            // Round 0 is the election itself: until a majority answers a
            // later round, the leader counts on the votes that elected it.
            round: 0,
            round_started: VecDeque::from([(0, now)]),
            round_wanted: false,
            reads: VecDeque::new(),
            early_reads: Vec::new(),
            transfer: None,
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

    /// A follower answered a message of `round`.
    pub(super) fn acked_round(&mut self, from: NodeId, round: u64) {
        if let Some(p) = self.progress.get_mut(&from) {
            p.acked_round = p.acked_round.max(round.min(self.round));
        }
    }

    /// The highest round a majority (this leader included) has answered.
    pub(super) fn quorum_round(&self, voters: &Majority, me: NodeId) -> u64 {
        voters
            .quorum_value(|id| if id == me { self.round } else { self.progress.get(&id).map_or(0, |p| p.acked_round) })
    }

    /// When the highest round a majority answered started: the last moment
    /// a majority is known to have recognised this leader. Rounds older than
    /// the quorum's are forgotten. `None` if that round is no longer known.
    pub(super) fn quorum_contact(&mut self, voters: &Majority, me: NodeId) -> Option<Instant> {
        let q = self.quorum_round(voters, me);
        while self.round_started.len() > 1 && self.round_started.front().is_some_and(|&(r, _)| r < q) {
            self.round_started.pop_front();
        }
        self.round_started.front().filter(|&&(r, _)| r == q).map(|&(_, t)| t)
    }

    /// Removes and returns the reads whose round a majority has answered.
    pub(super) fn confirmed_reads(&mut self, quorum_round: u64) -> Vec<PendingRead> {
        let mut done = Vec::new();
        while self.reads.front().is_some_and(|r| r.round <= quorum_round) {
            done.extend(self.reads.pop_front());
        }
        done
    }

    /// True if a read with this local id is waiting here.
    pub(super) fn has_local_read(&self, id: ReadId) -> bool {
        let local = ReadTarget::Local(id);
        self.reads.iter().any(|r| r.target == local) || self.early_reads.contains(&local)
    }
}
