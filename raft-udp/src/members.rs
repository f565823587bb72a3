//! Membership requests on the wire: `raft-udp member list|add|remove` ask the
//! leader with a [`crate::packet::Packet::MemberRequest`], which answers with a
//! [`crate::packet::Packet::MemberReply`] once the change has committed.

use serde::{Deserialize, Serialize};

/// What a member request asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberOp {
    /// The configuration in effect on the leader.
    List,
    /// Add `id`, reachable at `addr` (`HOST:PORT`), as a learner.
    AddLearner {
        /// The new node.
        id: u64,
        /// Its address, as every member will reach it.
        addr: String,
    },
    /// Make learner `id` a voter.
    Promote {
        /// The learner.
        id: u64,
    },
    /// Remove member `id`.
    Remove {
        /// The member.
        id: u64,
    },
}

/// One member and its address (if the configuration holds one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub id: u64,
    /// Its address, as the configuration holds it.
    pub addr: Option<String>,
}

/// A configuration, as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The node that answered (the leader).
    pub leader: u64,
    /// Its term.
    pub term: u64,
    /// The voters (in a joint configuration: the incoming ones).
    pub voters: Vec<Member>,
    /// The learners.
    pub learners: Vec<Member>,
    /// In a joint configuration, the outgoing voters (else empty).
    pub outgoing: Vec<u64>,
}

impl Members {
    /// True while a voter change is under way.
    pub fn joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// The voters' ids.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.voters.iter().map(|m| m.id).collect()
    }

    /// The learners' ids.
    pub fn learner_ids(&self) -> Vec<u64> {
        self.learners.iter().map(|m| m.id).collect()
    }
}

/// How a node answers a member request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberResult {
    /// Done (for a change: committed), with the configuration then in effect.
    Done(Members),
    /// This node does not lead; the leader it knows of and its address.
    NotLeader {
        /// The leader's id.
        leader: Option<u64>,
        /// Its address, from the configuration.
        addr: Option<String>,
    },
    /// Refused; nothing changed. `retry`: the refusal may pass later (a
    /// change in progress, a learner still catching up).
    Refused {
        /// Why.
        error: String,
        /// Whether asking again later may succeed.
        retry: bool,
    },
    /// The change may or may not have been made (look with `List`).
    Unknown(String),
}
