//! Leadership transfer, leader side (dissertation §3.10): stop accepting
//! proposals, bring the target up to date, then send it `TimeoutNow`.

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
        l.transfer = Some(Transfer { to, deadline, timeout_now_sent: false });
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
        let Some(t) = l.transfer.as_mut().filter(|t| !t.timeout_now_sent) else {
            return;
        };
        if l.progress.get(&t.to).is_some_and(|p| p.matched >= last) {
            t.timeout_now_sent = true;
            l.lease_forfeited = true;
            let to = t.to;
            self.send(to, Body::TimeoutNow);
        }
    }
}
