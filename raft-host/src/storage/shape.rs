//! The shape of the stored log (snapshot base and entry terms, no payloads),
//! and the rules every change to it follows. Writing and recovery share
//! these rules, so replaying what was written rebuilds the same log.
//!
//! Recovery may replay a log whose first segments compaction removed: the
//! entries before the first remaining segment are then *opaque* (their terms
//! are unknown; the snapshot covers them). Only two rules look at such an
//! entry: an append right after it skips its term check, and a snapshot at
//! its index keeps the entries after it. The second relies on what
//! [`Shape::plan`] guarantees for every `Snapshot` record it writes: if the
//! log holds the snapshot's index, it holds it with the snapshot's term (a
//! disagreeing entry is removed by a `Truncate` record first).

use raft_core::{LogIndex, SnapshotMeta, Term, Write};

/// Indexes at or above this are refused (no log gets near; it keeps index
/// arithmetic far from overflow whatever a file says).
pub(super) const MAX_INDEX: u64 = 1 << 62;

/// The stored log without payloads: entries `base.index + 1 ..` by term.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Shape {
    base: SnapshotMeta,
    /// Entries `base.index + 1 ..= base.index + opaque` are held but their
    /// terms are unknown (recovery only, see the module docs; always 0 for a
    /// log being written). While no snapshot was replayed, `base` is then a
    /// placeholder (index 0) and the real base lies somewhere in that range.
    opaque: u64,
    /// The terms of the entries after the opaque ones.
    terms: Vec<Term>,
}

/// What a [`Write`] changes in the log, once checked. Applied in this order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// The snapshot disagrees with the entry the log holds at its index:
    /// remove the entries from that index on first (so that a `Snapshot`
    /// record never meets an entry it disagrees with; see the module docs).
    pub(super) conflict_from: Option<LogIndex>,
    /// A snapshot newer than the current one.
    pub(super) snapshot: Option<SnapshotMeta>,
    /// Remove entries from here on (always within the log after the snapshot).
    pub(super) truncate_from: Option<LogIndex>,
}

impl Shape {
    /// The log as recovery sees it when its first remaining segment starts
    /// at `next`: entries `1..next` are opaque, the base unknown.
    pub(super) fn after_removed_segments(next: u64) -> Shape {
        Shape { base: SnapshotMeta::default(), opaque: next.saturating_sub(1), terms: Vec::new() }
    }

    /// The snapshot the log starts after (index 0: none).
    pub(super) fn base(&self) -> SnapshotMeta {
        self.base
    }

    /// The index the next appended entry must have.
    pub(super) fn next_index(&self) -> u64 {
        self.base.index.0 + self.opaque + self.terms.len() as u64 + 1
    }

    /// How many entries with known terms follow the base and opaque entries.
    pub(super) fn known_len(&self) -> usize {
        self.terms.len()
    }

    /// True if some held entries have unknown terms.
    pub(super) fn has_opaque(&self) -> bool {
        self.opaque > 0
    }

    /// The term of entry `index`, if the log holds it with a known term (the
    /// snapshot's last entry counts).
    fn term_at(&self, index: u64) -> Option<Term> {
        if index == self.base.index.0 {
            return Some(self.base.term);
        }
        let pos = index.checked_sub(self.base.index.0 + 1 + self.opaque)?;
        self.terms.get(usize::try_from(pos).ok()?).copied()
    }

    /// True if the log holds entry `index` but its term is unknown.
    fn is_opaque(&self, index: u64) -> bool {
        index > self.base.index.0 && index <= self.base.index.0 + self.opaque
    }

    /// The last entry's term, `None` if it is opaque.
    fn last_term(&self) -> Option<Term> {
        match self.terms.last() {
            Some(t) => Some(*t),
            None if self.opaque > 0 => None,
            None => Some(self.base.term),
        }
    }

