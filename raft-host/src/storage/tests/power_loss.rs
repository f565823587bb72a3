//! Crash tests on the simulated disk ([`SimFs`]): power losses at every
//! point of a sync that lose, tear and reorder whatever was not
//! fdatasync'ed; bits flipped in and bytes cut from synced segments. Every
//! acknowledged write is recovered, or recovery refuses with `Corrupt`,
//! never silently missing; repair then keeps exactly the records before the
//! damage and marks the hard state `catching_up`.
//!
//! Set `RAFT_HOST_SEED=<n>` to run one seed of the random workload.

use super::super::fs::{PowerLoss, SimFs};
use super::super::segment::{self, SEGMENT_HEADER};
use super::workload::{Model, random_write};
use super::*;
use std::sync::Arc;

fn dir() -> PathBuf {
    PathBuf::from("/sim/node")
}

fn sim_open(sim: &SimFs, segment_bytes: u64) -> Result<(DiskLog, Recovered), StorageError> {
    sim_open_with(sim, DiskLogOptions::default().segment_bytes(segment_bytes))
}

fn sim_open_with(sim: &SimFs, options: DiskLogOptions) -> Result<(DiskLog, Recovered), StorageError> {
    DiskLog::open_on(Arc::new(sim.clone()), dir(), ME, options)
}

fn sim_segments(sim: &SimFs) -> Vec<PathBuf> {
    use super::super::fs::Fs;
    let mut v: Vec<PathBuf> =
        sim.list(&dir()).unwrap().into_iter().map(|n| dir().join(n)).filter(|p| segment::is_segment_path(p)).collect();
    v.sort();
    v
}

fn run_power_loss_seed(seed: u64) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let sim = SimFs::new();
    // Segments of 200 B to 6 KB, preallocated 0, 300 B, 1 KB at a time or whole.
    let segment_bytes = 200 + rng.below(6000);
    let prealloc = [0, 300, 1024, 1 << 20][rng.below(4) as usize];
    let watermark = if rng.chance(50) { Watermark::Deferred } else { Watermark::BeforeAck };
    let options =
        DiskLogOptions::default().segment_bytes(segment_bytes).preallocate_bytes(prealloc).watermark(watermark);
    let mut model = Model::default();
    let (mut log, _) = sim_open_with(&sim, options.clone()).unwrap();
    let (mut losses, mut acked_then_lost_power) = (0, 0);
    for step in 1..=120 {
        let w = random_write(&mut rng, &model);
        log.write(&w).unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
        model.write(&w);
        match rng.below(100) {
            0..40 => {
                log.sync().unwrap();
                model.synced();
                if rng.chance(30) {
                    log.settle_watermark().unwrap();
                }
            }
            40..55 => {
                // The process dies after a few more file-system calls (maybe
                // in the middle of this sync, maybe after it), then the power goes.
                sim.fail_after(rng.below(14));
                if log.sync().is_ok() {
                    model.synced();
                    acked_then_lost_power += 1;
                }
                drop(log);
                let how = if rng.chance(25) { PowerLoss::DropUnsynced } else { PowerLoss::Random { seed: rng.next() } };
                sim.power_loss(how);
                losses += 1;
                let (reopened, rec) = sim_open_with(&sim, options.clone())
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: reopen after {how:?} failed: {e}"));
                let Some((_, mlog)) = model.crash_candidates().into_iter().find(|(c, _)| *c == rec) else {
                    panic!(
                        "seed {seed} step {step}: after {how:?}, recovered a state no crash could produce \
                         (an acknowledged write lost?)\n{rec:?}\nsynced: {:?}",
                        model.synced_log
                    );
                };
                model.recovered(&rec, mlog);
                log = reopened;
            }
            _ => {}
        }
    }
    log.sync().unwrap();
    model.synced();
    drop(log);
    sim.power_loss(PowerLoss::Random { seed });
    let (_, rec) = sim_open_with(&sim, options).unwrap();
    assert_eq!(rec, model.expected(), "seed {seed}: final reopen");
    (losses, acked_then_lost_power)
}

