//! Snapshots and log compaction (paper §7): the host compacts, the leader
//! streams its snapshot to followers that fell behind it, followers install.

use super::{MAX_INDEX, Node, RoleState};
use crate::config::APPEND_OVERHEAD_BYTES;
use crate::error::CompactError;
use crate::message::Message;
use crate::message::{Body, InstallSnapshot, SnapshotResponse};
use crate::output::{Event, Outgoing, Output};
use crate::progress::Mode;
use crate::time::Instant;
use crate::types::{Bytes, LogIndex, NodeId, Snapshot, SnapshotDigest, SnapshotMeta};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A snapshot being received from the leader. A transfer is resumed only
/// with chunks of the same leader, term and snapshot (index, term, length and
/// checksum), so two leaders' snapshots are never spliced together.
#[derive(Debug)]
pub(super) struct Incoming {
    from: NodeId,
    leader_term: crate::Term,
    meta: SnapshotMeta,
    total_len: u64,
    checksum: u32,
    membership: Box<crate::Membership>,
    /// The bytes received so far (none if the host keeps them, see
    /// `Config::host_stores_snapshots`).
    data: Vec<u8>,
    /// How many bytes were received, and their running CRC-32.
    received: u64,
    crc: u32,
    /// A transfer that makes no progress until then is dropped (its memory
    /// with it).
    pub(super) give_up_at: Instant,
}

impl Node {
    /// The host's state machine has captured its state up to `index` (which
    /// must have been delivered by an [`crate::Output::Apply`]) as `data`. The
    /// core drops the log entries it covers and emits a `Persist` with the
    /// snapshot; from then on, followers that need those entries get `data`.
    pub fn compact(&mut self, now: Instant, index: LogIndex, data: impl Into<Bytes>) -> Result<(), CompactError> {
        self.compact_with(now, index, data.into(), None)
    }

    /// As [`compact`](Self::compact), for a snapshot whose bytes the host
    /// keeps (on disk, say) rather than handing them to the core: `digest`
    /// gives their length and CRC-32. The core never holds them: the `Persist`
    /// carries the snapshot with an empty `data` and `Write::snapshot_digest`
    /// set, and a leader asks the host for each chunk it sends with
    /// [`Output::SendSnapshotChunk`]. The host must keep the snapshot of
    /// `index` readable until a newer one replaces it.
    pub fn compact_stored(
        &mut self,
        now: Instant,
        index: LogIndex,
        digest: SnapshotDigest,
    ) -> Result<(), CompactError> {
        self.compact_with(now, index, Bytes::default(), Some(digest))
    }

    fn compact_with(
        &mut self,
        _now: Instant,
        index: LogIndex,
        data: Bytes,
        digest: Option<SnapshotDigest>,
    ) -> Result<(), CompactError> {
        self.flush_due = true;
        if index > self.applied {
            return Err(CompactError::NotApplied { index, applied: self.applied });
        }
        let snapshot_index = self.log.base_index();
        let term = match self.log.term_at(index) {
            Some(t) if index > snapshot_index => t,
            _ => return Err(CompactError::NotNewer { index, snapshot_index }),
        };
        let membership = self.compact_configs(index);
        let snapshot = Snapshot { meta: SnapshotMeta { index, term }, membership: Box::new(membership), data };
        self.log.compact_to(index, term);
        self.durability.set_snapshot(snapshot.clone(), digest);
        self.snapshot = Some(snapshot);
        self.snapshot_checksum = None;
        self.snapshot_digest = digest;
        self.snapshot_wanted = false;
        // A follower that refused an older snapshot as too large is offered
        // this one: probing finds the log compacted and starts the transfer.
        if let RoleState::Leader(l) = &mut self.role {
            for p in l.progress.values_mut() {
                if matches!(p.mode, Mode::Snapshot { refused: true, .. }) {
                    let next = p.matched.next();
                    p.probe_from(next);
                }
            }
        }
        Ok(())
    }

    /// The latest snapshot this node holds (taken or installed), if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The length and CRC-32 of the latest snapshot's bytes if the host
    /// holds them (see [`compact_stored`](Self::compact_stored)).
    pub fn snapshot_digest(&self) -> Option<SnapshotDigest> {
        self.snapshot_digest
    }

