//! The node's in-memory copy of its log.
//!
//! Entries are kept from `first_index()` to `last_index()`. Everything before
//! is covered by a base point `(base_index, base_term)`: index 0 today, the
//! last snapshot once compaction lands.

use crate::types::{Entry, LogIndex, Term};
use alloc::vec::Vec;

#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    base_index: LogIndex,
    base_term: Term,
    entries: Vec<Entry>,
    /// Sum of `size_bound` over `entries`.
    bytes: usize,
}

impl Log {
    /// A log from entries contiguous from index 1.
    #[cfg(test)]
    pub(crate) fn from_entries(entries: Vec<Entry>) -> Log {
        Log::with_base(LogIndex(0), Term(0), entries)
    }

    /// A log whose entries follow `(base_index, base_term)`, contiguous.
    pub(crate) fn with_base(base_index: LogIndex, base_term: Term, entries: Vec<Entry>) -> Log {
        let bytes = entries.iter().map(Entry::size_bound).sum();
        Log { base_index, base_term, entries, bytes }
    }

    /// The last index covered by the snapshot (0: none).
    pub(crate) fn base_index(&self) -> LogIndex {
        self.base_index
    }

    /// Bytes held, by `Entry::size_bound`.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held in memory.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every entry up to and including `index`, which becomes the base.
    /// If the log does not hold `index` with `term`, everything is dropped.
    pub(crate) fn compact_to(&mut self, index: LogIndex, term: Term) {
        if index <= self.base_index {
            return;
        }
        if self.term_at(index) == Some(term) {
            let n = (index.0 - self.base_index.0) as usize;
            self.bytes -= self.entries[..n].iter().map(Entry::size_bound).sum::<usize>();
            self.entries.drain(..n);
        } else {
            self.entries.clear();
            self.bytes = 0;
        }
        self.base_index = index;
        self.base_term = term;
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.base_index.0 + self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }

    fn pos(&self, index: LogIndex) -> Option<usize> {
        if index <= self.base_index || index > self.last_index() {
            return None;
        }
        usize::try_from(index.0 - self.base_index.0 - 1).ok()
    }