#[test]
fn power_loss_at_any_point_of_a_sync_never_loses_an_acknowledged_write() {
    let seeds: Vec<u64> = match std::env::var("RAFT_HOST_SEED") {
        Ok(s) => vec![s.parse().expect("RAFT_HOST_SEED must be a number")],
        Err(_) => (0..300).collect(),
    };
    let (mut losses, mut acked) = (0, 0);
    for seed in seeds {
        match std::panic::catch_unwind(|| run_power_loss_seed(seed)) {
            Ok((l, a)) => {
                losses += l;
                acked += a;
            }
            Err(panic) => {
                eprintln!("power-loss workload failed with seed {seed} (rerun with RAFT_HOST_SEED={seed})");
                std::panic::resume_unwind(panic);
            }
        }
    }
    assert!(losses > 1000 && acked > 100, "losses {losses}, acknowledged just before one {acked}");
}

/// A log of 30 entries over several segments on a simulated disk, each entry
/// synced on its own, plus a hard state. Segment files are preallocated (to
/// the segment size, 300 bytes): zeros follow the records.
fn synced_sim_log() -> (SimFs, Vec<Entry>) {
    let sim = SimFs::new();
    let (mut log, _) = sim_open(&sim, 300).unwrap();
    let mut w = Write::default();
    w.hard_state = Some(hard_state(5, Some(3)));
    commit(&mut log, &w);
    let entries: Vec<Entry> = (1..=30).map(|i| entry(i, 1 + i / 10, (i as usize * 13) % 50)).collect();
    for e in &entries {
        commit(&mut log, &appending(vec![e.clone()]));
    }
    assert!(sim_segments(&sim).len() >= 4);
    (sim, entries)
}

/// Each record of each segment: (segment, offset, end, index of its entry).
fn records(sim: &SimFs) -> Vec<(PathBuf, usize, usize, u64)> {
    let mut out = Vec::new();
    let mut index = 1;
    for seg in sim_segments(sim) {
        let bytes = sim.contents(&seg).unwrap();
        let first: u64 = seg.file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap();
        let scan = segment::scan(&bytes, first, false, &seg).unwrap();
        assert_eq!(scan.end as u64, scan.synced, "every record is synced");
        assert!(bytes[scan.end..].iter().all(|&b| b == 0), "preallocated zeros follow");
        for (at, payload) in scan.frames {
            out.push((seg.clone(), at, at + 8 + payload.len(), index));
            index += 1;
        }
    }
    out
}

/// Asserts that opening `sim` is refused as corruption at `(seg, at)`; then,
/// if `repair`, that a repair cuts exactly there and the log reopens with
/// the entries before `index` and the hard state marked catching up.
#[track_caller]
fn assert_refused_then_repaired(sim: &SimFs, seg: &Path, at: u64, index: u64, entries: &[Entry], repair: bool) {
    match sim_open(sim, 300) {
        Err(StorageError::Corrupt { file, offset, reason }) => {
            assert_eq!((file.as_path(), offset), (seg, at), "{reason}");
        }
        Err(e) => panic!("expected Corrupt in {} at {at}, got {e}", seg.display()),
        Ok((_, rec)) => panic!(
            "damage at {} byte {at} not detected: opened with {} of {} acknowledged entries",
            seg.display(),
            rec.entries.len(),
            entries.len()
        ),
    }
    if !repair {
        return;
    }
    let repaired = DiskLog::repair_on(Arc::new(sim.clone()), dir(), ME).unwrap();
    assert_eq!(repaired.damage.len(), 1, "{repaired:?}");
    assert!(!repaired.is_clean());
    assert_eq!((repaired.damage[0].file.as_path(), repaired.damage[0].offset), (seg, at));
    let (mut log, rec) = sim_open(sim, 300).unwrap();
    assert_eq!(rec.entries, entries[..index as usize - 1], "repair keeps the records before the damage");
    assert_eq!(rec.hard_state, HardState { catching_up: true, ..hard_state(5, Some(3)) });
    // The repaired log goes on, and survives a power loss.
    commit(&mut log, &appending(vec![entry(index, 9, 5)]));
    drop(log);
    sim.power_loss(PowerLoss::DropUnsynced);
    let (_, rec) = sim_open(sim, 300).unwrap();
    assert_eq!(rec.entries.last(), Some(&entry(index, 9, 5)));
    assert!(rec.hard_state.catching_up);
}

