//! Random workloads against the disk log and an in-memory model, with
//! simulated crashes. A crash keeps what the last sync made durable and an
//! arbitrary prefix of the bytes written after it (possibly followed by
//! zeros or junk), with the newer hard state and snapshot files in place or
//! not, as the write order allows. Recovery must return one of the states
//! that crash could have produced (never losing synced data), and the log
//! must go on correctly from it.
//!
//! Segments are small, so snapshots make the log remove old segments all the
//! time; a crash that comes after every record of a sync is durable may also
//! come in the middle of that removal (any oldest-first part of it done).
//! After each sync and each reopen, compaction must be complete: no segment
//! but the first may start at or below the snapshot index + 1.
//!
//! Set `RAFT_HOST_SEED=<n>` to run one seed.

use super::super::segment::{SEGMENT_HEADER, name as segment_name};
use super::*;
use std::fs;

/// The log as replaying records rebuilds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ModelLog {
    pub(super) base: SnapshotMeta,
    entries: Vec<Entry>,
}

impl ModelLog {
    pub(super) fn next(&self) -> u64 {
        self.base.index.0 + self.entries.len() as u64 + 1
    }

    fn term_at(&self, i: u64) -> Option<Term> {
        if i == self.base.index.0 {
            Some(self.base.term)
        } else if i > self.base.index.0 && i < self.next() {
            Some(self.entries[(i - self.base.index.0 - 1) as usize].term)
        } else {
            None
        }
    }

    fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base.term, |e| e.term)
    }

    fn compact(&mut self, meta: SnapshotMeta) {
        if meta.index <= self.base.index {
            return;
        }
        if self.term_at(meta.index.0) == Some(meta.term) {
            self.entries.drain(..(meta.index.0 - self.base.index.0) as usize);
        } else {
            self.entries.clear();
        }
        self.base = meta;
    }

    fn truncate(&mut self, from: LogIndex) {
        let from = from.0.max(self.base.index.0 + 1);
        if from < self.next() {
            self.entries.truncate((from - self.base.index.0 - 1) as usize);
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Snapshot(meta) => self.compact(*meta),
            Op::Truncate(from) => self.truncate(*from),
            Op::Append(e) => {
                assert_eq!(e.index.0, self.next());
                self.entries.push(e.clone());
            }
        }
    }
}

/// One record-level change.
#[derive(Debug)]
enum Op {
    Snapshot(SnapshotMeta),
    Truncate(LogIndex),
    Append(Entry),
}

#[derive(Debug, Default)]
pub(super) struct Model {
    synced_hs: HardState,
    synced_snapshot: Option<Snapshot>,
    pub(super) synced_log: ModelLog,
    pending_hs: Option<HardState>,
    pending_snapshot: Option<Snapshot>,
    ops: Vec<Op>,
    /// `synced_log` with `ops` applied.
    pub(super) log: ModelLog,
}

impl Model {
    fn hs(&self) -> HardState {
        self.pending_hs.unwrap_or(self.synced_hs)
    }

    fn snapshot(&self) -> Option<Snapshot> {
        self.pending_snapshot.clone().or_else(|| self.synced_snapshot.clone())
    }

    pub(super) fn write(&mut self, w: &Write) {
        if let Some(hs) = w.hard_state {
            self.pending_hs = Some(hs);
        }
        if let Some(s) = &w.snapshot
            && s.meta.index > self.log.base.index
        {
            self.pending_snapshot = Some((**s).clone());
            self.ops.push(Op::Snapshot(s.meta));
        }
        if let Some(from) = w.truncate_from {
            self.ops.push(Op::Truncate(from));
        }
        self.ops.extend(w.entries.iter().cloned().map(Op::Append));
        // (Re)build the current log from the synced one: simple and obviously right.
        let mut log = self.synced_log.clone();
        self.ops.iter().for_each(|op| log.apply(op));
        self.log = log;
    }

    pub(super) fn synced(&mut self) {
        self.synced_hs = self.hs();
        self.synced_snapshot = self.snapshot();
        self.synced_log = self.log.clone();
        self.pending_hs = None;
        self.pending_snapshot = None;
        self.ops.clear();
    }

    pub(super) fn expected(&self) -> Recovered {
        Recovered {
            hard_state: self.hs(),
            snapshot: self.snapshot(),
            snapshot_digest: None,
            entries: self.log.entries.clone(),
        }
    }

