//! Compaction: segments a durable snapshot covers are removed, disk use
//! stays bounded, and recovery is exact from what is left, also when a crash
//! interrupts the removal. Crash points are simulated by copying the
//! directory between the removals of one compaction, done one at a time.

use super::*;
use std::fs;

/// Bytes of every file in `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

/// Copies the files of `from` into a fresh directory: the disk as a crash at
/// this moment would leave it.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = fast_tempdir();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

fn snapshot_at(index: u64, term: u64) -> Write {
    let mut w = Write::default();
    w.snapshot = Some(snapshot(index, term, format!("state at {index}").as_bytes()).into());
    w
}

fn open_with(dir: &Path, segment_bytes: u64) -> Result<(DiskLog, Recovered), StorageError> {
    DiskLog::open_with(dir, ME, unpadded().segment_bytes(segment_bytes))
}

/// Entries `from..=to` of term `term` with 20-byte payloads.
fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, term, 20)).collect()
}

/// 60 entries of term 1 over many 300-byte segments.
fn segmented_log(dir: &Path) -> DiskLog {
    let (mut log, _) = open_small(dir, 300);
    for i in (1..=60).step_by(3) {
        commit(&mut log, &appending(entries(i, i + 2, 1)));
    }
    assert!(segment_firsts(dir).len() >= 8, "{:?}", segment_firsts(dir));
    log
}

/// Runs a workload of `n` entries with a snapshot every 100 (lagging the log
/// end by a varying amount), checking disk use after every sync against
/// `max_segments` and `max_bytes`; then checks a reopen.
fn run_bounded(n: u64, segment_bytes: u64, max_segments: usize, max_bytes: u64) {
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let (mut log, _) = open_small(dir, segment_bytes);
    let mut rng = Rng::new(7);
    let mut all = vec![Entry { term: Term(0), index: LogIndex(0), payload: Payload::Noop }];
    let mut term = 1;
    let mut last_snapshot = None;
    let (mut most_segments, mut most_bytes) = (0, 0);
    let mut next_snapshot = 100;
    while (all.len() as u64) <= n {
        let next = all.len() as u64;
        if rng.chance(2) {
            term += 1;
        }
        let batch: Vec<Entry> = (next..next + 1 + rng.below(10))
            .map(|i| Entry {
                term: Term(term),
                index: LogIndex(i),
                payload: Payload::Command(Bytes::from(rng.bytes(40))),
            })
            .collect();
        let mut w = appending(batch.clone());
        let last = next - 1;
        if last >= next_snapshot {
            // The state machine has applied up to a little behind the log's
            // end (a write stores its snapshot before its entries).
            let index = last - rng.below(8);
            let s = snapshot(index, all[index as usize].term.0, &rng.bytes(200));
            w.snapshot = Some(s.clone().into());
            last_snapshot = Some(s);
            next_snapshot += 100;
        }
        all.extend(batch);
        commit(&mut log, &w);
        let (segs, bytes) = (segment_firsts(dir), disk_bytes(dir));
        let base = log.snapshot_index().0;
        assert!(segs.iter().skip(1).all(|&f| f > base + 1), "not compacted: {segs:?}, snapshot at {base}");
        most_segments = most_segments.max(segs.len());
        most_bytes = most_bytes.max(bytes);
    }
    assert!(
        most_segments <= max_segments && most_bytes <= max_bytes,
        "{n} entries, {segment_bytes}-byte segments: up to {most_segments} segments and {most_bytes} bytes on disk"
    );
    drop(log);
    // A reopen recovers exactly the snapshot and the entries after it.
    let (mut log, rec) = open_small(dir, segment_bytes);
    let s = last_snapshot.unwrap();
    assert_eq!(rec.entries, all[s.meta.index.0 as usize + 1..].to_vec());
    assert_eq!(rec.snapshot, Some(s));
    let last = all.len() as u64 - 1;
    commit(&mut log, &appending(vec![entry(last + 1, term, 3)]));
    drop(log);
    let (_, rec) = open_small(dir, segment_bytes);
    assert_eq!(rec.entries.last(), Some(&entry(last + 1, term, 3)));
}