#[test]
fn flipping_any_bit_of_any_synced_record_is_refused_and_repairable() {
    let (sim, entries) = synced_sim_log();
    let recs = records(&sim);
    assert_eq!(recs.len(), entries.len());
    let mut flips = 0;
    for (seg, start, end, index) in recs {
        let pristine = sim.contents(&seg).unwrap();
        for bit in start * 8..end * 8 {
            let fork = sim.fork();
            let mut bytes = pristine.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            fork.set_contents(&seg, &bytes);
            assert_refused_then_repaired(&fork, &seg, start as u64, index, &entries, bit % 17 == 0);
            flips += 1;
        }
    }
    assert!(flips > 5000, "{flips}");
}

#[test]
fn cutting_a_synced_segment_at_any_byte_is_refused_and_repairable() {
    let (sim, entries) = synced_sim_log();
    let recs = records(&sim);
    for seg in sim_segments(&sim) {
        let pristine = sim.contents(&seg).unwrap();
        let end = recs.iter().filter(|r| r.0 == seg).map(|r| r.2).max().unwrap();
        // Cutting preallocated zeros loses nothing.
        for cut in [end, end + 1, pristine.len() - 1] {
            let fork = sim.fork();
            fork.set_contents(&seg, &pristine[..cut.min(pristine.len())]);
            assert_eq!(sim_open(&fork, 300).unwrap().1.entries, entries, "cut at {cut} of {}", pristine.len());
        }
        for cut in 0..end {
            let fork = sim.fork();
            fork.set_contents(&seg, &pristine[..cut]);
            // The damage starts at the record the cut falls in (at the
            // cut on a record boundary); a repair keeps the records before it.
            let cut_record = recs.iter().find(|r| r.0 == seg && r.2 > cut && r.1 <= cut);
            let at = match cut {
                0..24 => 0,
                24..SEGMENT_HEADER => cut,
                _ => cut_record.map_or(cut, |r| r.1),
            } as u64;
            let index = match cut_record {
                Some(r) if cut >= SEGMENT_HEADER => r.3,
                // In the header: the whole segment goes.
                _ if cut < SEGMENT_HEADER => recs.iter().find(|r| r.0 == seg).unwrap().3,
                // On the boundary after the segment's last record.
                _ => recs.iter().filter(|r| r.0 == seg).map(|r| r.3).max().unwrap() + 1,
            };
            assert_refused_then_repaired(&fork, &seg, at, index, &entries, cut % 5 == 0);
        }
    }
}

#[test]
fn power_loss_reordering_page_writes_keeps_the_acknowledged_log_and_a_prefix_of_the_rest() {
    let sim = SimFs::new();
    let (mut log, _) = sim_open(&sim, 1 << 20).unwrap();
    let synced: Vec<Entry> = (1..=5).map(|i| entry(i, 1, 3000)).collect();
    commit(&mut log, &appending(synced.clone()));
    // Records spanning many pages, written but never synced: the process
    // dies right after the write, before its fdatasync.
    let extra: Vec<Entry> = (6..=12).map(|i| entry(i, 2, 1000 + i as usize * 700)).collect();
    log.write(&appending(extra.clone())).unwrap();
    sim.fail_after(1);
    assert!(log.sync().is_err());
    drop(log);
    let mut kept = [0usize; 8];
    for seed in 0..400 {
        let fork = sim.fork();
        fork.power_loss(PowerLoss::Random { seed });
        let (_, rec) = sim_open(&fork, 1 << 20).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let n = rec.entries.len() - synced.len();
        let mut want = synced.clone();
        want.extend_from_slice(&extra[..n]);
        assert_eq!(rec.entries, want, "seed {seed}");
        kept[n] += 1;
    }
    // Losses keep nothing, all, and everything between.
    assert!(kept[0] > 0 && kept.iter().filter(|&&k| k > 0).count() >= 4, "{kept:?}");
}

#[test]
fn the_refusal_names_the_file_the_offset_and_the_repair() {
    let (sim, _) = synced_sim_log();
    let seg = sim_segments(&sim).remove(1);
    let mut bytes = sim.contents(&seg).unwrap();
    bytes[SEGMENT_HEADER + 9] ^= 4;
    sim.set_contents(&seg, &bytes);
    let msg = match sim_open(&sim, 300) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("damage not detected"),
    };
    let needles = [
        &*seg.to_string_lossy(),
        &SEGMENT_HEADER.to_string(),
        "record checksum mismatch",
        "--repair",
        "DiskLog::repair",
    ];
    for needle in needles {
        assert!(msg.contains(needle), "{needle:?} missing in: {msg}");
    }
}

