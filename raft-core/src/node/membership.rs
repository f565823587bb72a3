//! Configuration changes (dissertation §4): which configuration is in
//! effect, joint consensus, learners, and a leader that removes itself. See
//! [`crate::membership`] for when a configuration takes effect and why that
//! is safe.

use super::{Node, RoleState};
use crate::membership::{ChangeError, Membership, MembershipChange};
use crate::time::Instant;
use crate::types::{LogIndex, Payload};

impl Node {
    /// Asks the leader to change the cluster's configuration (see
    /// [`MembershipChange`]). Returns the index of the configuration entry;
    /// the change takes effect at once and is done when that entry (and, for
    /// a voter change, the final configuration appended after the joint one)
    /// is committed, as [`Node::membership`] and `Event::MembershipChanged`
    /// tell. One change at a time.
    pub fn change_membership(&mut self, now: Instant, change: MembershipChange) -> Result<LogIndex, ChangeError> {
        self.input(now);
        let RoleState::Leader(l) = &self.role else {
            return Err(ChangeError::NotLeader { leader_hint: self.leader });
        };
        if l.transfer.is_some() {
            return Err(ChangeError::TransferInProgress);
        }
        let committed_in_term = self.log.term_at(self.commit) == Some(self.hard.term);
        let latest_committed = self.configs.last().is_none_or(|&(i, _)| i <= self.commit);
        if !committed_in_term || !latest_committed || self.membership.is_joint() {
            return Err(ChangeError::ChangeInProgress);
        }
        let mut next = self.membership.clone();
        match change {
            MembershipChange::AddLearner { id, addr } => {
                if next.contains(id) {
                    return Err(ChangeError::AlreadyMember(id));
                }
                next.learners.insert(id);
                next.addrs.insert(id, addr);
            }
            MembershipChange::Promote { id } => {
                if !next.learners.contains(&id) {
                    return Err(ChangeError::UnknownNode(id));
                }
                let last = self.log.last_index();
                let matched = l.progress.get(&id).map_or(LogIndex(0), |p| p.matched);
                // A learner that never acknowledged anything (not reached
                // yet) is behind however short the log: as a voter it would
                // only count against every majority.
                if matched == LogIndex(0) || matched.0.saturating_add(self.config.max_learner_lag) < last.0 {
                    return Err(ChangeError::LearnerBehind { id, matched, last });
                }
                next.learners.remove(&id);
                next.outgoing = next.voters.clone();
                next.voters.insert(id);
            }
            MembershipChange::Remove { id } => {
                if next.learners.remove(&id) {
                    next.addrs.remove(&id);
                } else if next.voters.contains(&id) {
                    if next.voters.len() == 1 {
                        return Err(ChangeError::LastVoter(id));
                    }
                    next.outgoing = next.voters.clone();
                    next.voters.remove(&id);
                } else {
                    return Err(ChangeError::UnknownNode(id));
                }
            }
        }
        Ok(self.append_as_leader(Payload::Membership(next.into())))
    }

    /// The configuration entries of the log from `from` on were appended
    /// (or the log was cut before `from`): record them and bring every
    /// derived view up to date.
    pub(super) fn note_configs_from(&mut self, from: LogIndex) {
        self.configs.retain(|&(i, _)| i < from);
        let mut i = from.max(self.log.base_index().next());
        while let Some(e) = self.log.entry(i) {
            if let Payload::Membership(m) = &e.payload {
                self.configs.push((i, (**m).clone()));
            }
            i = i.next();
        }
        self.refresh_membership();
    }

    /// The log was compacted up to `index`: the configuration in effect there
    /// becomes the base. Returns it (it goes into the snapshot).
    pub(super) fn compact_configs(&mut self, index: LogIndex) -> Membership {
        let at = self.configs.iter().rev().find(|&&(i, _)| i <= index).map(|(_, m)| m.clone());
        if let Some(m) = at {
            self.base_membership = (m, true);
        }
        self.configs.retain(|&(i, _)| i > index);
        self.base_membership.0.clone()
    }

