//! Leadership transfer, leader side (dissertation §3.10): stop accepting
//! proposals, bring the target up to date, then send it `TimeoutNow` (again
//! if it answers a later heartbeat round without having acted on it).

use super::leader::Transfer;
use super::{Node, RoleState};
use crate::error::TransferError;
use crate::message::Body;
use crate::time::Instant;
use crate::types::NodeId;

impl Node {
    pub(super) fn start_transfer(&mut self, now: Instant, to: NodeId) -> Result<(), TransferError> {
        let deadline = now + self.config.election_timeout_max;
        let RoleState::Leader(l) = &mut self.role else {
            return Err(TransferError::NotLeader { leader_hint: self.leader });
        };
        if to == self.config.id || !self.membership.voters.contains(&to) {
            return Err(TransferError::NotAVoter(to));
        }
        if let Some(t) = l.transfer {
            return Err(TransferError::InProgress { to: t.to });
        }
        l.transfer = Some(Transfer { to, deadline, timeout_now_round: None });
        l.dirty.insert(to);
        self.maybe_send_timeout_now();
        Ok(())
    }

    /// Sends `TimeoutNow` once the target holds this leader's whole log
    /// (durably: it acknowledged it). The target then wins the election.
    pub(super) fn maybe_send_timeout_now(&mut self) {
        let last = self.log.last_index();
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let Some(t) = l.transfer.as_mut().filter(|t| t.timeout_now_round.is_none()) else {
            return;
        };
        if l.progress.get(&t.to).is_some_and(|p| p.matched >= last) {
            t.timeout_now_round = Some(l.round);
            l.lease_forfeited = true;
            let to = t.to;
            self.send(to, Body::TimeoutNow);
        }
    }

    /// The target answered `round` in this term, holding this leader's
    /// whole log, after `TimeoutNow` went out in an earlier round: it did
    /// not act on it (lost, or it came before the target knew this leader,
    /// e.g. just after a restart). Sends it again, at most once a round,
    /// rather than refuse proposals until the transfer times out. A copy
    /// that comes late finds the target in a newer term and is dropped.
    pub(super) fn resend_timeout_now(&mut self, from: NodeId, round: u64) {
        // Runs for every acknowledgement: the transfer check comes first.
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let Some(t) = l.transfer.as_mut().filter(|t| t.to == from) else {
            return;
        };
        let last = self.log.last_index();
        let unheeded = t.timeout_now_round.is_some_and(|sent| round > sent);
        if unheeded && l.progress.get(&from).is_some_and(|p| p.matched >= last) {
            t.timeout_now_round = Some(l.round);
            self.send(from, Body::TimeoutNow);
        }
    }
}