#[test]
fn disk_use_stays_bounded_with_small_segments() {
    // ~450 KB of records go through the log. Records are about 45 bytes, so
    // a 100-entry snapshot interval is more than a segment: what is left
    // starts at most a segment before the entry after the snapshot (measured:
    // at most 2 segments, 7.8 KB in all files).
    run_bounded(10_000, 4096, 3, 3 * 4096);
}

#[test]
fn disk_use_stays_bounded_by_the_snapshot_interval_with_large_segments() {
    // A segment starts at each snapshot, so huge segments do not keep
    // history either: what is left starts at most an interval (~4.5 KB)
    // before the entry after the snapshot (measured: 2 segments, 7.8 KB).
    run_bounded(3_000, 64 << 20, 3, 12 * 1024);
}

#[test]
fn snapshot_removes_covered_segments_and_keeps_the_one_straddling_it() {
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    let before = segment_firsts(dir);
    // A snapshot in the middle of a segment: that segment holds entries on
    // both sides and stays; every earlier one goes.
    let k = before.len() / 2;
    let s = before[k] + 2;
    assert!(s + 1 < before[k + 1]);
    commit(&mut log, &snapshot_at(s, 1));
    let after = segment_firsts(dir);
    assert_eq!(after[0], before[k], "{before:?} -> {after:?}");
    assert_eq!(&after[..before.len() - k], &before[k..]);
    // The snapshot's record started a segment of its own.
    assert_eq!(after[after.len() - 1], 61);
    drop(log);
    let (mut log, rec) = open_small(dir, 300);
    assert_eq!(rec.snapshot, Some(snapshot(s, 1, format!("state at {s}").as_bytes())));
    assert_eq!(rec.entries, entries(s + 1, 60, 1));
    assert_eq!(segment_firsts(dir), after);
    // A snapshot covering the whole log leaves just the segment it starts.
    commit(&mut log, &appending(entries(61, 70, 2)));
    commit(&mut log, &snapshot_at(70, 2));
    assert_eq!(segment_firsts(dir), vec![71]);
    drop(log);
    let (_, rec) = open_small(dir, 300);
    assert_eq!((rec.snapshot.unwrap().meta.index, rec.entries), (LogIndex(70), vec![]));
}

#[test]
fn crash_at_every_point_of_a_compaction_recovers_the_same_state() {
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    let segs_before = segment_firsts(dir);
    log.hold_compaction = true;
    commit(&mut log, &snapshot_at(50, 1));
    let doomed = log.compacted_segments();
    assert!(doomed >= 6, "{doomed} of {segs_before:?}");
    // Crash points: after the snapshot and its record are durable but before
    // any removal, then after each removal (oldest first).
    let mut images = vec![copy_dir(dir)];
    for _ in 0..doomed {
        assert_eq!(log.remove_compacted_segments(1).unwrap(), 1);
        images.push(copy_dir(dir));
    }
    let compacted = segment_firsts(dir);
    assert_eq!(compacted.len() + doomed, segs_before.len() + 1);
    drop(log);
    for (k, image) in images.iter().enumerate() {
        let left = segment_firsts(image.path());
        assert_eq!(left, [&segs_before[k..], &[61]].concat(), "a contiguous suffix is left after {k} removals");
        let (mut log, rec) = open_with(image.path(), 300).unwrap_or_else(|e| panic!("after {k} removals: {e}"));
        assert_eq!(rec.snapshot.as_ref().map(|s| s.meta.index), Some(LogIndex(50)), "after {k} removals");
        assert_eq!(rec.entries, entries(51, 60, 1), "after {k} removals");
        // Opening finished the compaction.
        assert_eq!(segment_firsts(image.path()), compacted, "after {k} removals");
        commit(&mut log, &appending(entries(61, 64, 2)));
        drop(log);
        let (_, rec) = open_with(image.path(), 300).unwrap();
        assert_eq!(rec.entries, [entries(51, 60, 1), entries(61, 64, 2)].concat());
    }
}

