//! Cluster configurations (dissertation §4, joint consensus): who votes, who
//! only receives the log, and, while a change is under way, the outgoing
//! voters whose majority must agree too.
//!
//! # When a configuration takes effect
//!
//! A configuration is a log entry ([`crate::Payload::Membership`]) and takes
//! effect on every node **as soon as it is appended** to that node's log,
//! committed or not (the dissertation's choice); a truncation that removes it
//! brings back the one before. Every decision (votes, commitment, where to
//! replicate) therefore uses the newest configuration in the node's own log.
//! This is safe because a leader starts a change only when the previous one
//! is committed and it has committed an entry of its own term, and every
//! voter-set change goes through a joint configuration: while `C_old,new` is
//! in a log, elections and commitment need a majority of `C_old` and a
//! majority of `C_new`, so no two leaders (one deciding by `C_old`, one by
//! `C_new`) can be elected in one term, and nothing commits without both.
//! The leader leaves the joint configuration on its own by appending `C_new`
//! once `C_old,new` is committed. A restart recovers the configuration from
//! the snapshot and the configuration entries after it, exactly as before.

use crate::quorum::{Majority, VoteResult};
use crate::types::{Bytes, LogIndex, NodeId};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

/// One cluster configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The voters (in a joint configuration: the incoming voters).
    pub voters: BTreeSet<NodeId>,
    /// In a joint configuration, the outgoing voters; empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Members that receive the log but neither vote nor count.
    pub learners: BTreeSet<NodeId>,
    /// Each member's address, opaque to the core (the host's format, e.g.
    /// `host:port` in UTF-8), so a node added at runtime can be reached.
    pub addrs: BTreeMap<NodeId, Bytes>,
}

impl Membership {
    /// A configuration of `voters` and no learners (a bootstrap).
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership { voters: voters.into_iter().collect(), ..Membership::default() }
    }

    /// True while a voter-set change is under way.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// True if `id` votes (in either half of a joint configuration).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// True if `id` is a member of any kind.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member, sorted, without duplicates.
    pub fn members(&self) -> Vec<NodeId> {
        let all: BTreeSet<NodeId> = self.voters.iter().chain(&self.outgoing).chain(&self.learners).copied().collect();
        all.into_iter().collect()
    }

    /// An upper bound on the encoded size. Out of line, so that
    /// `Entry::size_bound`, computed for every entry, stays small enough to inline.
    #[inline(never)]
    pub(crate) fn size_bound(&self) -> usize {
        let ids = self.voters.len() + self.outgoing.len() + self.learners.len();
        let addrs: usize = self.addrs.values().map(|a| a.len() + 20).sum();
        16 + 10 * ids + addrs
    }

    pub(crate) fn quorum(&self) -> JointQuorum {
        JointQuorum {
            incoming: Majority::new(self.voters.iter().copied()),
            outgoing: Majority::new(self.outgoing.iter().copied()),
        }
    }
}

/// The majorities a decision needs: of `incoming`, and of `outgoing` when
/// joint (an empty set agrees with everything, see [`Majority`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JointQuorum {
    incoming: Majority,
    outgoing: Majority,
}

impl JointQuorum {
    pub(crate) fn committed_index(&self, acked: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        self.incoming.committed_index(&acked).min(self.outgoing.committed_index(&acked))
    }

    pub(crate) fn quorum_value(&self, value: impl Fn(NodeId) -> u64) -> u64 {
        self.incoming.quorum_value(&value).min(self.outgoing.quorum_value(&value))
    }

    pub(crate) fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        match (self.incoming.vote_result(&vote), self.outgoing.vote_result(&vote)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

/// A membership change a leader is asked to make.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipChange {
    /// Add `id` as a learner reachable at `addr`.
    AddLearner {
        /// The new member.
        id: NodeId,
        /// Its address (host format).
        addr: Bytes,
    },
    /// Make learner `id` a voter (through a joint configuration). Refused
    /// until it has acknowledged the leader's log and caught up within
    /// `Config::max_learner_lag` entries.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Remove member `id` (a voter through a joint configuration). A leader
    /// that removes itself steps down once the change is committed.
    Remove {
        /// The member.
        id: NodeId,
    },
}

/// Why `Node::change_membership` refused. Nothing was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeError {
    /// Only the leader changes the configuration.
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The previous change is not committed yet (or the joint configuration
    /// not left), or the leader has not yet committed an entry of its term.
    ChangeInProgress,
    /// A leadership transfer is under way.
    TransferInProgress,
    /// `id` is not a member (or not a learner, for a promotion).
    UnknownNode(NodeId),
    /// `id` is already a member.
    AlreadyMember(NodeId),
    /// The change would leave no voter.
    LastVoter(NodeId),
    /// The learner is too far behind the leader's log to vote.
    LearnerBehind {
        /// The learner.
        id: NodeId,
        /// What it is known to hold.
        matched: LogIndex,
        /// The leader's last index.
        last: LogIndex,
    },
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader; node {l} leads"),
            ChangeError::NotLeader { leader_hint: None } => write!(f, "not the leader; leader unknown"),
            ChangeError::ChangeInProgress => write!(f, "another membership change is in progress"),
            ChangeError::TransferInProgress => write!(f, "a leadership transfer is in progress"),
            ChangeError::UnknownNode(id) => write!(f, "node {id} is not a member that can take this change"),
            ChangeError::AlreadyMember(id) => write!(f, "node {id} is already a member"),
            ChangeError::LastVoter(id) => write!(f, "removing node {id} would leave no voter"),
            ChangeError::LearnerBehind { id, matched, last } => {
                write!(f, "learner {id} has caught up to index {matched} of {last}; not yet close enough to vote")
            }
        }
    }
}

impl core::error::Error for ChangeError {}
