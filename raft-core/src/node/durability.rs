//! Bookkeeping for asynchronous durability: the write being gathered during
//! one step, writes issued but not yet durable, and messages held until the
//! writes they depend on are durable.
//!
//! Two liberties, and why they are safe:
//!
//! * **An acknowledgement can outlive its entries.** A success answer held
//!   for entries appended early in a step is released once that step's write
//!   is durable, even if a later message of the same step truncated some of
//!   those entries (so the write never stored them). Every observable outcome
//!   is one of the sequential execution in which the first message's entries
//!   were written and acknowledged, and the truncation came after: a crash
//!   before the write is durable sends nothing, a crash after leaves exactly
//!   that execution's final state. The acknowledgement is then just a delayed
//!   one, which Raft tolerates.
//! * **A snapshot can be restored before its write is durable**, when the
//!   local log already holds every entry it covers durably (it matched the
//!   log). A crash before the snapshot write is durable leaves those entries
//!   on disk, committed; replaying them rebuilds the same state. A host that
//!   keeps the bytes of received snapshots itself (`Output::SaveSnapshotChunk`)
//!   must so be ready to restore from them before their `Persist` is done.

use crate::output::{Outgoing, PersistToken, Write};
use crate::types::{Entry, HardState, LogIndex, Snapshot, SnapshotDigest};
use alloc::collections::VecDeque;

/// Marks a held message as waiting for the write currently being gathered.
const CURRENT: u64 = u64::MAX;

#[derive(Debug, Default)]
pub(super) struct Durability {
    /// Gathered during the current step; issued as one Persist at flush.
    pending: Write,
    /// Last token issued (0: none yet).
    issued: u64,
    /// Last token reported durable.
    durable: u64,
    /// Issued, not yet durable: (token, last log index after that write).
    in_flight: VecDeque<(u64, LogIndex)>,
    /// Highest log index known durable, counting only entries still in the log.
    durable_index: LogIndex,
    /// Messages waiting for a token to be durable.
    held: VecDeque<(u64, Outgoing)>,
}

impl Durability {
    pub(super) fn new(durable_index: LogIndex) -> Durability {
        Durability { durable_index, ..Durability::default() }
    }

    pub(super) fn durable_index(&self) -> LogIndex {
        self.durable_index
    }

    pub(super) fn set_hard_state(&mut self, hs: HardState) {
        self.pending.hard_state = Some(hs);
    }

    /// Adds a snapshot to the current write (a newer one replaces it).
    pub(super) fn set_snapshot(&mut self, snapshot: Snapshot, digest: Option<SnapshotDigest>) {
        let covered = snapshot.meta.index;
        self.pending.entries.retain(|e| e.index > covered);
        self.pending.snapshot = Some(alloc::boxed::Box::new(snapshot));
        self.pending.snapshot_digest = digest;
    }

    /// Records that the in-memory log dropped every entry from `index` on.
    pub(super) fn truncate_from(&mut self, index: LogIndex) {
        let first_pending = self.pending.entries.first().map(|e| e.index);
        match first_pending {
            Some(first) if index >= first => {
                self.pending.entries.truncate((index.0 - first.0) as usize);
            }
            _ => {
                self.pending.entries.clear();
                let t = self.pending.truncate_from.map_or(index, |t| t.min(index));
                self.pending.truncate_from = Some(t);
            }
        }
        // Entries at >= index are gone from memory; their durability no longer counts.
        let keep = index.prev();
        self.durable_index = self.durable_index.min(keep);
        for w in &mut self.in_flight {
            w.1 = w.1.min(keep);
        }
    }

    pub(super) fn append_all(&mut self, mut entries: alloc::vec::Vec<Entry>) {
        if self.pending.entries.is_empty() {
            self.pending.entries = entries;
        } else {
            self.pending.entries.append(&mut entries);
        }
    }

    pub(super) fn append(&mut self, entry: Entry) {
        self.pending.entries.push(entry);
    }

    /// Holds `msg` until everything written so far, including this step's
    /// write, is durable.
    pub(super) fn hold(&mut self, msg: Outgoing) {
        self.held.push_back((CURRENT, msg));
    }

    /// Ends a step: hands the gathered write (if any) to `emit` with its
    /// token, recording the log's last index after it, and binds held
    /// messages to the right token. Inline: most steps of a busy node end
    /// with nothing to issue or bind.
    #[inline]
    pub(super) fn issue(&mut self, last_index: LogIndex, emit: impl FnOnce(PersistToken, Write)) {
        if !self.pending.is_empty() {
            let (token, write) = self.take_pending(last_index);
            emit(token, write);
        }
        // The messages held during this step are the newest, at the back.
        if self.held.back().is_some_and(|h| h.0 == CURRENT) {
            self.bind_current();
        }
    }

    #[inline]
    fn take_pending(&mut self, last_index: LogIndex) -> (PersistToken, Write) {
        self.issued += 1;
        self.in_flight.push_back((self.issued, last_index));
        (PersistToken(self.issued), core::mem::take(&mut self.pending))
    }

    /// Binds the messages held during this step to the last token issued.
    fn bind_current(&mut self) {
        for h in self.held.iter_mut().rev() {
            if h.0 != CURRENT {
                break;
            }
            h.0 = self.issued;
        }
    }