#[test]
fn a_compacted_segment_already_gone_is_skipped_and_one_that_cannot_be_removed_is_an_error() {
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    log.hold_compaction = true;
    commit(&mut log, &snapshot_at(50, 1));
    assert!(log.compacted_segments() >= 3);
    let segs = segments(dir);
    // Someone removed the oldest already: nothing left to do for it.
    fs::remove_file(&segs[0]).unwrap();
    assert_eq!(log.remove_compacted_segments(1).unwrap(), 1);
    // The next one cannot be removed (a directory took its name): an error,
    // and the segment still counts as there.
    fs::remove_file(&segs[1]).unwrap();
    fs::create_dir(&segs[1]).unwrap();
    let doomed = log.compacted_segments();
    let e = log.remove_compacted_segments(1).unwrap_err();
    assert!(e.to_string().contains("remove compacted segment"), "{e}");
    assert_eq!(log.compacted_segments(), doomed);
}

#[test]
fn crash_after_the_snapshot_file_but_before_its_record_still_compacts() {
    // The snapshot file was renamed into place, then the crash: no record,
    // no removal. Recovery adopts the snapshot, records it, and compacts.
    let tmp = fast_tempdir();
    let dir = tmp.path();
    drop(segmented_log(dir));
    super::super::snapshot_file::write(
        &(std::sync::Arc::new(super::super::fs::RealFs) as _),
        dir,
        &snapshot(45, 1, b"adopted"),
    )
    .unwrap();
    let (mut log, rec) = open_small(dir, 300);
    assert_eq!(rec.entries, entries(46, 60, 1));
    let left = segment_firsts(dir);
    assert!(left[0] <= 46 && left[1] > 46, "{left:?}");
    commit(&mut log, &appending(entries(61, 62, 1)));
    drop(log);
    let (_, rec) = open_small(dir, 300);
    assert_eq!(rec.snapshot, Some(snapshot(45, 1, b"adopted")));
    assert_eq!(rec.entries, entries(46, 62, 1));
}

#[test]
fn adopted_snapshot_that_disagrees_with_the_log_after_compaction() {
    // Compacted up to 20; then a leader's snapshot at 40 of another term is
    // stored, and the crash comes before its records: recovery must drop the
    // entries after it in a way that replays the same once the segment the
    // snapshot's record starts is the first one left.
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    commit(&mut log, &snapshot_at(20, 1));
    assert!(segment_firsts(dir)[0] > 1);
    drop(log);
    super::super::snapshot_file::write(
        &(std::sync::Arc::new(super::super::fs::RealFs) as _),
        dir,
        &snapshot(40, 7, b"from the leader"),
    )
    .unwrap();
    let (mut log, rec) = open_small(dir, 300);
    assert_eq!(rec.entries, vec![]);
    assert_eq!(log.last_index(), LogIndex(40));
    commit(&mut log, &appending(entries(41, 50, 7)));
    commit(&mut log, &snapshot_at(45, 7));
    drop(log);
    let (_, rec) = open_small(dir, 300);
    assert_eq!(rec.entries, entries(46, 50, 7));
}

#[test]
fn records_in_kept_segments_that_refer_to_removed_entries_replay_exactly() {
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    // A snapshot lagging the log: its record, in a new segment, names an
    // entry whose segment a later snapshot removes.
    commit(&mut log, &snapshot_at(40, 1));
    commit(&mut log, &appending(entries(61, 65, 2)));
    commit(&mut log, &snapshot_at(62, 2));
    assert_eq!(segment_firsts(dir)[0], 61, "the first segment left starts with the record of the snapshot at 40");
    drop(log);
    let (mut log, rec) = open_small(dir, 300);
    assert_eq!(rec.entries, entries(63, 65, 2));
    // A truncation from far below the first segment left (the snapshot
    // clamps it to the entries after it), then new entries.
    let mut w = appending(entries(63, 70, 3));
    w.truncate_from = Some(LogIndex(10));
    commit(&mut log, &w);
    drop(log);
    let (_, rec) = open_small(dir, 300);
    assert_eq!(rec.entries, entries(63, 70, 3));

    // A truncation record pointing into a segment that is removed later.
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    let mut w = appending(entries(12, 45, 2));
    w.truncate_from = Some(LogIndex(12));
    commit(&mut log, &w);
    commit(&mut log, &snapshot_at(30, 2));
    assert!(segment_firsts(dir)[0] > 12, "{:?}", segment_firsts(dir));
    drop(log);
    let (_, rec) = open_small(dir, 300);
    assert_eq!(rec.entries, entries(31, 45, 2));
}

