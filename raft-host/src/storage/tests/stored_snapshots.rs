//! Crash tests of stored snapshots on the simulated disk ([`SimFs`]): the
//! steps a [`Driver`](crate::Driver) built with `with_stored_snapshots` takes
//! ([`SnapshotStore`] writing the `snapshot` file, then the disk log
//! recording it), with the process killed at a random file-system call and
//! the power lost. After each loss the log reopens (crashes alone never
//! make it refuse) with every acknowledged write: the snapshot of the last
//! acknowledged take or install (or the newer one in flight, if its file got
//! in place) with exactly the data written, and the entries after it. A
//! leftover `snapshot.tmp` or `snapshot.incoming.tmp` is removed.
//!
//! Set `RAFT_HOST_SEED=<n>` to run one seed.

use super::super::SNAPSHOT_CHUNK;
use super::super::fs::{Fs, PowerLoss, SimFs};
use super::*;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::StateMachine;
use raft_core::{InstallSnapshot, Membership, SnapshotDigest};
use std::sync::Arc;

fn dir() -> PathBuf {
    PathBuf::from("/sim/node")
}

fn options() -> DiskLogOptions {
    DiskLogOptions::default().segment_bytes(2000).preallocate_bytes(512).stored_snapshots(true)
}

fn membership() -> Membership {
    Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)])
}

/// A state machine that is a blob of bytes, streamed out in pieces of
/// `piece` bytes.
struct Blob {
    data: Vec<u8>,
    applied: LogIndex,
    piece: usize,
}

impl StateMachine for Blob {
    type Command = u64;
    type Output = ();

    fn apply(&mut self, index: LogIndex, _: u64) {
        self.applied = index;
    }

    fn skip(&mut self, index: LogIndex) {
        self.applied = index;
    }

    fn snapshot(&self) -> Vec<u8> {
        self.data.clone()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), raft_core::codec::DecodeError> {
        self.data = snapshot.to_vec();
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.data.chunks(self.piece.max(1)).try_for_each(|p| out.write_all(p))
    }

    fn last_applied(&self) -> LogIndex {
        self.applied
    }
}

fn digest(data: &[u8]) -> SnapshotDigest {
    SnapshotDigest { len: data.len() as u64, checksum: crc32fast::hash(data) }
}

/// What the log holds: the snapshot (and its data) and the entries after it.
#[derive(Clone, Debug, Default)]
struct State {
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    entries: Vec<Entry>,
}

impl State {
    fn base(&self) -> SnapshotMeta {
        self.snapshot.as_ref().map_or(SnapshotMeta::default(), |s| s.0)
    }

    fn next_index(&self) -> u64 {
        self.entries.last().map_or(self.base().index.0, |e| e.index.0) + 1
    }

    fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.base().term.0, |e| e.term.0)
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        self.entries.iter().find(|e| e.index.0 == index).map(|e| e.term.0)
    }

    /// The state after storing the snapshot `meta`: the entries after it
    /// stay if the log holds its index with its term (Raft §7).
    fn with_snapshot(&self, meta: SnapshotMeta, data: Vec<u8>) -> State {
        let entries = if self.term_at(meta.index.0) == Some(meta.term.0) {
            self.entries.iter().filter(|e| e.index > meta.index).cloned().collect()
        } else {
            Vec::new()
        };
        State { snapshot: Some((meta, data)), entries }
    }
}

/// One step of the workload: what it does and the states a crash during it
/// may leave (the last one is the state if it completed).
enum Op {
    Append(Vec<Entry>),
    Take {
        meta: SnapshotMeta,
        data: Vec<u8>,
        piece: usize,
    },
    /// A snapshot received in chunks of these sizes; installed (recorded
    /// in the log) unless `abandon`: the leader went away mid-transfer.
    Receive {
        meta: SnapshotMeta,
        data: Vec<u8>,
        chunks: Vec<usize>,
        abandon: bool,
    },
}

fn random_op(rng: &mut Rng, state: &State) -> Op {
    let data_len = [0, 1 + rng.below(5000), rng.below(3 * SNAPSHOT_CHUNK as u64)][rng.below(3) as usize];
    let data: Vec<u8> = (0..data_len).map(|_| rng.next() as u8).collect();
    match rng.below(10) {
        0..4 => {
            let term = state.last_term().max(1) + rng.below(2);
            let n = 1 + rng.below(6);
            let first = state.next_index();
            Op::Append((first..first + n).map(|i| entry(i, term, rng.below(300) as usize)).collect())
        }
        4..7 if !state.entries.is_empty() => {
            let e = &state.entries[rng.below(state.entries.len() as u64) as usize];
            let meta = SnapshotMeta { index: e.index, term: e.term };
            Op::Take { meta, data, piece: 1 + rng.below(2 * SNAPSHOT_CHUNK as u64) as usize }
        }
        _ => {
            let base = state.base().index.0;
            let index = base + 1 + rng.below(state.next_index() - base + 4);
            // Agreeing with the log's entry there, or newer than anything.
            let term = match state.term_at(index) {
                Some(t) if rng.chance(60) => t,
                _ => state.last_term() + 1,
            };
            let mut chunks = Vec::new();
            let mut left = data.len();
            while left > 0 {
                let n = (1 + rng.below(SNAPSHOT_CHUNK as u64 + 1000) as usize).min(left);
                chunks.push(n);
                left -= n;
            }
            if chunks.is_empty() {
                // An empty snapshot comes as one empty chunk.
                chunks.push(0);
            }
            let meta = SnapshotMeta { index: LogIndex(index), term: Term(term) };
            Op::Receive { meta, data, chunks, abandon: rng.chance(15) }
        }
    }
}

