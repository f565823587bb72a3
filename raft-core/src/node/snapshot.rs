//! Snapshots and log compaction (paper §7): the host compacts, the leader
//! streams its snapshot to followers that fell behind it, followers install.

use super::{Node, RoleState};
use crate::config::APPEND_OVERHEAD_BYTES;
use crate::message::Body;
use crate::progress::Mode;
use crate::restore::CompactError;
use crate::time::Instant;
use crate::types::{Bytes, LogIndex, NodeId, Snapshot, SnapshotMeta, Term};
use alloc::vec::Vec;

/// A snapshot being received from the leader.
#[derive(Debug)]
pub(super) struct Incoming {
    meta: SnapshotMeta,
    total_len: u64,
    data: Vec<u8>,
}

impl Node {
    /// The host's state machine has captured its state up to `index` (which
    /// must have been delivered by an [`crate::Output::Apply`]) as `data`. The
    /// core drops the log entries it covers and emits a `Persist` with the
    /// snapshot; from then on, followers that need those entries get `data`.
    pub fn compact(&mut self, _now: Instant, index: LogIndex, data: impl Into<Bytes>) -> Result<(), CompactError> {
        if index > self.applied {
            return Err(CompactError::NotApplied { index, applied: self.applied });
        }
        let snapshot_index = self.log.base_index();
        let term = match self.log.term_at(index) {
            Some(t) if index > snapshot_index => t,
            _ => return Err(CompactError::NotNewer { index, snapshot_index }),
        };
        let snapshot = Snapshot { meta: SnapshotMeta { index, term }, data: data.into() };
        self.log.compact_to(index, term);
        self.durability.set_snapshot(snapshot.clone());
        self.snapshot = Some(snapshot);
        self.snapshot_wanted = false;
        Ok(())
    }

    /// The latest snapshot this node holds (taken or installed), if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The last index covered by the latest snapshot (0: none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.log.base_index()
    }

    /// Leader: sends the next chunk of the current snapshot to `peer`.
    pub(super) fn send_snapshot_chunk(&mut self, peer: NodeId) {
        let budget = self.config.max_message_bytes - APPEND_OVERHEAD_BYTES;
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let RoleState::Leader { progress, .. } = &mut self.role else {
            return;
        };
        let Some(p) = progress.get_mut(&peer) else {
            return;
        };
        let offset = match p.mode {
            Mode::Snapshot { index, offset, paused: false } if index == snapshot.meta.index => offset,
            Mode::Snapshot { paused: true, .. } => return,
            _ => {
                p.start_snapshot(snapshot.meta.index);
                0
            }
        };
        let total = snapshot.data.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(total);
        let end = start.saturating_add(budget).min(total);
        let body = Body::InstallSnapshot {
            index: snapshot.meta.index,
            snapshot_term: snapshot.meta.term,
            offset: start as u64,
            total_len: total as u64,
            data: Bytes::from(&snapshot.data[start..end]),
        };
        p.sent(snapshot.meta.index, end - start);
        self.send(peer, body);
    }

    /// Leader: a follower answered a snapshot chunk.
    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, index: LogIndex, next_offset: u64, done: bool) {
        let RoleState::Leader { progress, dirty } = &mut self.role else {
            return;
        };
        let Some(p) = progress.get_mut(&from) else {
            return;
        };
        if index > self.log.last_index() {
            return;
        }
        let finished = p.snapshot_answered(index, next_offset, done);
        dirty.insert(from);
        if finished {
            self.maybe_commit();
        }
    }

    /// Follower: a chunk of the leader's snapshot. Chunks are accepted only in
    /// order; any gap or a different snapshot makes the follower ask for the
    /// offset it needs. A complete snapshot newer than the commit index
    /// replaces the log (keeping a matching suffix) and, once durable, the
    /// state machine. A snapshot the follower is already past is acknowledged.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_install_snapshot(
        &mut self,
        now: Instant,
        from: NodeId,
        index: LogIndex,
        snapshot_term: Term,
        offset: u64,
        total_len: u64,
        data: Bytes,
    ) {
        if !self.accept_leader(now, from) {
            return;
        }
        let chunk_end = offset.checked_add(data.len() as u64);
        if snapshot_term > self.hard.term
            || chunk_end.is_none_or(|end| end > total_len)
            || total_len > self.config.max_snapshot_bytes
        {
            return; // malformed
        }
        let answer = |next_offset, done| Body::InstallSnapshotResponse { index, next_offset, done };
        if index <= self.commit || index <= self.log.base_index() {
            self.incoming = None;
            self.send_after_persist(from, answer(total_len, true));
            return;
        }
        let meta = SnapshotMeta { index, term: snapshot_term };
        let same = self.incoming.as_ref().is_some_and(|i| i.meta == meta && i.total_len == total_len);
        if !same {
            if offset != 0 {
                self.send(from, answer(0, false));
                return;
            }
            self.incoming = Some(Incoming { meta, total_len, data: Vec::new() });
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return;
        };
        if offset != incoming.data.len() as u64 {
            let want = incoming.data.len() as u64;
            self.send(from, answer(want, false));
            return;
        }
        incoming.data.extend_from_slice(&data);
        if (incoming.data.len() as u64) < total_len {
            let got = incoming.data.len() as u64;
            self.send(from, answer(got, false));
            return;
        }
        let Some(done) = self.incoming.take() else {
            return;
        };
        self.install(Snapshot { meta: done.meta, data: Bytes::from(done.data) });
        self.send_after_persist(from, answer(total_len, true));
    }

    /// Replaces the log up to the snapshot and schedules the state machine restore.
    fn install(&mut self, snapshot: Snapshot) {
        let SnapshotMeta { index, term } = snapshot.meta;
        if self.log.term_at(index) != Some(term) {
            // The log disagrees with (or is shorter than) the snapshot: drop it
            // all (compact_to below does so in memory).
            self.durability.truncate_from(index);
        }
        self.log.compact_to(index, term);
        self.durability.set_snapshot(snapshot.clone());
        self.commit = self.commit.max(index);
        if index > self.applied {
            self.pending_restore = Some(snapshot.clone());
        }
        self.snapshot = Some(snapshot);
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