    /// The term of the entry at `index`; `None` if the log does not hold it
    /// (beyond the end, or compacted away except for the base point).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.pos(index).map(|p| self.entries[p].term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.pos(index).map(|p| &self.entries[p])
    }

    /// Entries from `from` on, at least one if any exists, stopping before
    /// the total size bound would exceed `max_bytes`. Returns them and their size.
    pub(crate) fn slice_bounded(&self, from: LogIndex, max_bytes: usize) -> (Vec<Entry>, usize) {
        let Some(start) = self.pos(from) else {
            return (Vec::new(), 0);
        };
        let mut bytes = 0;
        let mut end = start;
        for e in &self.entries[start..] {
            let size = e.size_bound();
            if end > start && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            end += 1;
        }
        (self.entries[start..end].to_vec(), bytes)
    }

    /// Entries in `(after, upto]`, at most `max` of them.
    pub(crate) fn range(&self, after: LogIndex, upto: LogIndex, max: usize) -> Vec<Entry> {
        let Some(start) = self.pos(after.next()) else {
            return Vec::new();
        };
        let upto = upto.min(self.last_index());
        if upto <= after {
            return Vec::new();
        }
        let n = ((upto.0 - after.0) as usize).min(max);
        self.entries[start..start + n].to_vec()
    }

    /// Removes every entry at or after `index`.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        if let Some(p) = self.pos(index) {
            self.bytes -= self.entries[p..].iter().map(Entry::size_bound).sum::<usize>();
            self.entries.truncate(p);
        }
    }

    /// Appends entries continuing the log. Returns whether any of them is a
    /// configuration (found in the same pass that sizes and clones them).
    pub(crate) fn extend_from_slice(&mut self, entries: &[Entry]) -> bool {
        debug_assert!(entries.first().is_none_or(|e| e.index == self.last_index().next()));
        let (mut bytes, mut config) = (0, false);
        self.entries.extend(entries.iter().map(|e| {
            bytes += e.size_bound();
            config |= matches!(e.payload, crate::types::Payload::Membership(_));
            e.clone()
        }));
        self.bytes += bytes;
        config
    }

    /// Appends an entry whose index is `last_index() + 1`.
    #[inline]
    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index().next());
        self.bytes += entry.size_bound();
        self.entries.push(entry);
    }

    /// The first index of the run of entries with the same term as `index`
    /// (the conflict hint of a rejected AppendEntries).
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut i = index;
        while i > self.base_index.next() && self.term_at(i.prev()) == Some(term) {
            i = i.prev();
        }
        i
    }

    /// The last index whose entry has term `term`, if any (terms never decrease along the log).
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let after = self.entries.partition_point(|e| e.term <= term);
        if after == 0 {
            return (self.base_term == term && self.base_index > LogIndex(0)).then_some(self.base_index);
        }
        let e = &self.entries[after - 1];
        (e.term == term).then_some(e.index)
    }

    /// True if a log ending at `(last_index, last_term)` is at least as
    /// up-to-date as this one (paper §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Bytes, Payload};
    use alloc::vec;

    fn log_of_terms(terms: &[u64]) -> Log {
        Log::from_entries(
            terms
                .iter()
                .enumerate()
                .map(|(i, &t)| Entry { term: Term(t), index: LogIndex(i as u64 + 1), payload: Payload::Noop })
                .collect(),
        )
    }

    #[test]
    fn term_lookup_and_bounds() {
        let l = log_of_terms(&[1, 1, 2, 4, 4]);
        assert_eq!(l.last_index(), LogIndex(5));
        assert_eq!(l.last_term(), Term(4));
        assert_eq!(l.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(l.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(l.term_at(LogIndex(6)), None);
        assert_eq!(l.term_at(LogIndex(u64::MAX)), None);
    }

    #[test]
    fn conflict_hints() {
        let l = log_of_terms(&[1, 1, 2, 4, 4, 4]);
        assert_eq!(l.first_index_of_term_at(LogIndex(6)), LogIndex(4));
        assert_eq!(l.first_index_of_term_at(LogIndex(2)), LogIndex(1));
        assert_eq!(l.last_index_of_term(Term(1)), Some(LogIndex(2)));
        assert_eq!(l.last_index_of_term(Term(3)), None);
        assert_eq!(l.last_index_of_term(Term(4)), Some(LogIndex(6)));
        assert_eq!(l.last_index_of_term(Term(9)), None);
    }

    #[test]
    fn a_conflict_hint_stops_at_the_first_entry_held_after_a_compaction() {
        // The compacted entry at the base has the same term, but the hint
        // names the first entry this log holds: a leader compacted as far
        // resends from there (it knows the base's term) instead of a snapshot.
        let mut l = log_of_terms(&[1, 1, 1, 2]);
        l.compact_to(LogIndex(2), Term(1));
        assert_eq!(l.first_index_of_term_at(LogIndex(3)), LogIndex(3));
        assert_eq!(l.first_index_of_term_at(LogIndex(4)), LogIndex(4));
        assert_eq!(l.first_index_of_term_at(LogIndex(2)), LogIndex(2));
    }

    #[test]
    fn up_to_date_rule_compares_term_then_length() {
        // §5.4.1: later last term wins; equal terms, longer log wins.
        let l = log_of_terms(&[1, 2, 2]);
        assert!(l.is_up_to_date(LogIndex(1), Term(3)));
        assert!(l.is_up_to_date(LogIndex(3), Term(2)));
        assert!(!l.is_up_to_date(LogIndex(2), Term(2)));
        assert!(!l.is_up_to_date(LogIndex(9), Term(1)));
        assert!(Log::default().is_up_to_date(LogIndex(0), Term(0)));
    }

    #[test]
    fn bounded_slices_take_at_least_one_entry() {
        let big =
            |i| Entry { term: Term(1), index: LogIndex(i), payload: Payload::Command(Bytes::from(vec![0u8; 100])) };
        let l = Log::from_entries(vec![big(1), big(2), big(3)]);
        let (one, bytes) = l.slice_bounded(LogIndex(1), 10);
        assert_eq!(one.len(), 1);
        assert_eq!(bytes, 132);
        assert_eq!(l.slice_bounded(LogIndex(2), 264).0.len(), 2);
        assert!(l.slice_bounded(LogIndex(4), 1000).0.is_empty());
        assert_eq!(l.range(LogIndex(0), LogIndex(9), 2).len(), 2);
        assert!(l.range(LogIndex(3), LogIndex(9), 2).is_empty());
    }

    #[test]
    fn compaction_keeps_the_suffix_or_drops_a_conflicting_log() {
        let mut l = log_of_terms(&[1, 1, 2, 2]);
        let per = l.bytes() / 4;
        l.compact_to(LogIndex(2), Term(1));
        assert_eq!((l.base_index(), l.len(), l.bytes()), (LogIndex(2), 2, 2 * per));
        assert_eq!(l.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(l.term_at(LogIndex(1)), None);
        assert_eq!(l.first_index_of_term_at(LogIndex(4)), LogIndex(3));
        assert_eq!(l.last_index_of_term(Term(1)), Some(LogIndex(2)));
        l.compact_to(LogIndex(1), Term(1)); // older: no-op
        assert_eq!(l.base_index(), LogIndex(2));
        l.compact_to(LogIndex(6), Term(5)); // beyond and unknown: drop all
        assert_eq!((l.last_index(), l.last_term(), l.len(), l.bytes()), (LogIndex(6), Term(5), 0, 0));
    }

    #[test]
    fn a_second_compaction_drops_only_up_to_its_index() {
        let mut l = log_of_terms(&[1, 1, 2, 2, 3, 3]);
        let per = l.bytes() / 6;
        l.compact_to(LogIndex(2), Term(1));
        l.compact_to(LogIndex(4), Term(2));
        assert_eq!((l.base_index(), l.len(), l.bytes()), (LogIndex(4), 2, 2 * per));
        assert_eq!(l.term_at(LogIndex(5)), Some(Term(3)));
        assert_eq!(l.last_index(), LogIndex(6));
    }

    #[test]
    fn index_zero_is_no_entry_of_term_zero() {
        assert_eq!(Log::default().last_index_of_term(Term(0)), None);
        assert_eq!(log_of_terms(&[1, 2]).last_index_of_term(Term(0)), None);
        // A snapshot base is: the last index of its term while no entry follows in that term.
        let mut l = log_of_terms(&[1, 1, 2]);
        l.compact_to(LogIndex(2), Term(1));
        assert_eq!(l.last_index_of_term(Term(1)), Some(LogIndex(2)));
    }

    #[test]
    fn truncate_then_push() {
        let mut l = log_of_terms(&[1, 1, 1]);
        let per = l.bytes() / 3;
        l.truncate_from(LogIndex(2));
        assert_eq!(l.last_index(), LogIndex(1));
        assert_eq!(l.bytes(), per);
        l.push(Entry { term: Term(2), index: LogIndex(2), payload: Payload::Noop });
        assert_eq!(l.term_at(LogIndex(2)), Some(Term(2)));
        l.truncate_from(LogIndex(7));
        assert_eq!(l.last_index(), LogIndex(2));
    }
}