impl Op {
    /// The states a crash during this step may leave, the completed one last.
    fn outcomes(&self, before: &State) -> Vec<State> {
        match self {
            Op::Append(entries) => (0..=entries.len())
                .map(|n| {
                    let mut s = before.clone();
                    s.entries.extend_from_slice(&entries[..n]);
                    s
                })
                .collect(),
            Op::Take { meta, data, .. } | Op::Receive { meta, data, abandon: false, .. } => {
                vec![before.clone(), before.with_snapshot(*meta, data.clone())]
            }
            Op::Receive { abandon: true, .. } => vec![before.clone()],
        }
    }

    /// Runs the step as the driver does; `Ok` once it is acknowledged (the
    /// log's sync returned).
    fn run(&self, log: &mut DiskLog, store: &mut SnapshotStore) -> Result<(), StorageError> {
        let record = |log: &mut DiskLog, meta: SnapshotMeta, data: &[u8]| {
            let snapshot = Snapshot { meta, membership: membership().into(), data: Bytes::default() };
            let mut write = Write::default();
            write.snapshot = Some(snapshot.into());
            write.snapshot_digest = Some(digest(data));
            log.write(&write)?;
            log.sync()
        };
        match self {
            Op::Append(entries) => {
                log.write(&appending(entries.clone()))?;
                log.sync()
            }
            Op::Take { meta, data, piece } => {
                let sm = Blob { data: data.clone(), applied: meta.index, piece: *piece };
                let taken = store.take(&sm, *meta, &membership())?;
                assert_eq!(taken, digest(data), "the digest of the data taken");
                record(log, *meta, data)
            }
            Op::Receive { meta, data, chunks, abandon } => {
                let mut offset = 0;
                for (i, &n) in chunks.iter().enumerate() {
                    if *abandon && i == chunks.len() / 2 {
                        return Ok(());
                    }
                    let chunk = InstallSnapshot {
                        index: meta.index,
                        snapshot_term: meta.term,
                        offset: offset as u64,
                        total_len: data.len() as u64,
                        data: Bytes::from(data[offset..offset + n].to_vec()),
                        checksum: crc32fast::hash(data),
                        membership: membership().into(),
                        round: 0,
                    };
                    store.save_chunk(&chunk)?;
                    offset += n;
                }
                if *abandon {
                    return Ok(());
                }
                store.install(*meta, Some(digest(data)))?;
                record(log, *meta, data)
            }
        }
    }
}

fn open(sim: &SimFs) -> Result<(DiskLog, Recovered, SnapshotStore), StorageError> {
    let (log, rec) = DiskLog::open_on(Arc::new(sim.clone()), dir(), ME, options())?;
    let (fs, dir) = log.snapshot_files().expect("opened with stored snapshots");
    let store = SnapshotStore::new(fs, dir, rec.snapshot.as_ref().map(|s| s.meta));
    Ok((log, rec, store))
}

fn tmp_files(sim: &SimFs) -> Vec<String> {
    let names = sim.list(&dir()).unwrap();
    names.into_iter().filter_map(|n| n.into_string().ok()).filter(|n| n.ends_with(".tmp")).collect()
}