#[test]
fn reopening_keeps_the_preallocated_zeros_and_ignores_stray_bytes_after_an_earlier_segments_records() {
    let (sim, entries) = synced_sim_log();
    let segs = sim_segments(&sim);
    let recs = records(&sim);
    let end_of = |seg: &PathBuf| recs.iter().filter(|r| &r.0 == seg).map(|r| r.2).max().unwrap();
    // Stray bytes (not a record) after the records of the first segment,
    // beyond its watermark: nothing acknowledged lies there, and only the
    // last segment's tail is ever cut.
    let mut first = sim.contents(&segs[0]).unwrap();
    let stray = end_of(&segs[0]);
    assert!(first.len() > stray + 3, "the first segment has no preallocated zeros");
    first[stray..stray + 3].copy_from_slice(b"xyz");
    sim.set_contents(&segs[0], &first);
    let last = segs.last().unwrap();
    assert!(sim.contents(last).unwrap().len() > end_of(last), "the last segment has no preallocated zeros");
    let before: Vec<Vec<u8>> = segs.iter().map(|s| sim.contents(s).unwrap()).collect();
    let (log, rec) = sim_open(&sim, 300).unwrap();
    drop(log);
    assert_eq!(rec.entries, entries);
    let after: Vec<Vec<u8>> = segs.iter().map(|s| sim.contents(s).unwrap()).collect();
    for (seg, (b, a)) in segs.iter().zip(before.iter().zip(&after)) {
        assert!(a == b, "{} changed from {} to {} bytes", seg.display(), b.len(), a.len());
    }
}

/// The two watermark slots of a segment: `(synced_end, generation)`, or
/// `None` for a damaged one.
fn slots(bytes: &[u8]) -> [Option<(u64, u64)>; 2] {
    [24, 44].map(|at| {
        let s = &bytes[at..at + 20];
        let word = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
        (crc32fast::hash(&s[..16]).to_le_bytes() == s[16..]).then(|| (word(0), word(8)))
    })
}

#[test]
fn each_sync_moves_the_watermark_into_the_other_slot_with_the_next_generation() {
    let (sim, _) = synced_sim_log();
    let recs = records(&sim);
    for seg in sim_segments(&sim) {
        let mine: Vec<_> = recs.iter().filter(|r| r.0 == seg).collect();
        let last = mine.last().unwrap();
        let [Some(a), Some(b)] = slots(&sim.contents(&seg).unwrap()) else { panic!("a damaged slot") };
        let (newest, older) = if a.1 > b.1 { (a, b) } else { (b, a) };
        // Created with generations 0 and 1, then one slot write per sync,
        // each entry synced on its own: the previous watermark (before the
        // last record) is still there, beside the newest.
        assert_eq!(newest, (last.2 as u64, 1 + mine.len() as u64), "{}", seg.display());
        assert_eq!(older, (last.1 as u64, mine.len() as u64), "{}", seg.display());
    }
}

#[test]
fn a_repair_cut_writes_its_watermark_beside_the_newest_slot_never_over_it() {
    let (sim, _) = synced_sim_log();
    let seg = sim_segments(&sim).pop().unwrap();
    let pristine = sim.contents(&seg).unwrap();
    let end = records(&sim).iter().filter(|r| r.0 == seg).map(|r| r.1).max().unwrap() as u64;
    let [Some(a), Some(b)] = slots(&pristine) else { panic!("a damaged slot") };
    let (newest, older) = if a.1 > b.1 { (0, 1) } else { (1, 0) };
    let generation = a.1.max(b.1);
    // Cut before the last record: the new watermark goes into the older
    // slot, so a torn slot write would leave the newest one.
    segment::cut(&sim, &seg, end).unwrap();
    let cut = sim.contents(&seg).unwrap();
    assert_eq!(cut.len() as u64, end);
    assert_eq!(slots(&cut)[newest], slots(&pristine)[newest], "the newest slot was overwritten");
    assert_eq!(slots(&cut)[older], Some((end, generation + 1)));

    // A segment whose newest slot is damaged and whose surviving one is
    // generation 0 (as created): the cut's watermark is generation 1, in
    // the damaged slot.
    let fork = sim.fork();
    let mut bytes = segment::header(7).to_vec();
    bytes.extend_from_slice(&[0; 100]);
    bytes[44] ^= 1;
    fork.set_contents(&seg, &bytes);
    assert_eq!(slots(&bytes), [Some((SEGMENT_HEADER as u64, 0)), None]);
    segment::cut(&fork, &seg, 80).unwrap();
    let cut = fork.contents(&seg).unwrap();
    assert_eq!(slots(&cut), [Some((SEGMENT_HEADER as u64, 0)), Some((80, 1))]);
    assert_eq!(cut.len(), 80);
}

