//! Log replication and commitment (paper §5.3, §5.4.2).

use super::{MAX_INDEX, Node, RoleState};
use crate::config::APPEND_OVERHEAD_BYTES;
use crate::message::{AppendEntries, AppendResponse, AppendResult, Body};
use crate::progress::Mode;
use crate::time::Instant;
use crate::types::{Entry, LogIndex, NodeId, Payload, Term};
use alloc::vec::Vec;

impl Node {
    /// Leader only: appends an entry of the current term and schedules
    /// replication to every follower at the next flush.
    pub(super) fn append_as_leader(&mut self, payload: Payload) -> LogIndex {
        let entry = Entry { term: self.hard.term, index: self.log.last_index().next(), payload };
        let index = entry.index;
        let config = matches!(entry.payload, Payload::Membership(_));
        self.log.push(entry.clone());
        self.durability.append(entry);
        if config {
            self.note_configs_from(index);
        }
        // Every follower, always: a set as large as `peers` may still miss
        // one, as it can hold a removed member being told of its removal.
        if let RoleState::Leader(l) = &mut self.role {
            l.mark_all_dirty();
        }
        // A single-node cluster commits once its own write is durable.
        index
    }

    /// Leader only, at each heartbeat: a new round; probes and snapshot
    /// chunks are retried and stalled windows reprobed, and every follower
    /// also gets an empty AppendEntries. That small message is what a
    /// follower behind a lossy link receives when the large probe or chunk
    /// does not get through: it learns who leads (and answers the round),
    /// instead of timing out into pre-votes that no one grants.
    pub(super) fn broadcast_heartbeat(&mut self, now: Instant) {
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        l.start_round(now);
        let mut beats = Vec::new();
        for (&peer, p) in l.progress.iter_mut() {
            // tick() is true for probes and snapshot transfers (resend) and for stalled windows.
            if p.tick() {
                l.dirty.insert(peer);
            }
            beats.push((peer, p.matched));
        }
        for (peer, matched) in beats {
            self.send_commit_only(peer, matched);
        }
        self.release_confirmed_reads();
    }

    /// Leader only: reads registered since the last round want a round that
    /// starts after them; start it now and send it to every follower that is
    /// replicating (the others get it with their next probe or chunk).
    pub(super) fn start_wanted_round(&mut self) {
        let now = self.last_now;
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        if !l.round_wanted {
            return;
        }
        l.start_round(now);
        let beats: Vec<(NodeId, LogIndex)> = l
            .progress
            .iter()
            .filter(|(_, p)| matches!(p.mode, Mode::Replicate))
            .map(|(&peer, p)| (peer, p.matched))
            .collect();
        for (peer, matched) in beats {
            self.send_commit_only(peer, matched);
        }
        // A cluster of one confirms its round at once.
        self.release_confirmed_reads();
    }

    /// An empty AppendEntries anchored at what the follower is known to hold,
    /// so it always passes the consistency check: a heartbeat, or news that
    /// the commit index moved.
    fn send_commit_only(&mut self, peer: NodeId, matched: LogIndex) {
        let Some(prev_log_term) = self.log.term_at(matched) else {
            return; // compacted past it: a stalled window is re-probed, which sends the snapshot
        };
        let leader_commit = self.commit.min(matched);
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        if let Some(p) = l.progress.get_mut(&peer) {
            p.commit_told = p.commit_told.max(leader_commit);
        }
        let round = l.round;
        let body = AppendEntries { prev_log_index: matched, prev_log_term, entries: Vec::new(), leader_commit, round };
        self.send(peer, Body::AppendEntries(body));
    }

    /// Sends AppendEntries to every follower marked dirty, as far as each
    /// follower's flow-control window allows.
    pub(super) fn send_dirty_appends(&mut self) {
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        l.take_dirty_all(&self.peers);
        if l.dirty.is_empty() {
            return;
        }
        let mut peers = core::mem::take(&mut l.dirty);
        let mut last_slice = None;
        for &peer in &peers.0 {
            self.send_appends_to(peer, &mut last_slice);
        }
        peers.0.clear();
        if let RoleState::Leader(l) = &mut self.role
            && l.dirty.is_empty()
        {
            l.dirty = peers; // keep the allocation
        }
    }