/// Checks that `rec` (with `store` over the same directory) is `want`,
/// reading the snapshot's data back through the store as a restore does.
fn check(rec: &Recovered, store: &mut SnapshotStore, want: &State) -> Result<(), String> {
    let got = rec.snapshot.as_ref().map(|s| s.meta);
    if got != want.snapshot.as_ref().map(|s| s.0) {
        return Err(format!("snapshot {got:?}"));
    }
    if rec.entries != want.entries {
        return Err(format!("entries {:?}", rec.entries.iter().map(|e| (e.index.0, e.term.0)).collect::<Vec<_>>()));
    }
    let Some((meta, data)) = &want.snapshot else {
        return Ok(());
    };
    let s = rec.snapshot.as_ref().expect("compared above");
    if *s.membership != membership() || !s.data.is_empty() || rec.snapshot_digest != Some(digest(data)) {
        return Err(format!("snapshot {s:?} with digest {:?}, wrote {:?}", rec.snapshot_digest, digest(data)));
    }
    let mut sm = Blob { data: Vec::new(), applied: LogIndex(0), piece: 1 };
    store.restore(&mut sm, *meta).map_err(|e| format!("restore: {e}"))?;
    if sm.data != *data {
        return Err(format!("restored {} bytes that differ from the {} written", sm.data.len(), data.len()));
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    ops: usize,
    losses: usize,
    /// Snapshots (taken or received) acknowledged, then the power lost.
    acked_snapshots: usize,
    /// Snapshots in flight at the crash that recovery adopted.
    adopted_in_flight: usize,
    /// Reopens that found a leftover snapshot temp file.
    leftovers: usize,
    /// Snapshot files damaged on purpose at the end of a seed.
    damaged: usize,
}

fn run_seed(seed: u64, counts: &mut Counts) {
    let mut rng = Rng::new(seed);
    let sim = SimFs::new();
    let (mut log, _, mut store) = open(&sim).unwrap();
    let mut state = State::default();
    for step in 1..=40 {
        let op = random_op(&mut rng, &state);
        let mut outcomes = op.outcomes(&state);
        counts.ops += 1;
        if !rng.chance(35) {
            op.run(&mut log, &mut store).unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            state = outcomes.pop().unwrap();
            continue;
        }
        // The process dies after a few more file-system calls (during
        // this step, or after it), then the power goes.
        sim.fail_after(rng.below(24));
        let acked = op.run(&mut log, &mut store).is_ok();
        if acked {
            outcomes.drain(..outcomes.len() - 1);
            if !matches!(op, Op::Append(_) | Op::Receive { abandon: true, .. }) {
                counts.acked_snapshots += 1;
            }
        }
        drop((log, store));
        let how = if rng.chance(25) { PowerLoss::DropUnsynced } else { PowerLoss::Random { seed: rng.next() } };
        sim.power_loss(how);
        counts.losses += 1;
        let leftovers = tmp_files(&sim).iter().any(|n| n.starts_with("snapshot"));
        let (reopened, rec, mut reopened_store) = open(&sim)
            .unwrap_or_else(|e| panic!("seed {seed} step {step}: reopen after {how:?} (acked: {acked}) failed: {e}"));
        assert_eq!(tmp_files(&sim), Vec::<String>::new(), "seed {seed} step {step}: temp files left after open");
        let mut errors = Vec::new();
        let found = outcomes.iter().position(|want| match check(&rec, &mut reopened_store, want) {
            Ok(()) => true,
            Err(e) => {
                errors.push(e);
                false
            }
        });
        let Some(found) = found else {
            panic!(
                "seed {seed} step {step}: after {how:?} (acked: {acked}), recovered a state no crash could produce \
                 (an acknowledged write lost, or torn snapshot data?): {errors:?}\nbefore the step: snapshot {:?}, \
                 entries up to {}",
                state.snapshot.as_ref().map(|s| s.0),
                state.next_index() - 1
            );
        };
        if leftovers {
            counts.leftovers += 1;
        }
        if found > 0 && found == outcomes.len() - 1 && !acked && matches!(op, Op::Take { .. } | Op::Receive { .. }) {
            counts.adopted_in_flight += 1;
        }
        state = outcomes.swap_remove(found);
        (log, store) = (reopened, reopened_store);
    }
    // Genuine damage, unlike a crash, is refused: a flipped bit in the data
    // of the (synced) snapshot file.
    drop((log, store));
    if let Some((_, data)) = state.snapshot.as_ref().filter(|s| !s.1.is_empty()) {
        let path = dir().join("snapshot");
        let mut bytes = sim.contents(&path).unwrap();
        let at = bytes.len() - 1 - rng.below(data.len() as u64) as usize;
        bytes[at] ^= 1 << rng.below(8);
        sim.set_contents(&path, &bytes);
        match open(&sim) {
            Err(StorageError::Corrupt { file, .. }) if file == path => counts.damaged += 1,
            Err(e) => panic!("seed {seed}: a flipped bit at byte {at} of the snapshot file: {e}"),
            Ok(_) => panic!("seed {seed}: a flipped bit at byte {at} of the snapshot file went unnoticed"),
        }
    }
}

#[test]
fn power_loss_around_stored_snapshots_keeps_every_acknowledged_snapshot_intact() {
    let seeds: Vec<u64> = match std::env::var("RAFT_HOST_SEED") {
        Ok(s) => vec![s.parse().expect("RAFT_HOST_SEED must be a number")],
        Err(_) => (0..500).collect(),
    };
    let one = seeds.len() == 1;
    let mut counts = Counts::default();
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(seed, &mut counts))) {
            eprintln!("stored-snapshot power-loss workload failed with seed {seed} (rerun with RAFT_HOST_SEED={seed})");
            std::panic::resume_unwind(panic);
        }
    }
    if !one {
        let Counts { ops, losses, acked_snapshots, adopted_in_flight, leftovers, damaged } = counts;
        assert!(
            losses > 5000 && acked_snapshots > 500 && adopted_in_flight > 500 && leftovers > 200 && damaged > 250,
            "ops {ops}, losses {losses}, acknowledged snapshots {acked_snapshots}, adopted in flight \
             {adopted_in_flight}, leftover temp files {leftovers}, damaged {damaged}"
        );
    }
}
