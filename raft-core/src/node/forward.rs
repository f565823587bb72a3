//! Proposal forwarding: a follower hands a client's command to its leader
//! and reports where the leader appended it.

use super::{Node, RoleState};
use crate::error::{ForwardError, ProposeError};
use crate::message::{Body, ForwardOutcome, ForwardProposal, ForwardResponse};
use crate::output::{Output, ProposalId};
use crate::time::Instant;
use crate::types::{Bytes, NodeId, Term};

impl Node {
    /// Proposes `command` wherever the leader is: a leader appends it at
    /// once; a follower that knows the leader forwards it (with
    /// `Config::forward_proposals`). Its outcome comes as exactly one
    /// [`Output::Forwarded`] with `id`. An `Err` means nothing was sent or
    /// appended and no `Output::Forwarded` will follow.
    pub fn forward(&mut self, now: Instant, id: ProposalId, command: impl Into<Bytes>) -> Result<(), ProposeError> {
        self.input(now);
        let command = command.into();
        if matches!(self.role, RoleState::Leader(_)) {
            let index = self.propose(now, command)?;
            let result = Ok((index, self.hard.term));
            self.out.push_back(Output::Forwarded { id, result });
            return Ok(());
        }
        let leader = self.leader.filter(|_| self.config.forward_proposals);
        let Some(leader) = leader else {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        };
        if command.len() > self.config.max_entry_bytes {
            return Err(ProposeError::TooLarge { size: command.len(), max: self.config.max_entry_bytes });
        }
        // A wire id of this node's own, never reused: a late answer to an
        // earlier forward can never be taken for this one's.
        let wire = self.next_wire_id();
        self.forwards.insert(wire, (id, now + self.config.election_timeout_max));
        self.send(leader, Body::Forward(ForwardProposal { id: wire, command }));
        Ok(())
    }

    /// Leader: a follower forwards a command.
    pub(super) fn handle_forward(&mut self, now: Instant, from: NodeId, req: ForwardProposal) {
        let outcome = match self.propose(now, req.command) {
            Ok(index) => ForwardOutcome::Appended { index },
            Err(ProposeError::NotLeader { .. }) => ForwardOutcome::NotLeader,
            Err(ProposeError::TransferInProgress { .. }) => ForwardOutcome::TransferInProgress,
            Err(ProposeError::TooLarge { .. }) => ForwardOutcome::TooLarge,
        };
        self.send(from, Body::ForwardResponse(ForwardResponse { id: req.id, outcome }));
    }

    /// Follower: the leader answered a forwarded command.
    pub(super) fn handle_forward_response(&mut self, from: NodeId, term: Term, resp: ForwardResponse) {
        if self.leader != Some(from) {
            return;
        }
        let Some((id, _)) = self.forwards.remove(&resp.id) else {
            return;
        };
        let max = self.config.max_entry_bytes;
        let result = match resp.outcome {
            ForwardOutcome::Appended { index } => Ok((index, term)),
            ForwardOutcome::NotLeader => Err(ForwardError::Refused(ProposeError::NotLeader { leader_hint: None })),
            ForwardOutcome::TransferInProgress => {
                Err(ForwardError::Refused(ProposeError::TransferInProgress { to: from }))
            }
            ForwardOutcome::TooLarge => Err(ForwardError::Refused(ProposeError::TooLarge { size: max + 1, max })),
        };
        self.out.push_back(Output::Forwarded { id, result });
    }

    /// Forwards whose leader did not answer in time, or all of them when the
    /// leader changed: their outcome is unknown.
    pub(super) fn expire_forwards(&mut self, now: Option<Instant>) {
        let expired: alloc::vec::Vec<u64> =
            self.forwards.iter().filter(|(_, (_, t))| now.is_none_or(|now| now >= *t)).map(|(&w, _)| w).collect();
        for wire in expired {
            if let Some((id, _)) = self.forwards.remove(&wire) {
                self.out.push_back(Output::Forwarded { id, result: Err(ForwardError::Unknown) });
            }
        }
    }
}