    /// The configuration in effect at `index` (at or after the snapshot's
    /// index): what [`Node::compact`](crate::Node::compact) at `index` would
    /// record in the snapshot. A host that writes a snapshot itself before
    /// calling [`Node::compact_stored`](crate::Node::compact_stored) stores it
    /// beside the state.
    pub fn membership_at(&self, index: LogIndex) -> Membership {
        self.configs
            .iter()
            .rev()
            .find(|&&(i, _)| i <= index)
            .map_or_else(|| self.base_membership.0.clone(), |(_, m)| m.clone())
    }

    /// A snapshot with `membership` replaced the log up to its index.
    pub(super) fn install_configs(&mut self, membership: &Membership) {
        if !membership.voters.is_empty() {
            self.base_membership = (membership.clone(), true);
        }
        let (base, last) = (self.log.base_index(), self.log.last_index());
        self.configs.retain(|&(i, _)| i > base && i <= last);
        self.refresh_membership();
    }

    /// True once a configuration is in the log or a snapshot (after that,
    /// `Config::members` is ignored).
    pub(super) fn config_logged(&self) -> bool {
        self.base_membership.1 || !self.configs.is_empty()
    }

    /// The newest configuration at or below the commit index.
    pub(super) fn committed_membership(&self) -> &Membership {
        self.configs.iter().rev().find(|&&(i, _)| i <= self.commit).map_or(&self.base_membership.0, |(_, m)| m)
    }

    /// True if `id` voted in an earlier configuration of this node's log (or
    /// its snapshot) but not in the newest: a change this node holds removed it.
    pub(super) fn removed_voter(&self, id: crate::NodeId) -> bool {
        !self.membership.is_voter(id)
            && (self.base_membership.0.is_voter(id) || self.configs.iter().any(|(_, m)| m.is_voter(id)))
    }

    /// The index of the configuration entry in effect (the snapshot's index
    /// when it came with the snapshot; 0 for the bootstrap configuration of
    /// `Config::members`, not yet logged).
    pub fn membership_index(&self) -> LogIndex {
        match self.configs.last() {
            Some(&(i, _)) => i,
            None if self.base_membership.1 => self.log.base_index(),
            None => LogIndex(0),
        }
    }

    /// The other voters (both halves of a joint configuration): whom to ask for votes.
    pub(super) fn vote_targets(&self) -> alloc::vec::Vec<crate::NodeId> {
        let me = self.config.id;
        self.peers.iter().copied().filter(|&p| p != me && self.membership.is_voter(p)).collect()
    }

    fn refresh_membership(&mut self) {
        let current = self.configs.last().map_or(&self.base_membership.0, |(_, m)| m);
        if *current == self.membership && !self.peers.is_empty() {
            return;
        }
        self.membership = current.clone();
        self.membership_moved = true;
        self.quorum = self.membership.quorum();
        let me = self.config.id;
        if let RoleState::Leader(l) = &mut self.role {
            // Marks made before the change are for the peers of then.
            l.take_dirty_all(&self.peers);
        }
        self.peers = self.membership.members().into_iter().filter(|&p| p != me).collect();
        let next = self.log.last_index().next();
        let config_index = self.configs.last().map_or(self.log.base_index(), |&(i, _)| i);
        if let RoleState::Leader(l) = &mut self.role {
            l.sync_peers(&self.peers, next, config_index);
        }
    }

    /// Leader, after its commit index moved: once a joint configuration is
    /// committed, append the final one; once a configuration that removes
    /// this leader is committed, step down (it will not campaign again).
    pub(super) fn advance_membership(&mut self) {
        if !matches!(self.role, RoleState::Leader(_)) {
            return;
        }
        let latest_committed = self.configs.last().is_none_or(|&(i, _)| i <= self.commit);
        if !latest_committed {
            return;
        }
        if self.membership.is_joint() {
            let mut next = self.membership.clone();
            next.outgoing.clear();
            let keep: alloc::vec::Vec<_> = next.members();
            next.addrs.retain(|id, _| keep.contains(id));
            self.append_as_leader(Payload::Membership(next.into()));
        } else if !self.membership.voters.contains(&self.config.id) {
            let now = self.last_now;
            self.become_follower(now, self.hard.term, None);
        }
    }
}