#[test]
fn preallocation_keeps_between_half_a_chunk_and_a_chunk_of_zeros_ahead_of_the_records() {
    let sim = SimFs::new();
    let chunk = 1024;
    let (mut log, _) = sim_open_with(&sim, DiskLogOptions::default().preallocate_bytes(chunk)).unwrap();
    let mut ahead = Vec::new();
    for i in 1..=60 {
        commit(&mut log, &appending(vec![entry(i, 1, 40 + i as usize % 7)]));
        let seg = sim_segments(&sim).pop().unwrap();
        let bytes = sim.contents(&seg).unwrap();
        let end = segment::scan(&bytes, 1, true, &seg).unwrap().end as u64;
        let zeros = bytes.len() as u64 - end;
        assert!((chunk / 2..=chunk).contains(&zeros), "entry {i}: {zeros} bytes of zeros after the records");
        ahead.push(zeros);
    }
    // The records passed several chunks; each time the zeros ran low the file grew.
    assert!(ahead.windows(2).filter(|w| w[1] > w[0]).count() >= 3, "{ahead:?}");
}

#[test]
fn after_a_failed_sync_the_log_refuses_every_call_until_reopened() {
    let sim = SimFs::new();
    let (mut log, _) = sim_open(&sim, 300).unwrap();
    commit(&mut log, &appending(vec![entry(1, 1, 10)]));
    sim.fail_after(0);
    log.write(&appending(vec![entry(2, 1, 10)])).unwrap();
    assert!(log.sync().is_err());
    // The disk works again, but this log no longer knows what reached it.
    sim.power_loss(PowerLoss::DropUnsynced);
    let failed = |r: Result<(), StorageError>| matches!(r, Err(StorageError::Failed { .. }));
    assert!(failed(log.write(&appending(vec![entry(2, 1, 10)]))));
    assert!(failed(log.sync()));
    assert!(failed(log.settle_watermark().map(|_| ())));
    drop(log);
    let (_, rec) = sim_open(&sim, 300).unwrap();
    assert_eq!(rec.entries, vec![entry(1, 1, 10)]);
}

/// [`SimFs`] (whose directories are durable once created), recording the
/// directories synced.
#[derive(Debug, Default)]
struct DirSyncs {
    sim: SimFs,
    synced: std::sync::Mutex<Vec<PathBuf>>,
}

impl super::super::fs::Fs for DirSyncs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.sim.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.synced.lock().unwrap().push(dir.to_path_buf());
        self.sim.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        self.sim.list(dir)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.sim.exists(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.sim.read(path)
    }
    fn open(
        &self,
        path: &Path,
        mode: super::super::fs::OpenMode,
    ) -> std::io::Result<Box<dyn super::super::fs::FsFile>> {
        self.sim.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.sim.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.sim.remove_file(path)
    }
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<super::super::fs::LockGuard>> {
        self.sim.try_lock(path)
    }
}

#[test]
fn opening_a_new_directory_syncs_its_parent_so_the_directory_itself_is_durable() {
    let fs = Arc::new(DirSyncs::default());
    let (log, _) = DiskLog::open_on(fs.clone(), "/sim/parent/node", ME, DiskLogOptions::default()).unwrap();
    drop(log);
    let synced = fs.synced.lock().unwrap().clone();
    assert!(synced.contains(&PathBuf::from("/sim/parent")), "{synced:?}");
}

