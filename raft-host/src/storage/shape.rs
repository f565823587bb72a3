//! The shape of the stored log (snapshot base and entry terms, no payloads),
//! and the rules every change to it follows. Writing and recovery share
//! these rules, so replaying what was written rebuilds the same log.

use raft_core::{LogIndex, SnapshotMeta, Term, Write};

/// Indexes at or above this are refused (no log gets near; it keeps index
/// arithmetic far from overflow whatever a file says).
pub(super) const MAX_INDEX: u64 = 1 << 62;

/// The stored log without payloads: entries `base.index + 1 ..` by term.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Shape {
    base: SnapshotMeta,
    terms: Vec<Term>,
}

/// What a [`Write`] changes in the log, once checked. Applied in this order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// A snapshot newer than the current one.
    pub(super) snapshot: Option<SnapshotMeta>,
    /// Remove entries from here on (always within the log after the snapshot).
    pub(super) truncate_from: Option<LogIndex>,
}

impl Shape {
    /// The snapshot the log starts after (index 0: none).
    pub(super) fn base(&self) -> SnapshotMeta {
        self.base
    }

    /// The index the next appended entry must have.
    pub(super) fn next_index(&self) -> u64 {
        self.base.index.0 + self.terms.len() as u64 + 1
    }

    /// The term of entry `index`, if the log holds it (the snapshot's last
    /// entry counts).
    fn term_at(&self, index: u64) -> Option<Term> {
        if index == self.base.index.0 {
            return Some(self.base.term);
        }
        let pos = index.checked_sub(self.base.index.0 + 1)?;
        self.terms.get(usize::try_from(pos).ok()?).copied()
    }

    fn last_term(&self) -> Term {
        self.terms.last().copied().unwrap_or(self.base.term)
    }

    /// Checks that an entry `(index, term)` may be appended.
    pub(super) fn check_append(&self, index: LogIndex, term: Term) -> Result<(), String> {
        if index.0 != self.next_index() {
            return Err(format!("entry {index} does not follow the log, which ends at {}", self.next_index() - 1));
        }
        if term < self.last_term() {
            return Err(format!("entry {index} has term {term}, below the previous entry's {}", self.last_term()));
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
        self.terms.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
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

    /// Makes `meta` the base. If the log holds `meta.index` with `meta.term`,
    /// the entries after it stay and `true` is returned; otherwise the log
    /// disagrees with the snapshot and every entry goes (Raft §7). `meta`
    /// must have passed [`check_snapshot`](Self::check_snapshot).
    pub(super) fn compact(&mut self, meta: SnapshotMeta) -> bool {
        let held = self.term_at(meta.index.0) == Some(meta.term);
        if held {
            let covered = meta.index.0 - self.base.index.0;
            self.terms.drain(..usize::try_from(covered).unwrap_or(usize::MAX).min(self.terms.len()));
        } else {
            self.terms.clear();
        }
        self.base = meta;
        held
    }

    /// Checks a whole [`Write`] against the log without changing anything,
    /// and says which records it turns into. A snapshot not newer than the
    /// current one is ignored; a truncation is clamped to the entries after
    /// the snapshot and dropped if it removes nothing.
    pub(super) fn plan(&self, write: &Write) -> Result<Plan, String> {
        let mut virtual_base = self.base;
        let mut next = self.next_index();
        let mut snapshot = None;
        if let Some(s) = &write.snapshot
            && s.meta.index > self.base.index
        {
            self.check_snapshot(s.meta)?;
            if self.term_at(s.meta.index.0) != Some(s.meta.term) {
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
        Ok(Plan { snapshot, truncate_from })
    }
}