    /// `last_slice` is the extent of the last AppendEntries built in this
    /// flush, `(first, last, bytes)`: a follower at the same `next` (as
    /// followers in step usually are) gets the same entries without their
    /// sizes being summed again. The log does not change during a flush.
    fn send_appends_to(&mut self, peer: NodeId, last_slice: &mut Option<(LogIndex, LogIndex, usize)>) {
        let budget = self.config.max_message_bytes - APPEND_OVERHEAD_BYTES;
        let (max_msgs, max_bytes) = (self.config.max_inflight_messages, self.config.max_inflight_bytes);
        loop {
            let RoleState::Leader(l) = &mut self.role else {
                return;
            };
            let round = l.round;
            let Some(p) = l.progress.get_mut(&peer) else {
                return;
            };
            if !p.can_send(max_msgs, max_bytes) {
                return;
            }
            let probing = matches!(p.mode, Mode::Probe { .. });
            let prev_log_index = p.next.prev();
            let prev_log_term = match self.log.term_at(prev_log_index) {
                Some(t) if !matches!(p.mode, Mode::Snapshot { .. }) => t,
                _ => {
                    // Compacted away (or already streaming): send the snapshot.
                    self.send_snapshot_chunk(peer);
                    return;
                }
            };
            let (entries, bytes) = match *last_slice {
                Some((first, last, bytes)) if first == p.next => {
                    (self.log.range(prev_log_index, last, usize::MAX), bytes)
                }
                _ => self.log.slice_bounded(p.next, budget),
            };
            if entries.is_empty() && !probing {
                // Nothing new to send; tell the follower if the commit index
                // moved, once its window has drained (every ack in flight would
                // otherwise trigger its own notice).
                let matched = p.matched;
                if p.idle() && self.commit.min(matched) > p.commit_told {
                    self.send_commit_only(peer, matched);
                }
                return;
            }
            let last = LogIndex(prev_log_index.0 + entries.len() as u64);
            if !entries.is_empty() {
                *last_slice = Some((p.next, last, bytes));
            }
            p.sent(last, bytes);
            p.commit_told = p.commit_told.max(self.commit.min(last));
            let leader_commit = self.commit;
            let body = AppendEntries { prev_log_index, prev_log_term, entries, leader_commit, round };
            self.send(peer, Body::AppendEntries(body));
            if probing {
                return;
            }
        }
    }

    /// A follower's answer (§5.3). Any answer of this term counts for the
    /// heartbeat round it echoes. Stale answers are recognised and dropped;
    /// a rejection moves `next` back by the follower's conflict hint.
    pub(super) fn handle_append_response(&mut self, from: NodeId, resp: AppendResponse) {
        let last_index = self.log.last_index();
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.acked_round(from, resp.round) else {
            return;
        };
        match resp.result {
            AppendResult::Success { match_index } => {
                if match_index > last_index {
                    return; // claims entries this leader never had: ignore.
                }
                let moved = p.acked(match_index);
                l.dirty.insert(from);
                l.retire_if_done(from, match_index);
                if moved {
                    // A match at or below the commit index cannot move the
                    // index a majority holds above it: skip the count.
                    if match_index > self.commit {
                        self.maybe_commit();
                    }
                    self.maybe_send_timeout_now();
                }
                self.resend_timeout_now(from, resp.round);
            }
            AppendResult::Reject { prev_log_index, last_log_index, conflict_term, conflict_index } => {
                // In replicate mode the pipeline starts at `matched`, which the
                // follower holds, so a rejection only means an earlier message
                // is late (reordered) or lost. Rewinding would resend what is in
                // flight; instead wait: a window that makes no progress for a
                // heartbeat interval is probed again (`Progress::tick`).
                let current = match p.mode {
                    Mode::Probe { .. } => prev_log_index.next() == p.next,
                    Mode::Replicate | Mode::Snapshot { .. } => false,
                };
                if current {
                    let hinted = match conflict_term {
                        Some(t) => self.log.last_index_of_term(t).map_or(conflict_index, LogIndex::next),
                        None => conflict_index,
                    };
                    // Strictly below the rejected position, never below what matched.
                    let next = hinted.min(prev_log_index).min(last_log_index.next()).max(LogIndex(1));
                    // If `matched` keeps `next` where it was (the follower says
                    // it lacks what it acknowledged), probing again at once
                    // would only repeat the rejection: wait for the next tick.
                    if next.max(p.matched.next()) < p.next {
                        p.probe_from(next);
                        l.dirty.insert(from);
                    }
                }
            }
        }
        self.release_confirmed_reads();
    }

