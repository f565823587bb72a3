//! Membership from a test's point of view: each node's configuration, the
//! newest committed one, and changes made through whichever node leads,
//! retried until they are done (as an operator's tool would).

use super::cluster::Cluster;
use raft_core::{Bytes, ChangeError, Duration, LogIndex, Membership, MembershipChange, Node, NodeId, Role, Term};
use std::fmt;

/// Why [`Cluster::change_until_done`] gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeFailed {
    /// A leader refused for a reason time does not cure (an unknown node, an
    /// existing member, the last voter).
    Refused(ChangeError),
    /// The change was not done in time; the last refusal, if any.
    TimedOut(Option<ChangeError>),
}

impl fmt::Display for ChangeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeFailed::Refused(e) => write!(f, "refused: {e}"),
            ChangeFailed::TimedOut(None) => write!(f, "not done in time"),
            ChangeFailed::TimedOut(Some(e)) => write!(f, "not done in time (last refusal: {e})"),
        }
    }
}

impl std::error::Error for ChangeFailed {}

/// The address the simulator gives node `id` in configurations.
pub fn sim_addr(id: NodeId) -> Bytes {
    Bytes::from(format!("sim:{id}").into_bytes())
}

/// True once `m` is the configuration `change` aims at, and not joint.
fn done(change: &MembershipChange, m: &Membership) -> bool {
    if m.is_joint() {
        return false;
    }
    match change {
        MembershipChange::AddLearner { id, .. } => m.contains(*id),
        MembershipChange::Promote { id } => m.voters.contains(id),
        MembershipChange::Remove { id } => !m.contains(*id),
        _ => false,
    }
}

/// How long to run between two attempts or checks.
pub const POLL: Duration = Duration::from_millis(20);

/// One membership change made as an operator's tool would: through
/// whichever node leads, retrying refusals that time cures (no leader, a
/// change or transfer in progress, a learner behind) and attempts whose
/// leader lost its term, until the committed configuration is what the
/// change aims at and is not joint. [`ChangeTask::poll`] never runs the
/// cluster, so a test can interleave it with clients and faults.
#[derive(Debug)]
pub struct ChangeTask {
    change: MembershipChange,
    deadline: raft_core::Instant,
    attempt: Option<(NodeId, Term)>,
    last_refusal: Option<ChangeError>,
}

impl ChangeTask {
    /// A task for `change` that gives up `max` from now.
    pub fn new(c: &Cluster, change: MembershipChange, max: Duration) -> ChangeTask {
        ChangeTask { change, deadline: c.now() + max, attempt: None, last_refusal: None }
    }

    /// The change.
    pub fn change(&self) -> &MembershipChange {
        &self.change
    }

    /// Checks whether the change is done and, if no attempt is pending,
    /// asks the current leader once. `Some` once finished: the index of the
    /// committed configuration, or why it failed.
    pub fn poll(&mut self, c: &mut Cluster) -> Option<Result<LogIndex, ChangeFailed>> {
        if let Some((index, m)) = c.committed_config()
            && done(&self.change, m)
        {
            return Some(Ok(index));
        }
        if c.now() >= self.deadline {
            return Some(Err(ChangeFailed::TimedOut(self.last_refusal.clone())));
        }
        let pending =
            self.attempt.is_some_and(|(l, t)| c.node(l).is_some_and(|n| n.term() == t && n.role() == Role::Leader));
        if pending {
            return None;
        }
        let leader = c.current_leader()?;
        let term = c.node(leader).map(Node::term);
        match c.change_membership(leader, self.change.clone()) {
            Ok(_) => self.attempt = term.map(|t| (leader, t)),
            Err(
                e @ (ChangeError::NotLeader { .. }
                | ChangeError::ChangeInProgress
                | ChangeError::TransferInProgress
                | ChangeError::LearnerBehind { .. }),
            ) => self.last_refusal = Some(e),
            // A retry whose first attempt is already in force at the leader
            // (committed there, not yet applied anywhere).
            Err(ChangeError::AlreadyMember(_) | ChangeError::UnknownNode(_))
                if c.membership(leader).is_some_and(|m| done(&self.change, &strip_joint(m))) =>
            {
                self.attempt = term.map(|t| (leader, t));
            }
            Err(e) => return Some(Err(ChangeFailed::Refused(e))),
        }
        None
    }
}

impl Cluster {
    /// The node's configuration in force (the newest in its log), if it is up.
    pub fn membership(&self, id: NodeId) -> Option<&Membership> {
        self.node(id).map(raft_core::Node::membership)
    }

    /// The newest configuration known committed (applied by some node), and
    /// its index.
    pub fn committed_config(&self) -> Option<(LogIndex, &Membership)> {
        self.checker.committed_config()
    }

    /// The live, connected node that leads in the newest term, if any.
    pub fn current_leader(&self) -> Option<NodeId> {
        self.leaders().into_iter().max_by_key(|&(_, term)| term).map(|(id, _)| id)
    }

    /// Makes `change` through whichever node leads until it is done (see
    /// [`ChangeTask`]), running the cluster in 20 ms slices; at most `max`
    /// of virtual time. Returns the index of the configuration it led to.
    pub fn change_until_done(&mut self, change: MembershipChange, max: Duration) -> Result<LogIndex, ChangeFailed> {
        let mut task = ChangeTask::new(self, change, max);
        loop {
            if let Some(r) = task.poll(self) {
                return r;
            }
            self.run_for(POLL);
        }
    }