    /// Checks that an entry `(index, term)` may be appended.
    pub(super) fn check_append(&self, index: LogIndex, term: Term) -> Result<(), String> {
        if index.0 != self.next_index() {
            return Err(format!("entry {index} does not follow the log, which ends at {}", self.next_index() - 1));
        }
        if let Some(last) = self.last_term()
            && term < last
        {
            return Err(format!("entry {index} has term {term}, below the previous entry's {last}"));
        }
        Ok(())
    }

    /// Appends an entry of `term` at [`next_index`](Self::next_index).
    pub(super) fn push(&mut self, term: Term) {
        self.terms.push(term);
    }

    /// Checks a truncation as stored in the log: it must remove something.
    pub(super) fn check_truncate(&self, from: LogIndex) -> Result<(), String> {
        if from.0 <= self.base.index.0 || from.0 >= self.next_index() {
            return Err(format!(
                "truncation from {from} outside the log's entries {}..{}",
                self.base.index.0 + 1,
                self.next_index()
            ));
        }
        Ok(())
    }

    /// Removes the entries at `from` and later; `from` must have passed
    /// [`check_truncate`](Self::check_truncate).
    pub(super) fn truncate(&mut self, from: LogIndex) {
        let keep = from.0.saturating_sub(self.base.index.0 + 1);
        if keep <= self.opaque {
            self.opaque = keep;
            self.terms.clear();
        } else {
            self.terms.truncate(usize::try_from(keep - self.opaque).unwrap_or(usize::MAX));
        }
    }

    /// Checks a snapshot as stored in the log: it must be newer.
    pub(super) fn check_snapshot(&self, meta: SnapshotMeta) -> Result<(), String> {
        if meta.index <= self.base.index {
            return Err(format!("snapshot at {} is not newer than the one at {}", meta.index, self.base.index));
        }
        if meta.index.0 >= MAX_INDEX {
            return Err(format!("snapshot index {} is out of range", meta.index));
        }
        Ok(())
    }

    /// Where the log must be truncated before a `Snapshot` record for `meta`:
    /// at its index if the log holds that entry with another term (see the
    /// module docs).
    pub(super) fn conflict_from(&self, meta: SnapshotMeta) -> Option<LogIndex> {
        self.term_at(meta.index.0).filter(|&t| t != meta.term && meta.index.0 > self.base.index.0).map(|_| meta.index)
    }

    /// Makes `meta` the base. If the log holds `meta.index` with `meta.term`
    /// (or with an opaque term, see the module docs), the entries after it
    /// stay and `true` is returned; otherwise the log disagrees with the
    /// snapshot and every entry goes (Raft §7). `meta` must have passed
    /// [`check_snapshot`](Self::check_snapshot).
    pub(super) fn compact(&mut self, meta: SnapshotMeta) -> bool {
        let held = match self.term_at(meta.index.0) {
            Some(term) => term == meta.term,
            None => self.is_opaque(meta.index.0),
        };
        if held {
            let covered = meta.index.0 - self.base.index.0;
            let from_opaque = covered.min(self.opaque);
            self.opaque -= from_opaque;
            let known = usize::try_from(covered - from_opaque).unwrap_or(usize::MAX);
            self.terms.drain(..known.min(self.terms.len()));
        } else {
            self.opaque = 0;
            self.terms.clear();
        }
        self.base = meta;
        held
    }