#[test]
fn first_segment_leaving_a_gap_above_the_snapshot_is_corruption() {
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    commit(&mut log, &snapshot_at(35, 1));
    drop(log);
    let segs = segments(dir);
    // Removing the first segment left loses entries after the snapshot.
    let saved = fs::read(&segs[0]).unwrap();
    fs::remove_file(&segs[0]).unwrap();
    match open_with(dir, 300) {
        Err(StorageError::Corrupt { file, offset: 0, reason }) => {
            assert_eq!(file, segs[1]);
            assert!(reason.contains("covers only up to index 35"), "{reason}");
        }
        other => panic!("{:?}", other.map(|(_, r)| r)),
    }
    fs::write(&segs[0], saved).unwrap();
    // A missing middle segment is corruption, as before compaction.
    fs::remove_file(&segs[1]).unwrap();
    assert_corrupt(open_with(dir, 300), &segs[2], Some(0));
}

#[test]
fn first_segment_after_index_one_without_a_snapshot_is_corruption() {
    let tmp = fast_tempdir();
    let dir = tmp.path();
    drop(segmented_log(dir));
    let segs = segments(dir);
    fs::remove_file(&segs[0]).unwrap();
    assert_corrupt(open_with(dir, 300), &dir.join("snapshot"), Some(0));
}

#[test]
fn torn_header_of_the_only_segment_left_is_corruption() {
    // Earlier segments are removed only once their successor is durable, so
    // this is damage, not a crash: refuse rather than drop its entries.
    let tmp = fast_tempdir();
    let dir = tmp.path();
    let mut log = segmented_log(dir);
    commit(&mut log, &snapshot_at(60, 1));
    drop(log);
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    let bytes = fs::read(&segs[0]).unwrap();
    fs::write(&segs[0], &bytes[..10]).unwrap();
    assert_corrupt(open_with(dir, 300), &segs[0], Some(0));
}

#[test]
fn a_missing_or_different_snapshot_file_than_the_log_records_is_refused() {
    // The log records that a snapshot covers entries it no longer holds; the
    // snapshot file must be there and be that snapshot.
    let tmp = fast_tempdir();
    let mut log = segmented_log(tmp.path());
    commit(&mut log, &snapshot_at(40, 1));
    drop(log);
    let (_, rec) = open_with(tmp.path(), 300).unwrap();
    assert_eq!(rec.snapshot.map(|s| s.meta), Some(SnapshotMeta { index: LogIndex(40), term: Term(1) }));
    // A snapshot file at the same index but of another term.
    let other = fast_tempdir();
    let (mut log, _) = open(other.path());
    commit(&mut log, &snapshot_at(40, 2));
    drop(log);
    let foreign = fs::read(super::super::snapshot_file::path(other.path())).unwrap();
    let swapped = copy_dir(tmp.path());
    let path = super::super::snapshot_file::path(swapped.path());
    fs::write(&path, &foreign).unwrap();
    assert_corrupt(open_with(swapped.path(), 300), &path, Some(0));
    // No snapshot file at all, while the first segment still starts at 1
    // (the snapshot covers part of it only).
    let missing = fast_tempdir();
    let mut log = segmented_log(missing.path());
    commit(&mut log, &snapshot_at(2, 1));
    drop(log);
    assert_eq!(segment_firsts(missing.path())[0], 1);
    let path = super::super::snapshot_file::path(missing.path());
    fs::remove_file(&path).unwrap();
    match open_with(missing.path(), 300) {
        Err(StorageError::Corrupt { file, offset: 0, reason }) if file == path => {
            assert!(reason.contains("there is no snapshot file"), "{reason}")
        }
        other => panic!("expected Corrupt in the snapshot file, got {:?}", other.map(|(_, r)| r)),
    }
}