    /// Every state a crash now may recover to, with its log.
    pub(super) fn crash_candidates(&self) -> Vec<(Recovered, ModelLog)> {
        let mut logs = vec![self.synced_log.clone()];
        for op in &self.ops {
            let mut next = logs.last().unwrap().clone();
            next.apply(op);
            logs.push(next);
        }
        let (old_hs, new_hs) = (self.synced_hs, self.hs());
        let (old_snap, new_snap) = (self.synced_snapshot.clone(), self.snapshot());
        let mut out = Vec::new();
        for (j, log) in logs.iter().enumerate() {
            let files: Vec<(HardState, Option<Snapshot>)> = if j == 0 {
                vec![(old_hs, old_snap.clone()), (new_hs, old_snap.clone()), (new_hs, new_snap.clone())]
            } else {
                vec![(new_hs, new_snap.clone())]
            };
            for (hs, snap) in files {
                let mut log = log.clone();
                if let Some(s) = &snap {
                    log.compact(s.meta);
                }
                out.push((
                    Recovered { hard_state: hs, snapshot: snap, snapshot_digest: None, entries: log.entries.clone() },
                    log,
                ));
            }
        }
        out
    }

    pub(super) fn recovered(&mut self, rec: &Recovered, log: ModelLog) {
        self.synced_hs = rec.hard_state;
        self.synced_snapshot = rec.snapshot.clone();
        self.synced_log = log.clone();
        self.log = log;
        self.pending_hs = None;
        self.pending_snapshot = None;
        self.ops.clear();
    }
}

/// A snapshot of the log up to `index` (of `term`), with `data`.
fn snapshot_at(index: u64, term: Term, data: Vec<u8>) -> Box<Snapshot> {
    let membership = raft_core::Membership::with_voters([raft_core::NodeId(index % 3 + 1)]);
    Box::new(Snapshot {
        meta: SnapshotMeta { index: LogIndex(index), term },
        membership: membership.into(),
        data: Bytes::from(data),
    })
}

pub(super) fn random_write(rng: &mut Rng, m: &Model) -> Write {
    let log = &m.log;
    let mut w = Write::default();
    if rng.chance(15) {
        let vote = if rng.chance(50) { Some(NodeId(rng.below(5))) } else { None };
        w.hard_state =
            Some(HardState { term: Term(m.hs().term.0 + rng.below(2)), voted_for: vote, catching_up: false });
    }
    let base = log.base.index.0;
    let last = log.next() - 1;
    let roll = rng.below(100);
    if roll < 8 && last > base {
        // The state machine compacts at an index the log holds.
        let index = base + 1 + rng.below(last - base);
        let term = log.term_at(index).unwrap();
        w.snapshot = Some(snapshot_at(index, term, rng.bytes(300)));
    } else if roll < 11 {
        // A leader's snapshot, possibly beyond or disagreeing with the log.
        let index = base + 1 + rng.below(last - base + 10);
        let term = Term(log.last_term().0 + rng.below(3));
        if log.term_at(index) != Some(term) {
            w.truncate_from = Some(LogIndex(index));
        }
        w.snapshot = Some(snapshot_at(index, term, rng.bytes(300)));
    } else if roll < 25 && last > base {
        w.truncate_from = Some(LogIndex(base + 1 + rng.below(last - base)));
    }
    let mut after = log.clone();
    if let Some(s) = &w.snapshot {
        after.compact(s.meta);
    }
    if let Some(from) = w.truncate_from {
        after.truncate(from);
    }
    let mut term = after.last_term().0 + u64::from(rng.chance(10));
    for k in 0..rng.below(6) {
        if rng.chance(5) {
            term += 1;
        }
        let payload = if rng.chance(10) { Payload::Noop } else { Payload::Command(Bytes::from(rng.bytes(120))) };
        w.entries.push(Entry { term: Term(term), index: LogIndex(after.next() + k), payload });
    }
    w
}

/// What the directory held at some point.
struct Image {
    hardstate: Option<Vec<u8>>,
    snapshot: Option<Vec<u8>>,
    segments: Vec<(PathBuf, u64)>,
    /// Each segment's header (with its watermark slots).
    headers: Vec<Vec<u8>>,
}

fn image(dir: &Path) -> Image {
    let segments = segments(dir);
    Image {
        hardstate: fs::read(dir.join("hardstate")).ok(),
        snapshot: fs::read(dir.join("snapshot")).ok(),
        headers: segments.iter().map(|p| fs::read(p).unwrap()[..SEGMENT_HEADER].to_vec()).collect(),
        // Where each segment's records end (zeros may follow: a crash's
        // zeroed tail is no torn tail, and the next sync writes over it).
        segments: segments.into_iter().map(|p| (p.clone(), records_end(&p))).collect(),
    }
}

