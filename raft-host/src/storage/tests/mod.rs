//! Tests of the disk log: behaviour, injected faults, random crash workloads.

mod basic;
mod compaction;
mod faults;
mod power_loss;
mod stored_snapshots;
mod workload;

use super::{DiskLog, DiskLogOptions, NodeMeta, Recovered, StorageError, Watermark};
use raft_core::rng::SplitMix64;
use raft_core::{Bytes, Entry, HardState, LogIndex, NodeId, Payload, Snapshot, SnapshotMeta, Term, Write};
use std::path::{Path, PathBuf};

const ME: NodeMeta = NodeMeta { node_id: NodeId(1), cluster_id: 42 };

/// The tests' generator: raft-core's SplitMix64 with the draws the tests need.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A temporary directory in memory (tmpfs) where there is one: these tests
/// simulate crashes themselves, so real fsyncs only cost time under load.
fn fast_tempdir() -> tempfile::TempDir {
    if has_tmpfs()
        && let Ok(dir) = tempfile::tempdir_in(TMPFS)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

const TMPFS: &str = "/dev/shm";

/// True if [`fast_tempdir`] is in memory (else tests scale down their work).
fn has_tmpfs() -> bool {
    Path::new(TMPFS).is_dir()
}

fn entry(index: u64, term: u64, payload_len: usize) -> Entry {
    let payload = if payload_len == 0 {
        Payload::Noop
    } else {
        Payload::Command(Bytes::from((0..payload_len).map(|i| (index as usize * 31 + i) as u8).collect::<Vec<u8>>()))
    };
    Entry { term: Term(term), index: LogIndex(index), payload }
}

fn appending(entries: Vec<Entry>) -> Write {
    let mut w = Write::default();
    w.entries = entries;
    w
}

fn hard_state(term: u64, vote: Option<u64>) -> HardState {
    HardState { term: Term(term), voted_for: vote.map(NodeId), catching_up: false }
}

fn snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    let membership = raft_core::Membership::with_voters([NodeId(1), NodeId(term)]);
    Snapshot {
        meta: SnapshotMeta { index: LogIndex(index), term: Term(term) },
        membership: membership.into(),
        data: Bytes::from(data),
    }
}

/// Options without preallocation, so that a segment's file ends where its
/// records do (the tests on real directories measure files; preallocation is
/// tested on the simulated disk, `power_loss.rs`).
fn unpadded() -> DiskLogOptions {
    DiskLogOptions::default().preallocate_bytes(0)
}

fn open(dir: &Path) -> (DiskLog, Recovered) {
    DiskLog::open_with(dir, ME, unpadded()).unwrap_or_else(|e| panic!("open failed: {e}"))
}

fn open_small(dir: &Path, segment_bytes: u64) -> (DiskLog, Recovered) {
    DiskLog::open_with(dir, ME, unpadded().segment_bytes(segment_bytes)).unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// Writes `write` and syncs it.
fn commit(log: &mut DiskLog, write: &Write) {
    log.write(write).unwrap();
    log.sync().unwrap();
}

/// The segment files of `dir`, in log order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The first index of each segment of `dir`, in log order.
fn segment_firsts(dir: &Path) -> Vec<u64> {
    segments(dir).iter().map(|p| p.file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap()).collect()
}

/// Asserts `result` is `Corrupt` in `file` at `offset` (any offset if `None`).
#[track_caller]
fn assert_corrupt(result: Result<(DiskLog, Recovered), StorageError>, file: &Path, offset: Option<u64>) {
    match result {
        Err(StorageError::Corrupt { file: f, offset: o, reason }) => {
            assert_eq!(f, file, "wrong file (reason: {reason})");
            if let Some(offset) = offset {
                assert_eq!(o, offset, "wrong offset (reason: {reason})");
            }
            // The message names the file and the offset.
            let msg = StorageError::Corrupt { file: f.clone(), offset: o, reason }.to_string();
            assert!(msg.contains(&*f.to_string_lossy()) && msg.contains(&o.to_string()), "{msg}");
        }
        Err(e) => panic!("expected Corrupt in {}, got {e}", file.display()),
        Ok((_, r)) => panic!("expected Corrupt in {}, opened with {} entries", file.display(), r.entries.len()),
    }
}