    /// Checks a whole [`Write`] against the log without changing anything,
    /// and says which records it turns into. A snapshot not newer than the
    /// current one is ignored; one that disagrees with an entry the log holds
    /// is preceded by a truncation from its index; a truncation is clamped to
    /// the entries after the snapshot and dropped if it removes nothing.
    pub(super) fn plan(&self, write: &Write) -> Result<Plan, String> {
        let mut virtual_base = self.base;
        let mut next = self.next_index();
        let mut snapshot = None;
        let mut conflict_from = None;
        if let Some(s) = &write.snapshot
            && s.meta.index > self.base.index
        {
            self.check_snapshot(s.meta)?;
            if self.term_at(s.meta.index.0) != Some(s.meta.term) {
                conflict_from = self.conflict_from(s.meta);
                next = s.meta.index.0 + 1;
            }
            virtual_base = s.meta;
            snapshot = Some(s.meta);
        }
        let mut truncate_from = None;
        if let Some(from) = write.truncate_from {
            let from = from.0.max(virtual_base.index.0 + 1);
            if from < next {
                next = from;
                truncate_from = Some(LogIndex(from));
            }
        }
        // The term of the entry before the appended ones, in the log as it
        // will be: the snapshot's, or one the current log already holds.
        let mut prev_term = if next - 1 == virtual_base.index.0 {
            virtual_base.term
        } else {
            self.term_at(next - 1).unwrap_or_default()
        };
        for (i, e) in write.entries.iter().enumerate() {
            let want = next + i as u64;
            if e.index.0 != want {
                return Err(format!("entry {} is not contiguous with the log (expected index {want})", e.index));
            }
            if e.term < prev_term {
                return Err(format!("entry {} has term {}, below the previous entry's {prev_term}", e.index, e.term));
            }
            prev_term = e.term;
        }
        Ok(Plan { conflict_from, snapshot, truncate_from })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64, term: u64) -> SnapshotMeta {
        SnapshotMeta { index: LogIndex(index), term: Term(term) }
    }

    fn write(snapshot: Option<SnapshotMeta>, entries: &[(u64, u64)]) -> Write {
        let snapshot = snapshot.map(|meta| {
            Box::new(raft_core::Snapshot { meta, membership: Default::default(), data: Default::default() })
        });
        let entries = entries
            .iter()
            .map(|&(index, term)| raft_core::Entry {
                term: Term(term),
                index: LogIndex(index),
                payload: raft_core::Payload::Noop,
            })
            .collect();
        let mut w = Write::default();
        w.snapshot = snapshot;
        w.entries = entries;
        w
    }

    /// A write carrying the snapshot the log already starts after plans no
    /// snapshot record and is not an error.
    #[test]
    fn a_snapshot_that_is_not_newer_is_ignored() {
        let mut shape = Shape::default();
        shape.compact(meta(10, 5));
        let plan = shape.plan(&write(Some(meta(10, 5)), &[(11, 5)])).unwrap();
        assert_eq!(plan, Plan { conflict_from: None, snapshot: None, truncate_from: None });
    }

    /// Entries that follow a snapshot received in the same write are checked
    /// against that snapshot's term, though the log does not hold its index.
    #[test]
    fn entries_after_a_new_snapshot_may_not_go_below_its_term() {
        let mut shape = Shape::default();
        shape.compact(meta(10, 5));
        let refused = shape.plan(&write(Some(meta(20, 7)), &[(21, 6)])).unwrap_err();
        assert!(refused.contains("below the previous entry's 7"), "{refused}");
        let plan = shape.plan(&write(Some(meta(20, 7)), &[(21, 7)])).unwrap();
        assert_eq!(plan.snapshot, Some(meta(20, 7)));
    }

    /// The first entry after a snapshot (and no entries) is checked against
    /// the snapshot's term: a log never goes back in term.
    #[test]
    fn an_entry_right_after_a_snapshot_may_not_have_a_lower_term() {
        let mut shape = Shape::default();
        assert!(!shape.compact(meta(10, 5)), "nothing held: the log starts over at the snapshot");
        assert_eq!(shape.next_index(), 11);
        let refused = shape.check_append(LogIndex(11), Term(4)).unwrap_err();
        assert!(refused.contains("below the previous entry's 5"), "{refused}");
        assert_eq!(shape.check_append(LogIndex(11), Term(5)), Ok(()));
        assert_eq!(shape.check_append(LogIndex(12), Term(5)).map_err(|_| ()), Err(()), "not contiguous");
    }
}