fn records_end(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    super::super::segment::scan(&bytes, segment_first(path), true, path).unwrap().end as u64
}

fn restore_file(path: &Path, old: &Option<Vec<u8>>) {
    match old {
        Some(bytes) => fs::write(path, bytes).unwrap(),
        None => {
            let _ = fs::remove_file(path);
        }
    }
}

/// Turns the directory after a completed sync (that removed no segment) into
/// one where the sync was cut short by a crash: keeps `before` plus a prefix
/// of the new log bytes. Returns true if that prefix is all of them, so that
/// the crash may have come during the removal of compacted segments.
fn simulate_crash(rng: &mut Rng, dir: &Path, before: &Image) -> bool {
    let after = image(dir);
    // The bytes the sync appended, in the order it appended them.
    let mut chunks = Vec::new();
    for (path, len) in &after.segments {
        let old = before.segments.iter().position(|(p, _)| p == path);
        let start = old.map_or(SEGMENT_HEADER as u64, |i| before.segments[i].1);
        // The header as it was before the sync moved the watermark.
        let header = old
            .map_or_else(|| super::super::segment::header(segment_first(path)).to_vec(), |i| before.headers[i].clone());
        if *len > start || old.is_none() {
            chunks.push((path.clone(), start, *len, old.is_none(), header));
        }
    }
    let total: u64 = chunks.iter().map(|c| c.2 - c.1).sum();
    // A new segment only gets its name once its header is durable (so a
    // crash before keeps nothing of it): its header is not part of the sync's bytes.
    let keep = match rng.below(10) {
        0 | 1 => 0,
        2..=4 => total,
        _ => rng.below(total + 1),
    };
    let mut complete = keep == total;
    if keep == 0 {
        // No log byte reached the disk: the hard state and snapshot files,
        // replaced first, may or may not have been.
        match rng.below(3) {
            0 => {
                restore_file(&dir.join("hardstate"), &before.hardstate);
                restore_file(&dir.join("snapshot"), &before.snapshot);
                complete = false;
            }
            1 => {
                restore_file(&dir.join("snapshot"), &before.snapshot);
                complete = false;
            }
            _ => {}
        }
    }
    let mut left = keep;
    let mut cut_done = false;
    for (path, start, end, is_new, header) in chunks {
        if cut_done {
            fs::remove_file(&path).unwrap();
            continue;
        }
        let len = end - start;
        if left >= len && !(left == len && left < total && rng.chance(30)) {
            left -= len;
            continue;
        }
        // The crash came inside this chunk.
        cut_done = true;
        if is_new && left == 0 && rng.chance(50) {
            fs::remove_file(&path).unwrap();
            continue;
        }
        // The sync did not return: its watermark never moved.
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate((start + left) as usize);
        bytes[..SEGMENT_HEADER].copy_from_slice(&header);
        fs::write(&path, &bytes).unwrap();
        let junk: Vec<u8> = match rng.below(4) {
            0 => vec![0; rng.below(100) as usize],
            1 => rng.bytes(60),
            _ => Vec::new(),
        };
        complete &= junk.is_empty();
        use std::io::Write as _;
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&junk).unwrap();
    }
    complete
}

/// Asserts that compaction is complete in `dir` for a snapshot at `base`:
/// only the first segment may start at or below `base + 1`, and it must.
#[track_caller]
fn assert_compacted(dir: &Path, base: u64, context: &str) {
    let firsts = segment_firsts(dir);
    if let Some(first) = firsts.first() {
        assert!(*first <= base + 1, "{context}: segments {firsts:?} leave a gap after the snapshot at {base}");
    }
    if let Some(second) = firsts.get(1) {
        assert!(*second > base + 1, "{context}: segments {firsts:?} not compacted for the snapshot at {base}");
    }
}

/// What a seed exercised.
#[derive(Debug, Default)]
struct Stats {
    /// Segments removed by compaction (counted at the crash points).
    removed: usize,
    /// Crashes in the middle of a compaction (some but not all removed).
    partial: usize,
    /// Reopens whose first segment starts after index 1.
    compacted_reopens: usize,
}

fn segment_first(path: &Path) -> u64 {
    path.file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap()
}

fn first_segment(dir: &Path) -> u64 {
    segment_firsts(dir).first().copied().unwrap_or(1)
}