#[test]
fn a_damaged_newest_watermark_slot_in_any_segment_loses_nothing() {
    let (sim, entries) = synced_sim_log();
    for seg in sim_segments(&sim) {
        let pristine = sim.contents(&seg).unwrap();
        for bit in 24 * 8..SEGMENT_HEADER * 8 {
            let fork = sim.fork();
            let mut bytes = pristine.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            fork.set_contents(&seg, &bytes);
            let (_, rec) = sim_open(&fork, 300).unwrap_or_else(|e| panic!("{} bit {bit}: {e}", seg.display()));
            assert_eq!(rec.entries, entries, "{} bit {bit}", seg.display());
        }
    }
}

/// Ten entries, each synced on its own with [`Watermark::Deferred`], in one
/// segment (preallocated): returns the disk, the entries, the segment and
/// its records `(start, end)`.
fn deferred_log(settle: bool) -> (SimFs, Vec<Entry>, PathBuf, Vec<(usize, usize)>) {
    let sim = SimFs::new();
    let options = DiskLogOptions::default().watermark(Watermark::Deferred);
    let (mut log, _) = sim_open_with(&sim, options).unwrap();
    let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1, 20)).collect();
    for e in &entries {
        commit(&mut log, &appending(vec![e.clone()]));
    }
    if settle {
        assert!(log.settle_watermark().unwrap(), "the watermark was behind");
        assert!(!log.settle_watermark().unwrap(), "a second settle has nothing to do");
    }
    drop(log);
    let seg = sim_segments(&sim).pop().unwrap();
    let bytes = sim.contents(&seg).unwrap();
    let scan = segment::scan(&bytes, 1, true, &seg).unwrap();
    let recs = scan.frames.iter().map(|(at, payload)| (*at, at + 8 + payload.len())).collect();
    (sim, entries, seg, recs)
}

fn flip(sim: &SimFs, seg: &Path, at: usize) -> SimFs {
    let fork = sim.fork();
    let mut bytes = sim.contents(seg).unwrap();
    bytes[at] ^= 0x10;
    fork.set_contents(seg, &bytes);
    fork
}

#[test]
fn deferred_watermark_covers_every_sync_but_the_last_until_settled() {
    let deferred = || DiskLogOptions::default().watermark(Watermark::Deferred);
    let (sim, entries, seg, recs) = deferred_log(false);
    assert_eq!(recs.len(), 10);
    // Every record of an earlier sync is under the watermark: damage there
    // is corruption.
    for &(start, end) in &recs[..9] {
        let e = sim_open_with(&flip(&sim, &seg, (start + end) / 2), deferred()).unwrap_err();
        assert!(matches!(e, StorageError::Corrupt { offset, .. } if offset == start as u64), "{e}");
    }
    // The last sync's record is beyond it: damage to it looks like a torn
    // write and is cut (the weaker promise `Watermark::Deferred` documents).
    let (start, end) = recs[9];
    let (_, rec) = sim_open_with(&flip(&sim, &seg, (start + end) / 2), deferred()).unwrap();
    assert_eq!(rec.entries, entries[..9]);
    // Intact, it is kept.
    assert_eq!(sim_open_with(&sim.fork(), deferred()).unwrap().1.entries, entries);

    // Once settled (as the disk thread does when idle), the last record is
    // under the watermark too.
    let (sim, _, seg, recs) = deferred_log(true);
    let (start, end) = recs[9];
    let e = sim_open_with(&flip(&sim, &seg, (start + end) / 2), deferred()).unwrap_err();
    assert!(matches!(e, StorageError::Corrupt { offset, .. } if offset == start as u64), "{e}");
}

#[test]
fn deferred_watermark_syncs_once_per_group_commit() {
    let syncs = |watermark| {
        let sim = SimFs::new();
        let (mut log, _) = sim_open_with(&sim, DiskLogOptions::default().watermark(watermark)).unwrap();
        commit(&mut log, &appending(vec![entry(1, 1, 20)]));
        let before = sim.ops();
        for i in 2..=11 {
            commit(&mut log, &appending(vec![entry(i, 1, 20)]));
        }
        sim.ops() - before
    };
    // Per sync, BeforeAck: record write, fdatasync, slot write, fdatasync;
    // Deferred: slot write (for the previous sync), record write, fdatasync.
    let (before_ack, deferred) = (syncs(Watermark::BeforeAck), syncs(Watermark::Deferred));
    assert_eq!(before_ack, 10 * 4, "BeforeAck");
    assert_eq!(deferred, 10 * 3, "Deferred");
}
