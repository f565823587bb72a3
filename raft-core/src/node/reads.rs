//! Linearizable reads without log writes (dissertation §6.4): ReadIndex on
//! the leader, lease reads, and followers asking their leader.

use super::leader::{PendingRead, ReadTarget};
use super::{Node, RoleState};
use crate::config::ReadMode;
use crate::error::ReadError;
use crate::message::{Body, ReadIndexRequest, ReadIndexResponse};
use crate::output::{Output, ReadId};
use crate::time::Instant;
use crate::types::NodeId;
use alloc::vec::Vec;

impl Node {
    pub(super) fn start_read(&mut self, now: Instant, id: ReadId) -> Result<(), ReadError> {
        let duplicate = self.remote_reads.values().any(|&(r, _)| r == id)
            || matches!(&self.role, RoleState::Leader(l) if l.has_local_read(id));
        if duplicate {
            return Err(ReadError::DuplicateId);
        }
        if matches!(self.role, RoleState::Leader(_)) {
            self.admit_read(ReadTarget::Local(id));
            return Ok(());
        }
        let Some(leader) = self.leader else {
            return Err(ReadError::NotLeader { leader_hint: None });
        };
        // A wire id of this node's own, never reused: a late answer to an
        // earlier request can never complete a later read (etcd #20418).
        let wire = self.next_wire_id();
        self.remote_reads.insert(wire, (id, now + self.config.election_timeout_max));
        self.send(leader, Body::ReadIndex(ReadIndexRequest { id: wire }));
        Ok(())
    }

    /// Leader: registers a read. Until an entry of this term commits, the
    /// commit index may lag what earlier leaders committed (etcd #7331), so
    /// the read waits. Then its index is the commit index now, confirmed by
    /// the lease if one holds, else by the next heartbeat round (never by a
    /// round that started before the read arrived: etcd #20418).
    pub(super) fn admit_read(&mut self, target: ReadTarget) {
        let now = self.last_now;
        let committed_in_term = self.log.term_at(self.commit) == Some(self.hard.term);
        let lease = self.lease_holds(now);
        let index = self.commit;
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        if !committed_in_term {
            l.early_reads.push(target);
            return;
        }
        if lease {
            self.finish_read(target, index);
            return;
        }
        let round = l.round + 1;
        l.round_wanted = true;
        l.reads.push_back(PendingRead { target, index, round });
    }

    /// Leader: the first entry of this term committed; reads that waited for
    /// it are registered now.
    pub(super) fn admit_early_reads(&mut self) {
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        if l.early_reads.is_empty() {
            return;
        }
        for target in core::mem::take(&mut l.early_reads) {
            self.admit_read(target);
        }
    }

    /// True if this leader holds a read lease at `now`: lease mode, no
    /// transfer under way, and `now` is within `election_timeout_min -
    /// max_clock_drift` of the start of the latest round a majority answered.
    fn lease_holds(&mut self, now: Instant) -> bool {
        let ReadMode::Lease { max_clock_drift } = self.config.read_mode else {
            return false;
        };
        let me = self.config.id;
        let length = self.config.election_timeout_min - max_clock_drift;
        let RoleState::Leader(l) = &mut self.role else {
            return false;
        };
        if l.transfer.is_some() || l.lease_forfeited {
            return false;
        }
        now < l.quorum_contact(&self.quorum, me) + length
    }

    /// Leader: answers every read whose round a majority has acknowledged.
    /// Runs for every acknowledgement; inlined, it costs one check when no
    /// read waits.
    #[inline]
    pub(super) fn release_confirmed_reads(&mut self) {
        if matches!(&self.role, RoleState::Leader(l) if !l.reads.is_empty()) {
            self.release_reads_now();
        }
    }

    #[inline(never)]
    fn release_reads_now(&mut self) {
        let me = self.config.id;
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let q = l.quorum_round(&self.quorum, me);
        let done: Vec<PendingRead> = l.confirmed_reads(q);
        for r in done {
            self.finish_read(r.target, r.index);
        }
    }

    fn finish_read(&mut self, target: ReadTarget, index: crate::LogIndex) {
        match target {
            ReadTarget::Local(id) => self.out.push_back(Output::Read { id, result: Ok(index) }),
            ReadTarget::Remote(to, id) => {
                self.send(to, Body::ReadIndexResponse(ReadIndexResponse { id, index: Some(index) }));
            }
        }
    }

    /// A follower asks for a read index. Only a leader gives one.
    pub(super) fn handle_read_index_request(&mut self, from: NodeId, req: ReadIndexRequest) {
        if matches!(self.role, RoleState::Leader(_)) {
            self.admit_read(ReadTarget::Remote(from, req.id));
        } else {
            self.send(from, Body::ReadIndexResponse(ReadIndexResponse { id: req.id, index: None }));
        }
    }

    /// The leader answered one of this node's reads.
    pub(super) fn handle_read_index_response(&mut self, from: NodeId, resp: ReadIndexResponse) {
        if self.leader != Some(from) {
            return;
        }
        let Some((id, _)) = self.remote_reads.remove(&resp.id) else {
            return;
        };
        let result = resp.index.ok_or(ReadError::LeaderChanged);
        self.out.push_back(Output::Read { id, result });
    }

    /// Fails every read this node asked a leader to confirm.
    pub(super) fn fail_remote_reads(&mut self, error: ReadError) {
        for (_, (id, _)) in core::mem::take(&mut self.remote_reads) {
            self.out.push_back(Output::Read { id, result: Err(error.clone()) });
        }
    }

    /// Fails the reads whose leader has not answered in time.
    pub(super) fn expire_remote_reads(&mut self, now: Instant) {
        let expired: Vec<u64> = self.remote_reads.iter().filter(|(_, (_, t))| now >= *t).map(|(&w, _)| w).collect();
        for wire in expired {
            if let Some((id, _)) = self.remote_reads.remove(&wire) {
                self.out.push_back(Output::Read { id, result: Err(ReadError::Timeout) });
            }
        }
    }
}