    /// Adds the node as a learner, then (retrying while it is behind)
    /// promotes it to voter: see [`Cluster::change_until_done`].
    pub fn add_voter(&mut self, id: NodeId, max: Duration) -> Result<LogIndex, ChangeFailed> {
        let deadline = self.now() + max;
        let already = self.committed_config().is_some_and(|(_, m)| m.contains(id));
        if !already {
            self.change_until_done(MembershipChange::AddLearner { id, addr: sim_addr(id) }, max)?;
        }
        let rest = deadline.saturating_since(self.now());
        self.change_until_done(MembershipChange::Promote { id }, rest)
    }

    /// Removes the member: see [`Cluster::change_until_done`].
    pub fn remove_member(&mut self, id: NodeId, max: Duration) -> Result<LogIndex, ChangeFailed> {
        self.change_until_done(MembershipChange::Remove { id }, max)
    }

    /// Replaces voter `old` (typically crashed for good) by a new node with
    /// a new id and an empty disk: adds it, makes it a voter, removes `old`.
    /// Returns the new node's id.
    pub fn replace_voter(&mut self, old: NodeId, max: Duration) -> Result<NodeId, ChangeFailed> {
        let deadline = self.now() + max;
        let new = self.add_node();
        self.add_voter(new, max)?;
        let rest = deadline.saturating_since(self.now());
        self.remove_member(old, rest)?;
        Ok(new)
    }
}

impl Cluster {
    /// Runs until the membership has settled: a node leads, holds the newest
    /// committed configuration as its own (not joint), and every live member
    /// of it has applied `write`, proposed at that leader once it held the
    /// configuration (again at the next leader if that one loses its term);
    /// at most `max`. Returns the write's index, or what was missing.
    pub fn settle_membership(&mut self, write: Bytes, max: Duration) -> Result<LogIndex, String> {
        let deadline = self.now() + max;
        let mut proposed: Option<(NodeId, u32, Term, LogIndex)> = None;
        loop {
            if let Some((l, life, term, index)) = proposed {
                let still = self.lifetime(l) == life && self.node(l).is_some_and(|n| n.term() == term);
                let members = self.committed_config().map(|(_, m)| m.members()).unwrap_or_default();
                let wanted = raft_core::Payload::Command(write.clone());
                let committed = self.committed_entry(index).is_some_and(|(_, p)| *p == wanted);
                // Applied as an entry or inside a restored snapshot.
                let applied = |id: NodeId| self.node(id).is_some_and(|n| n.last_applied() >= index);
                let live: Vec<NodeId> = members.iter().copied().filter(|&id| self.is_up(id)).collect();
                if committed && live.iter().all(|&id| applied(id)) {
                    return Ok(index);
                }
                if !still {
                    proposed = None;
                }
            }
            if proposed.is_none()
                && let Some(l) = self.current_leader()
                && let Some((_, m)) = self.committed_config()
                && !m.is_joint()
                && self.membership(l) == Some(m)
                && let Ok(index) = self.propose(l, write.clone())
            {
                let term = self.node(l).map_or(Term(0), Node::term);
                proposed = Some((l, self.lifetime(l), term, index));
            }
            if self.now() >= deadline {
                let config = self.committed_config().map(|(i, m)| format!("{m:?} (i{i})"));
                return Err(format!(
                    "membership did not settle: leader {:?}, committed configuration {config:?}, write proposed {proposed:?}",
                    self.current_leader()
                ));
            }
            self.run_for(POLL);
        }
    }
}

/// The configuration a joint one leads to.
fn strip_joint(m: &Membership) -> Membership {
    Membership { outgoing: Default::default(), ..m.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;
    use std::collections::BTreeSet;

    #[test]
    fn a_crashed_voter_is_replaced_and_the_new_node_catches_up() {
        let mut c = Cluster::new(SimConfig::new(3, 77));
        let leader = c.check_one_leader();
        for k in 0..5 {
            c.propose(leader, format!("before {k}").as_str()).unwrap();
        }
        c.run_for(Duration::from_millis(200));
        let dead = NodeId(leader.0 % 3 + 1);
        c.crash(dead);
        let new = c.replace_voter(dead, Duration::from_secs(10)).unwrap();
        assert_eq!(new, NodeId(4));
        let (_, m) = c.committed_config().unwrap();
        let expected: BTreeSet<NodeId> = [1, 2, 3, 4].map(NodeId).into_iter().filter(|&v| v != dead).collect();
        assert_eq!((&m.voters, m.is_joint(), m.learners.is_empty()), (&expected, false, true));
        let index = c.settle_membership(Bytes::from("after"), Duration::from_secs(5)).unwrap();
        assert!(c.node(new).is_some_and(|n| n.last_applied() >= index && n.membership().voters == expected));
        assert!(c.applied(new).iter().any(|e| e.payload == raft_core::Payload::Command(Bytes::from("before 4"))));
        // A change that cannot be made is refused with its reason.
        let r = c.change_until_done(MembershipChange::Promote { id: NodeId(9) }, Duration::from_secs(1));
        assert_eq!(r, Err(ChangeFailed::Refused(ChangeError::UnknownNode(NodeId(9)))));
    }
}