    /// Advances the commit index to the highest entry of the current term
    /// stored durably on a majority, counting this leader only once its own
    /// write is durable (§5.3, §5.4.2: never by counting older-term entries).
    pub(super) fn maybe_commit(&mut self) {
        let RoleState::Leader(l) = &self.role else {
            return;
        };
        let me = self.config.id;
        let own = self.durability.durable_index();
        let progress = &l.progress;
        let idx = self
            .quorum
            .committed_index(|id| if id == me { own } else { progress.get(&id).map_or(LogIndex(0), |p| p.matched) });
        if idx > self.commit && self.log.term_at(idx) == Some(self.hard.term) {
            self.commit = idx;
            // Followers learn it at the next flush, not a heartbeat later.
            if let RoleState::Leader(l) = &mut self.role {
                l.mark_all_dirty();
            }
            self.admit_early_reads();
            self.advance_membership();
        }
    }

    /// AppendEntries from the leader of the current term (§5.3): consistency
    /// check, conflict truncation, append, commit. The success answer is held
    /// until the appended entries are durable.
    pub(super) fn handle_append(&mut self, now: Instant, from: NodeId, req: AppendEntries) {
        if !self.accept_leader(now, from) {
            return;
        }
        let AppendEntries { prev_log_index, prev_log_term, entries, leader_commit, round } = req;
        if !well_formed(self.hard.term, prev_log_index, prev_log_term, &entries) || leader_commit > MAX_INDEX {
            return;
        }
        let reply = |node: &mut Node, result| {
            node.send_after_persist(from, Body::AppendEntriesResponse(AppendResponse { round, result }));
        };
        let last = self.log.last_index();
        if prev_log_index > last {
            let conflict_index = last.next();
            let result =
                AppendResult::Reject { prev_log_index, last_log_index: last, conflict_term: None, conflict_index };
            return reply(self, result);
        }
        match self.log.term_at(prev_log_index) {
            Some(t) if t == prev_log_term => {}
            Some(t) => {
                let result = AppendResult::Reject {
                    prev_log_index,
                    last_log_index: last,
                    conflict_term: Some(t),
                    conflict_index: self.log.first_index_of_term_at(prev_log_index),
                };
                return reply(self, result);
            }
            None => {
                // Below our snapshot: everything up to it is committed, so it
                // matches the leader's log; say so and let the leader move on.
                return reply(self, AppendResult::Success { match_index: self.log.base_index() });
            }
        }
        // Skip entries already present; find the first new or conflicting one.
        let skip = entries.iter().take_while(|e| self.log.term_at(e.index) == Some(e.term)).count();
        if let Some(first) = entries.get(skip).filter(|e| e.index <= self.log.last_index()) {
            if first.index <= self.commit {
                return; // would overwrite a committed entry: inconsistent leader, ignore.
            }
            self.log.truncate_from(first.index);
            self.durability.truncate_from(first.index);
            self.configs.retain(|(i, _)| *i < first.index);
            self.note_configs_from(first.index);
        }
        let match_index = LogIndex(prev_log_index.0 + entries.len() as u64);
        let mut entries = entries;
        let new = if skip == 0 { entries } else { entries.split_off(skip) };
        let first_new = new.first().map(|e| e.index);
        let config = self.log.extend_from_slice(&new);
        self.durability.append_all(new);
        if let (true, Some(first)) = (config, first_new) {
            self.note_configs_from(first);
        }
        let new_commit = leader_commit.min(match_index);
        if new_commit > self.commit {
            self.commit = new_commit;
        }
        reply(self, AppendResult::Success { match_index });
    }
}

/// Entries must be contiguous from `prev + 1` with non-decreasing terms no
/// later than the message's term, and end at or below [`MAX_INDEX`].
fn well_formed(term: Term, prev_index: LogIndex, prev_term: Term, entries: &[Entry]) -> bool {
    let end = prev_index.0.checked_add(entries.len() as u64);
    if prev_term > term || end.is_none_or(|end| end > MAX_INDEX.0) {
        return false;
    }
    let mut last_term = prev_term;
    for (k, e) in entries.iter().enumerate() {
        if e.index.0 != prev_index.0 + 1 + k as u64 || e.term < last_term || e.term > term {
            return false;
        }
        last_term = e.term;
    }
    true
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;