fn check_open(dir: &Path, segment_bytes: u64, seed: u64, step: usize) -> (DiskLog, Recovered) {
    DiskLog::open_with(dir, ME, unpadded().segment_bytes(segment_bytes))
        .unwrap_or_else(|e| panic!("seed {seed} step {step}: reopen failed: {e}"))
}

fn run_seed(seed: u64) -> Stats {
    let mut stats = Stats::default();
    let mut rng = Rng::new(seed);
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let segment_bytes = 100 + rng.below(1500);
    let mut model = Model::default();
    let (mut log, _) = check_open(dir, segment_bytes, seed, 0);
    let steps = 150;
    for step in 1..=steps {
        let w = random_write(&mut rng, &model);
        log.write(&w).unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}; write {w:?}"));
        model.write(&w);
        assert_eq!(log.last_index().0, model.log.next() - 1, "seed {seed} step {step}");
        match rng.below(100) {
            0..30 => {
                log.sync().unwrap();
                model.synced();
                assert_compacted(dir, model.synced_log.base.index.0, &format!("seed {seed} step {step}"));
            }
            30..36 => {
                let before = image(dir);
                // Keep the segments the sync would remove, to crash amid their removal.
                log.hold_compaction = true;
                log.sync().unwrap();
                let doomed: Vec<PathBuf> =
                    log.segments.iter().take(log.compacted_segments()).map(|&f| dir.join(segment_name(f))).collect();
                drop(log);
                if simulate_crash(&mut rng, dir, &before) {
                    // Oldest first: a prefix of them is gone.
                    let removed = rng.below(doomed.len() as u64 + 1) as usize;
                    doomed[..removed].iter().for_each(|p| fs::remove_file(p).unwrap());
                    stats.removed += removed;
                    stats.partial += usize::from(removed > 0 && removed < doomed.len());
                }
                stats.compacted_reopens += usize::from(first_segment(dir) > 1);
                let (reopened, rec) = check_open(dir, segment_bytes, seed, step);
                let candidates = model.crash_candidates();
                let Some((_, mlog)) = candidates.into_iter().find(|(c, _)| *c == rec) else {
                    panic!(
                        "seed {seed} step {step}: recovered a state no crash could produce\n{rec:?}\nsynced: {:?}",
                        model.synced_log
                    );
                };
                assert_eq!(reopened.last_index().0, mlog.next() - 1, "seed {seed} step {step}");
                assert_eq!(reopened.snapshot_index(), mlog.base.index, "seed {seed} step {step}");
                model.recovered(&rec, mlog);
                assert_compacted(dir, model.synced_log.base.index.0, &format!("seed {seed} step {step} reopen"));
                log = reopened;
            }
            36..38 => {
                log.sync().unwrap();
                model.synced();
                drop(log);
                stats.compacted_reopens += usize::from(first_segment(dir) > 1);
                let (reopened, rec) = check_open(dir, segment_bytes, seed, step);
                assert_eq!(rec, model.expected(), "seed {seed} step {step}: clean reopen");
                log = reopened;
            }
            _ => {}
        }
    }
    log.sync().unwrap();
    model.synced();
    drop(log);
    let (_, rec) = check_open(dir, segment_bytes, seed, steps + 1);
    assert_eq!(rec, model.expected(), "seed {seed}: final reopen");
    assert_compacted(dir, model.synced_log.base.index.0, &format!("seed {seed} final"));
    stats
}

#[test]
fn random_workload_with_crashes_never_loses_synced_data() {
    let seeds: Vec<u64> = match std::env::var("RAFT_HOST_SEED") {
        Ok(s) => vec![s.parse().expect("RAFT_HOST_SEED must be a number")],
        // A real disk's fsyncs cost ~50x more: fewer seeds there.
        Err(_) => (0..if has_tmpfs() { 200 } else { 20 }).collect(),
    };
    let all = seeds.len() > 1;
    let mut total = Stats::default();
    for seed in seeds {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(stats) => {
                total.removed += stats.removed;
                total.partial += stats.partial;
                total.compacted_reopens += stats.compacted_reopens;
            }
            Err(panic) => {
                eprintln!("disk log workload failed with seed {seed} (rerun with RAFT_HOST_SEED={seed})");
                std::panic::resume_unwind(panic);
            }
        }
    }
    // The workload really compacts, and crashes in the middle of it.
    if all {
        assert!(total.removed > 50 && total.partial > 10 && total.compacted_reopens > 500, "{total:?}");
    }
}