    /// Reports writes up to `token` durable. Returns false for a token never
    /// issued or already reported (ignored).
    pub(super) fn persisted(&mut self, token: PersistToken) -> bool {
        if token.0 <= self.durable || token.0 > self.issued {
            return false;
        }
        self.durable = token.0;
        while let Some(&(t, idx)) = self.in_flight.front() {
            if t > token.0 {
                break;
            }
            self.durable_index = idx;
            self.in_flight.pop_front();
        }
        true
    }

    /// Removes and yields the held messages whose writes are now durable.
    #[inline]
    pub(super) fn release(&mut self, send: impl FnMut(Outgoing)) {
        if self.held.front().is_some_and(|h| h.0 <= self.durable) {
            self.release_durable(send);
        }
    }

    fn release_durable(&mut self, mut send: impl FnMut(Outgoing)) {
        // Tokens never decrease from front to back (CURRENT ones are the newest).
        while self.held.front().is_some_and(|h| h.0 <= self.durable) {
            if let Some((_, m)) = self.held.pop_front() {
                send(m);
            }
        }
    }

    /// How many messages wait for a write.
    #[cfg(test)]
    pub(super) fn held_len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, Message};
    use crate::types::{NodeId, Payload, Term};

    fn entry(i: u64, t: u64) -> Entry {
        Entry { term: Term(t), index: LogIndex(i), payload: Payload::Noop }
    }

    /// The write `issue` hands out, if any.
    fn issue(d: &mut Durability, last_index: LogIndex) -> Option<(PersistToken, Write)> {
        let mut out = None;
        d.issue(last_index, |t, w| out = Some((t, w)));
        out
    }

    fn msg() -> Outgoing {
        Outgoing {
            to: NodeId(2),
            message: Message {
                term: Term(1),
                body: Body::RequestVoteResponse(crate::message::VoteResponse { granted: true, pre_vote: false }),
            },
        }
    }

    #[test]
    fn held_message_waits_for_its_write() {
        let mut d = Durability::new(LogIndex(0));
        d.set_hard_state(HardState { term: Term(1), voted_for: Some(NodeId(2)), catching_up: false });
        d.hold(msg());
        let (tok, w) = issue(&mut d, LogIndex(0)).unwrap();
        assert!(w.hard_state.is_some());
        let mut sent = 0;
        d.release(|_| sent += 1);
        assert_eq!(sent, 0, "not durable yet");
        assert!(d.persisted(tok));
        assert!(!d.persisted(tok), "reported twice");
        assert!(!d.persisted(PersistToken(9)), "never issued");
        d.release(|_| sent += 1);
        assert_eq!(sent, 1);
        assert_eq!(d.held_len(), 0);
    }

    #[test]
    fn persist_tokens_increase_with_every_request() {
        let mut d = Durability::new(LogIndex(0));
        let mut last = None;
        for i in 1..=3 {
            d.append(entry(i, 1));
            let (t, _) = issue(&mut d, LogIndex(i)).unwrap();
            assert!(last.is_none_or(|l: PersistToken| t.get() > l.get() && t > l), "{t:?} after {last:?}");
            last = Some(t);
        }
    }

    #[test]
    fn message_held_without_new_write_waits_for_earlier_writes() {
        let mut d = Durability::new(LogIndex(0));
        d.append(entry(1, 1));
        let (t1, _) = issue(&mut d, LogIndex(1)).unwrap();
        d.hold(msg());
        assert!(issue(&mut d, LogIndex(1)).is_none());
        let mut sent = 0;
        d.release(|_| sent += 1);
        assert_eq!(sent, 0);
        d.persisted(t1);
        d.release(|_| sent += 1);
        assert_eq!(sent, 1);
        assert_eq!(d.durable_index(), LogIndex(1));
    }

    #[test]
    fn truncation_caps_durable_index_of_in_flight_and_pending_writes() {
        let mut d = Durability::new(LogIndex(2));
        for i in 3..=6 {
            d.append(entry(i, 1));
        }
        let (t1, _) = issue(&mut d, LogIndex(6)).unwrap();
        d.append(entry(7, 1));
        d.truncate_from(LogIndex(5)); // pending 7 dropped, in-flight capped at 4
        d.append(entry(5, 2));
        let (t2, w2) = issue(&mut d, LogIndex(5)).unwrap();
        assert_eq!(w2.truncate_from, Some(LogIndex(5)));
        assert_eq!(w2.entries.len(), 1);
        d.persisted(t1);
        assert_eq!(d.durable_index(), LogIndex(4));
        d.persisted(t2);
        assert_eq!(d.durable_index(), LogIndex(5));
    }

    #[test]
    fn truncation_inside_pending_entries_only_trims_them() {
        let mut d = Durability::new(LogIndex(0));
        for i in 1..=4 {
            d.append(entry(i, 1));
        }
        d.truncate_from(LogIndex(3));
        let (_, w) = issue(&mut d, LogIndex(2)).unwrap();
        assert_eq!(w.truncate_from, None);
        assert_eq!(w.entries.len(), 2);
    }
}
