//! The per-node storage model: a durable store plus a queue of writes that
//! were issued but are not durable yet.
//!
//! Writes complete in issue order, each after a random latency. A completed
//! write is applied to the durable store with the semantics of
//! [`raft_core::Write`] (hard state, snapshot, truncation, append) and is
//! atomic: a crash loses every write not yet completed, whole.

use super::rng::SimRng;
use raft_core::{Duration, Entry, HardState, Instant, LogIndex, PersistToken, Restored, Snapshot, Write};
use std::collections::VecDeque;

/// Disk timing. Changeable at run time through [`super::Cluster::disk_config_mut`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// Smallest write latency (inclusive).
    pub latency_min: Duration,
    /// Largest write latency (inclusive).
    pub latency_max: Duration,
}

impl Default for DiskConfig {
    /// 0-2 ms per write.
    fn default() -> DiskConfig {
        DiskConfig { latency_min: Duration::ZERO, latency_max: Duration::from_millis(2) }
    }
}

/// What survives a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    /// The stored term and vote.
    pub hard_state: HardState,
    /// The stored snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The stored log, contiguous from the index after the snapshot (or 1).
    pub entries: Vec<Entry>,
}

impl DurableState {
    /// The last index the snapshot covers (0: none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index)
    }

    /// The last stored index (snapshot included).
    pub fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    /// The term of the stored entry at `index` (the snapshot's last entry
    /// included; index 0 has term 0).
    pub fn term_at(&self, index: LogIndex) -> Option<raft_core::Term> {
        let base = self.snapshot.as_ref().map(|s| s.meta).unwrap_or_default();
        if index == base.index {
            return Some(base.term);
        }
        let k = index.0.checked_sub(base.index.0 + 1)?;
        self.entries.get(usize::try_from(k).ok()?).map(|e| e.term)
    }
}

/// Counters of one node's disk, over all its lifetimes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Writes issued by the node.
    pub issued: u64,
    /// Writes that became durable.
    pub completed: u64,
    /// Writes lost to crashes.
    pub lost: u64,
    /// Entries appended by completed writes.
    pub entries_written: u64,
}

/// A durable store and its queue of in-flight writes.
#[derive(Debug, Default)]
pub struct Disk {
    durable: DurableState,
    pending: VecDeque<(PersistToken, Write)>,
    last_done: Instant,
    stats: DiskStats,
}

impl Disk {
    /// An empty disk.
    pub fn new() -> Disk {
        Disk::default()
    }

    /// Queues `write`; returns when it will be durable (never before an
    /// earlier write's completion).
    pub fn issue(
        &mut self,
        now: Instant,
        token: PersistToken,
        write: Write,
        cfg: &DiskConfig,
        rng: &mut SimRng,
    ) -> Instant {
        let lat = rng.between(cfg.latency_min.as_micros(), cfg.latency_max.as_micros());
        let done = (now + Duration::from_micros(lat)).max(self.last_done);
        self.last_done = done;
        self.pending.push_back((token, write));
        self.stats.issued += 1;
        done
    }

    /// Completes the oldest pending write, which must carry `token`, and
    /// applies it to the durable store. Returns the write, or an error if it
    /// breaks the `Write` contract (which is a core bug).
    pub fn complete(&mut self, token: PersistToken) -> Option<Result<Write, String>> {
        if self.pending.front().map(|p| p.0) != Some(token) {
            return None; // a completion from before a crash
        }
        let (_, write) = self.pending.pop_front()?;
        self.stats.completed += 1;
        self.stats.entries_written += write.entries.len() as u64;
        Some(self.apply(&write).map(|()| write))
    }

    fn apply(&mut self, w: &Write) -> Result<(), String> {
        let d = &mut self.durable;
        if let Some(hs) = w.hard_state {
            d.hard_state = hs;
        }
        // Truncating into a snapshot stored by an earlier write would remove
        // committed entries; into this write's own snapshot it only removes
        // the entries after it (the log disagreed with an installed snapshot).
        let stored = d.snapshot_index();
        if let Some(s) = &w.snapshot {
            d.entries.retain(|e| e.index > s.meta.index);
            d.snapshot = Some((**s).clone());
        }
        if let Some(t) = w.truncate_from {
            if t <= stored {
                return Err(format!("write truncates from i{t}, inside the stored snapshot (up to i{stored})"));
            }
            d.entries.retain(|e| e.index < t);
        }
        for e in &w.entries {
            let want = d.last_index().0 + 1;
            if e.index.0 != want {
                return Err(format!(
                    "write appends i{} but the stored log ends at i{} (truncate_from {:?})",
                    e.index,
                    want - 1,
                    w.truncate_from
                ));
            }
            d.entries.push(e.clone());
        }
        Ok(())
    }

    /// Loses every write not yet durable; returns how many.
    pub fn crash(&mut self) -> usize {
        let lost = self.pending.len();
        self.stats.lost += lost as u64;
        self.pending.clear();
        lost
    }

    /// Exactly what the durable store holds, as a node restores it.
    pub fn restored(&self) -> Restored {
        let r = Restored::new(self.durable.hard_state, self.durable.entries.clone());
        match &self.durable.snapshot {
            Some(s) => r.with_snapshot(s.clone()),
            None => r,
        }
    }

    /// The durable store.
    pub fn durable(&self) -> &DurableState {
        &self.durable
    }

    /// Writes issued and not yet durable.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Counters.
    pub fn stats(&self) -> &DiskStats {
        &self.stats
    }
}