    /// The length of the latest snapshot's bytes (0: none).
    fn snapshot_len(&self) -> u64 {
        match (&self.snapshot, self.snapshot_digest) {
            (_, Some(d)) => d.len,
            (Some(s), None) => s.data.len() as u64,
            (None, None) => 0,
        }
    }

    /// The last index covered by the latest snapshot (0: none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.log.base_index()
    }

    /// Leader: sends the next chunk of the current snapshot to `peer`.
    pub(super) fn send_snapshot_chunk(&mut self, peer: NodeId) {
        let budget = self.config.max_message_bytes - APPEND_OVERHEAD_BYTES;
        let total = self.snapshot_len();
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let stored = self.snapshot_digest;
        let checksum = match stored {
            Some(d) => d.checksum,
            None => *self.snapshot_checksum.get_or_insert_with(|| crc32fast::hash(&snapshot.data)),
        };
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let round = l.round;
        let Some(p) = l.progress.get_mut(&peer) else {
            return;
        };
        let offset = match p.mode {
            Mode::Snapshot { index, offset, paused: false, refused: false } if index == snapshot.meta.index => offset,
            Mode::Snapshot { index, .. } if index == snapshot.meta.index => return, // paused or refused
            _ => {
                p.start_snapshot(snapshot.meta.index);
                0
            }
        };
        let start = offset.min(total);
        let end = start.saturating_add(budget as u64).min(total);
        let data = match stored {
            Some(_) => Bytes::default(),
            // In memory, so `end` fits in a usize.
            None => Bytes::from(&snapshot.data[start as usize..end as usize]),
        };
        let body = Body::InstallSnapshot(InstallSnapshot {
            index: snapshot.meta.index,
            snapshot_term: snapshot.meta.term,
            offset: start,
            total_len: total,
            data,
            checksum,
            membership: snapshot.membership.clone(),
            round,
        });
        p.sent(snapshot.meta.index, (end - start) as usize);
        match stored {
            Some(_) => {
                let outgoing = Outgoing { to: peer, message: Message { term: self.hard.term, body } };
                self.out.push_back(Output::SendSnapshotChunk { outgoing, len: end - start });
            }
            None => self.send(peer, body),
        }
    }

    /// Leader: a follower answered a snapshot chunk.
    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, resp: SnapshotResponse) {
        let last = self.log.last_index();
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.acked_round(from, resp.round) else {
            return;
        };
        if resp.index > last {
            return;
        }
        if resp.too_large {
            let sending = matches!(p.mode, Mode::Snapshot { index, refused: false, .. } if index == resp.index);
            p.snapshot_refused(resp.index);
            if sending && self.snapshot.is_some() {
                let size = self.snapshot_len();
                let refused = Event::SnapshotRefused { peer: from, index: resp.index, size };
                self.out.push_back(Output::Event(refused));
            }
            return;
        }
        let finished = p.snapshot_answered(resp.index, resp.next_offset, resp.done);
        l.dirty.insert(from);
        if finished {
            self.maybe_commit();
            self.maybe_send_timeout_now();
        }
        self.release_confirmed_reads();
    }

    /// Follower: a chunk of the leader's snapshot. Chunks are accepted only in
    /// order and only from the transfer in progress (same leader, term and
    /// snapshot); a gap makes the follower ask for the offset it needs, a
    /// chunk of an older snapshot of the same leader is ignored, and any other
    /// snapshot starts over at offset 0. A complete snapshot whose checksum
    /// matches and that is newer than the commit index replaces the log
    /// (keeping a matching suffix) and, once durable, the state machine. A
    /// snapshot the follower is already past is acknowledged; one larger than
    /// `max_snapshot_bytes` is refused with `too_large`.
    pub(super) fn handle_install_snapshot(&mut self, now: Instant, from: NodeId, req: InstallSnapshot) {
        if !self.accept_leader(now, from) {
            return;
        }
        let InstallSnapshot { index, snapshot_term, offset, total_len, data, checksum, membership, round } = req;
        let chunk_end = offset.checked_add(data.len() as u64);
        if snapshot_term > self.hard.term || index > MAX_INDEX || chunk_end.is_none_or(|end| end > total_len) {
            return; // malformed
        }
        let answer = |next_offset, done, too_large| {
            Body::InstallSnapshotResponse(SnapshotResponse { index, next_offset, done, too_large, round })
        };
        if index <= self.commit || index <= self.log.base_index() {
            self.incoming = None;
            self.send_after_persist(from, answer(total_len, true, false));
            return;
        }
        if total_len > self.config.max_snapshot_bytes {
            self.send(from, answer(0, false, true));
            return;
        }
        let meta = SnapshotMeta { index, term: snapshot_term };
        let term = self.hard.term;
        let give_up_at = now + self.config.election_timeout_max.saturating_mul(2);
        let current = self.incoming.as_ref().map(|i| {
            let same_leader = i.from == from && i.leader_term == term;
            let same = same_leader && i.meta == meta && i.total_len == total_len && i.checksum == checksum;
            (same, same_leader && i.meta.index > index)
        });
        match current {
            Some((true, _)) => {}
            Some((false, true)) => return, // a late chunk of an older snapshot: keep the newer transfer
            _ if offset != 0 => {
                self.send(from, answer(0, false, false));
                return;
            }
            _ => {
                let (data, received, crc) = (Vec::new(), 0, 0);
                let leader_term = term;
                let membership = membership.clone();
                self.incoming = Some(Incoming {
                    from,
                    leader_term,
                    meta,
                    total_len,
                    checksum,
                    membership,
                    data,
                    received,
                    crc,
                    give_up_at,
                });
            }
        }
        let stored = self.config.host_stores_snapshots;
        let Some(incoming) = self.incoming.as_mut() else {
            return;
        };
        if offset != incoming.received {
            let want = incoming.received;
            self.send(from, answer(want, false, false));
            return;
        }
        let mut crc = crc32fast::Hasher::new_with_initial(incoming.crc);
        crc.update(&data);
        incoming.crc = crc.finalize();
        incoming.received += data.len() as u64;
        incoming.give_up_at = give_up_at;
        let got = incoming.received;
        if stored {
            let chunk = InstallSnapshot { index, snapshot_term, offset, total_len, data, checksum, membership, round };
            self.out.push_back(Output::SaveSnapshotChunk { from, chunk });
        } else {
            incoming.data.extend_from_slice(&data);
        }
        if got < total_len {
            self.send(from, answer(got, false, false));
            return;
        }
        let Some(done) = self.incoming.take() else {
            return;
        };
        if done.crc != done.checksum {
            self.send(from, answer(0, false, false)); // damaged in transit: start over
            return;
        }
        let digest = stored.then_some(SnapshotDigest { len: total_len, checksum: done.checksum });
        self.install(Snapshot { meta: done.meta, membership: done.membership, data: Bytes::from(done.data) }, digest);
        self.send_after_persist(from, answer(total_len, true, false));
    }

    /// Drops a partial snapshot whose transfer stalled.
    pub(super) fn expire_incoming(&mut self, now: Instant) {
        if self.incoming.as_ref().is_some_and(|i| now >= i.give_up_at) {
            self.incoming = None;
        }
    }

    /// Replaces the log up to the snapshot and schedules the state machine restore.
    fn install(&mut self, snapshot: Snapshot, digest: Option<SnapshotDigest>) {
        let SnapshotMeta { index, term } = snapshot.meta;
        if self.log.term_at(index) != Some(term) {
            // The log disagrees with (or is shorter than) the snapshot: drop it
            // all (compact_to below does so in memory).
            self.durability.truncate_from(index);
        }
        self.log.compact_to(index, term);
        self.install_configs(&snapshot.membership);
        self.durability.set_snapshot(snapshot.clone(), digest);
        self.commit = self.commit.max(index);
        if index > self.applied {
            self.pending_restore = Some(snapshot.clone());
        }
        self.snapshot = Some(snapshot);
        self.snapshot_checksum = None;
        self.snapshot_digest = digest;
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
