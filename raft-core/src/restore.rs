//! What a node starts from: the state its host made durable, and errors.

use crate::config::ConfigError;
use crate::types::{Entry, HardState, LogIndex, Snapshot, SnapshotDigest};
use alloc::vec::Vec;
use core::fmt;

/// The durable state a node restarts from: exactly what the host stored from
/// [`crate::Write`]s, plus how far the host's state machine has applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// The stored term and vote.
    pub hard_state: HardState,
    /// The stored snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Set if the host holds the snapshot's bytes (its `data` is then empty).
    pub snapshot_digest: Option<SnapshotDigest>,
    /// The stored log: contiguous, from the index after the snapshot (or 1).
    pub entries: Vec<Entry>,
    /// The state machine already reflects every entry up to here (0 for an
    /// in-memory state machine). Those entries are not delivered again.
    pub last_applied: LogIndex,
}

impl Restored {
    /// A brand-new node: term 0, no vote, empty log.
    pub fn fresh() -> Restored {
        Restored::default()
    }

    /// A node restarting from stored state.
    pub fn new(hard_state: HardState, entries: Vec<Entry>) -> Restored {
        Restored { hard_state, snapshot: None, snapshot_digest: None, entries, last_applied: LogIndex(0) }
    }

    /// Sets the stored snapshot; `entries` must then start right after it.
    /// If the state machine has not applied up to the snapshot, the node first
    /// emits `Output::RestoreSnapshot` with it.
    pub fn with_snapshot(mut self, snapshot: Snapshot) -> Restored {
        self.snapshot = Some(snapshot);
        self.snapshot_digest = None;
        self
    }

    /// Sets the stored snapshot whose bytes the host holds (`snapshot.data`
    /// is ignored): the leader then reads its chunks through
    /// `Output::SendSnapshotChunk`. Otherwise as [`with_snapshot`](Self::with_snapshot).
    pub fn with_stored_snapshot(mut self, snapshot: Snapshot, digest: SnapshotDigest) -> Restored {
        self.snapshot = Some(Snapshot { data: crate::Bytes::default(), ..snapshot });
        self.snapshot_digest = Some(digest);
        self
    }

    /// Sets how far the host's state machine has already applied.
    pub fn with_last_applied(mut self, index: LogIndex) -> Restored {
        self.last_applied = index;
        self
    }

    /// Checks the stored log's shape.
    pub(crate) fn validate(&self) -> Result<(), RestoreError> {
        let base = self.snapshot.as_ref().map(|s| s.meta).unwrap_or_default();
        let mut prev_term = base.term;
        for (i, e) in self.entries.iter().enumerate() {
            let want = LogIndex(base.index.0.saturating_add(i as u64 + 1));
            if e.index != want {
                return Err(RestoreError::NotContiguous { expected: want, found: e.index });
            }
            if e.term < prev_term {
                return Err(RestoreError::TermDecreases { index: e.index });
            }
            prev_term = e.term;
        }
        let last = LogIndex(base.index.0.saturating_add(self.entries.len() as u64));
        if self.last_applied > last {
            return Err(RestoreError::AppliedBeyondLog { last_applied: self.last_applied, last_index: last });
        }
        Ok(())
    }
}

/// Why restored state was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// Entry indexes must run 1, 2, 3...
    NotContiguous {
        /// The index that should have come next.
        expected: LogIndex,
        /// The index found.
        found: LogIndex,
    },
    /// Entry terms must never decrease along the log.
    TermDecreases {
        /// Where the term went down.
        index: LogIndex,
    },
    /// The state machine claims entries the log does not hold.
    AppliedBeyondLog {
        /// The claimed applied index.
        last_applied: LogIndex,
        /// The stored log's last index.
        last_index: LogIndex,
    },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::NotContiguous { expected, found } => {
                write!(f, "stored log is not contiguous: expected index {expected}, found {found}")
            }
            RestoreError::TermDecreases { index } => write!(f, "stored log's term decreases at index {index}"),
            RestoreError::AppliedBeyondLog { last_applied, last_index } => {
                write!(f, "state machine applied up to {last_applied} but the stored log ends at {last_index}")
            }
        }
    }
}

impl core::error::Error for RestoreError {}

/// Why `Node::new` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewNodeError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The restored state is inconsistent.
    Restore(RestoreError),
}

impl fmt::Display for NewNodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NewNodeError::Config(e) => write!(f, "invalid config: {e}"),
            NewNodeError::Restore(e) => write!(f, "invalid restored state: {e}"),
        }
    }
}

impl core::error::Error for NewNodeError {}

impl From<ConfigError> for NewNodeError {
    fn from(e: ConfigError) -> Self {
        NewNodeError::Config(e)
    }
}

impl From<RestoreError> for NewNodeError {
    fn from(e: RestoreError) -> Self {
        NewNodeError::Restore(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Bytes, Payload, SnapshotMeta, Term};
    use alloc::vec;

    #[test]
    fn each_builder_sets_its_field_and_keeps_the_others() {
        let hs = HardState { term: Term(3), voted_for: None, catching_up: false };
        let entries = vec![
            Entry { term: Term(2), index: LogIndex(6), payload: Payload::Noop },
            Entry { term: Term(3), index: LogIndex(7), payload: Payload::Noop },
        ];
        let meta = SnapshotMeta { index: LogIndex(5), term: Term(2) };
        let snapshot = Snapshot { meta, membership: Default::default(), data: Bytes::from("state") };
        let r = Restored::new(hs, entries.clone()).with_last_applied(LogIndex(6));
        assert_eq!((r.hard_state, &r.entries, r.last_applied), (hs, &entries, LogIndex(6)));
        let r = r.with_snapshot(snapshot.clone());
        assert_eq!((r.snapshot.as_ref(), r.snapshot_digest), (Some(&snapshot), None));
        assert_eq!((r.hard_state, &r.entries, r.last_applied), (hs, &entries, LogIndex(6)));
        assert_eq!(r.validate(), Ok(()));
        // A stored snapshot: the host keeps the bytes, the core only its digest.
        let digest = SnapshotDigest { len: 5, checksum: 7 };
        let r = r.with_stored_snapshot(snapshot, digest);
        let kept = r.snapshot.as_ref().unwrap();
        assert_eq!((kept.meta, kept.data.len(), r.snapshot_digest), (meta, 0, Some(digest)));
        assert_eq!((r.hard_state, &r.entries, r.last_applied), (hs, &entries, LogIndex(6)));
        assert_eq!(
            r.with_last_applied(LogIndex(8)).validate(),
            Err(RestoreError::AppliedBeyondLog { last_applied: LogIndex(8), last_index: LogIndex(7) })
        );
    }
}
