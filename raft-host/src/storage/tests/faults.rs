//! Injected faults: torn tails at every byte, flipped bits, stray temp files,
//! missing segments. Each checks that acknowledged data survives and that
//! anything else is reported as corruption of the right file, never a panic.

use super::*;
use std::fs;
use std::io::Write as _;

const N: u64 = 20;

/// A log of `N` entries, each written and synced on its own. Returns the
/// segment path and the segment's length after each sync (`ends[i]` = end of
/// entry `i`'s record; `ends[0]` = end of the header).
fn synced_log(dir: &Path) -> (PathBuf, Vec<u64>) {
    let (mut log, _) = open(dir);
    let mut ends = vec![24];
    for i in 1..=N {
        commit(&mut log, &appending(vec![entry(i, 1 + i / 8, (i as usize * 7) % 40)]));
        let seg = segments(dir);
        assert_eq!(seg.len(), 1);
        ends.push(fs::metadata(&seg[0]).unwrap().len());
    }
    (segments(dir).remove(0), ends)
}

fn want(n: u64) -> Vec<Entry> {
    (1..=n).map(|i| entry(i, 1 + i / 8, (i as usize * 7) % 40)).collect()
}

#[test]
fn torn_tail_at_every_offset_keeps_every_synced_entry() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    // Every offset of the last four records, and of the first two plus the
    // header (a cut there leaves the only segment torn).
    let cuts = (0..=ends[2]).chain(ends[N as usize - 4]..=ends[N as usize]);
    for cut in cuts {
        fs::write(&seg, &pristine[..cut as usize]).unwrap();
        let (mut log, rec) = open(tmp.path());
        let kept = ends.iter().rposition(|&e| e <= cut).unwrap_or(0) as u64;
        assert_eq!(rec.entries, want(kept), "cut at {cut}");
        if cut < 24 {
            assert!(!seg.exists(), "a segment with a torn header is removed (cut {cut})");
        } else {
            assert_eq!(fs::metadata(&seg).unwrap().len(), ends[kept as usize], "torn bytes are cut off (cut {cut})");
        }
        // The log goes on from there, and the result reopens cleanly.
        if cut % 5 == 0 {
            commit(&mut log, &appending(vec![entry(kept + 1, 9, 3)]));
            drop(log);
            let (_, rec) = open(tmp.path());
            let mut w = want(kept);
            w.push(entry(kept + 1, 9, 3));
            assert_eq!(rec.entries, w, "append after cut at {cut}");
        }
    }
}

#[test]
fn flipped_bit_in_a_middle_record_is_corruption_at_that_record() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    for k in [1usize, 10, N as usize - 1] {
        for bit in ends[k - 1] * 8..ends[k] * 8 {
            let mut bytes = pristine.clone();
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            fs::write(&seg, &bytes).unwrap();
            assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, Some(ends[k - 1]));
        }
    }
}

#[test]
fn flipped_bit_in_the_last_record_is_a_torn_tail() {
    // Documented choice: damage with nothing valid after it is
    // indistinguishable from a write cut short, so it is cut off. The last
    // record was acknowledged, so this loses it: only a bit flip on the disk
    // (not a crash) can cause this, and Raft re-replicates the entry.
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    let last = N as usize;
    for bit in ends[last - 1] * 8..ends[last] * 8 {
        let mut bytes = pristine.clone();
        bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
        fs::write(&seg, &bytes).unwrap();
        let (_, rec) = open(tmp.path());
        assert_eq!(rec.entries, want(N - 1), "bit {bit}");
        assert_eq!(fs::metadata(&seg).unwrap().len(), ends[last - 1]);
    }
}

#[test]
fn damaged_segment_header_is_corruption() {
    let tmp = fast_tempdir();
    let (seg, _) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    for bit in 0..24 * 8 {
        let mut bytes = pristine.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        fs::write(&seg, &bytes).unwrap();
        assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, None);
    }
}

#[test]
fn zeroed_or_garbage_tail_is_cut_off() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let mut rng = Rng(5);
    for tail in [vec![0u8; 4096], vec![0u8; 3], rng.bytes(200), vec![0xFF; 50], vec![1, 0, 0, 0, 0, 0, 0, 0, 0]] {
        let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&tail).unwrap();
        drop(f);
        let (_, rec) = open(tmp.path());
        assert_eq!(rec.entries, want(N), "tail {tail:?}");
        assert_eq!(fs::metadata(&seg).unwrap().len(), ends[N as usize]);
    }
}

#[test]
fn record_with_good_checksum_that_does_not_decode_is_corruption_even_at_the_end() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let payload = [0xEEu8, 1, 2];
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&frame).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, Some(ends[N as usize]));
}

#[test]
fn record_that_does_not_fit_the_log_is_corruption() {
    use super::super::record::{Change, frame};
    let huge = SnapshotMeta { index: LogIndex(u64::MAX), term: Term(1) };
    let misfits = [
        frame(Change::Append(&entry(N + 5, 9, 1))).unwrap(), // not contiguous
        frame(Change::Append(&entry(N + 1, 1, 1))).unwrap(), // term goes down
        frame(Change::Truncate(LogIndex(N + 1))).unwrap(),   // removes nothing
        frame(Change::Truncate(LogIndex(0))).unwrap(),
        frame(Change::Snapshot(huge)).unwrap(), // index out of range
    ];
    for misfit in misfits {
        let tmp = fast_tempdir();
        let (seg, ends) = synced_log(tmp.path());
        fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&misfit).unwrap();
        assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, Some(ends[N as usize]));
    }
}

/// A log spread over several segments; returns them.
fn multi_segment_log(dir: &Path) -> Vec<PathBuf> {
    let (mut log, _) = open_small(dir, 200);
    for i in 1..=60 {
        commit(&mut log, &appending(vec![entry(i, 1, 20)]));
    }
    let segs = segments(dir);
    assert!(segs.len() >= 4);
    segs
}

#[test]
fn missing_or_renamed_middle_segment_is_corruption() {
    let tmp = fast_tempdir();
    let segs = multi_segment_log(tmp.path());
    let saved = fs::read(&segs[1]).unwrap();
    fs::remove_file(&segs[1]).unwrap();
    assert_corrupt(DiskLog::open_with(tmp.path(), ME, DiskLogOptions::default().segment_bytes(200)), &segs[2], Some(0));
    fs::write(&segs[1], &saved).unwrap();
    // A segment under another name: its header disagrees.
    let renamed = tmp.path().join("log-00000000000000000002.seg");
    fs::rename(&segs[1], &renamed).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &renamed, Some(12));
    fs::rename(&renamed, &segs[1]).unwrap();
    // A stray file with a malformed segment name.
    let bad = tmp.path().join("log-12.seg");
    fs::write(&bad, b"").unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &bad, Some(0));
    fs::remove_file(&bad).unwrap();
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.entries.len(), 60);
}

#[test]
fn torn_tail_in_an_earlier_segment_is_corruption() {
    let tmp = fast_tempdir();
    let segs = multi_segment_log(tmp.path());
    let len = fs::metadata(&segs[1]).unwrap().len();
    fs::OpenOptions::new().write(true).open(&segs[1]).unwrap().set_len(len - 3).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &segs[1], None);
}

#[test]
fn torn_header_of_a_new_last_segment_removes_it() {
    let tmp = fast_tempdir();
    let segs = multi_segment_log(tmp.path());
    let last = segs.last().unwrap();
    let expected = {
        let (_, rec) = open(tmp.path());
        rec.entries
    };
    // A segment being created when the crash came: first index = next index.
    let next = tmp.path().join(format!("log-{:020}.seg", 61));
    for len in 0..24 {
        fs::write(&next, &super::super::segment::header(61)[..len]).unwrap();
        let (_, rec) = open(tmp.path());
        assert_eq!(rec.entries, expected);
        assert!(!next.exists() && last.exists());
    }
}

#[test]
fn damaged_small_files_are_corruption() {
    let tmp = fast_tempdir();
    let (mut log, _) = open(tmp.path());
    let mut w = appending(vec![entry(1, 1, 1)]);
    w.hard_state = Some(hard_state(3, Some(2)));
    w.snapshot = None;
    commit(&mut log, &w);
    let mut w = Write::default();
    w.snapshot = Some(snapshot(1, 1, b"snap"));
    commit(&mut log, &w);
    drop(log);
    for name in ["hardstate", "meta", "snapshot"] {
        let path = tmp.path().join(name);
        let pristine = fs::read(&path).unwrap();
        for bit in 0..pristine.len() * 8 {
            let mut bytes = pristine.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            fs::write(&path, &bytes).unwrap();
            assert_corrupt(DiskLog::open(tmp.path(), ME), &path, None);
        }
        for cut in 0..pristine.len() {
            fs::write(&path, &pristine[..cut]).unwrap();
            assert_corrupt(DiskLog::open(tmp.path(), ME), &path, None);
        }
        fs::write(&path, &pristine).unwrap();
    }
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.hard_state, hard_state(3, Some(2)));
}

#[test]
fn leftover_temp_files_are_removed_and_the_old_files_stay() {
    let tmp = fast_tempdir();
    let (mut log, _) = open(tmp.path());
    let mut w = appending(vec![entry(1, 1, 1)]);
    w.hard_state = Some(hard_state(4, Some(1)));
    commit(&mut log, &w);
    let mut w = Write::default();
    w.snapshot = Some(snapshot(1, 1, b"s"));
    commit(&mut log, &w);
    drop(log);
    for name in ["hardstate.tmp", "snapshot.tmp", "meta.tmp"] {
        fs::write(tmp.path().join(name), b"half a new file").unwrap();
    }
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.hard_state, hard_state(4, Some(1)));
    assert_eq!(rec.snapshot, Some(snapshot(1, 1, b"s")));
    for name in ["hardstate.tmp", "snapshot.tmp", "meta.tmp"] {
        assert!(!tmp.path().join(name).exists(), "{name} left behind");
    }
}

#[test]
fn snapshot_record_without_a_snapshot_file_is_corruption() {
    let tmp = fast_tempdir();
    let (mut log, _) = open(tmp.path());
    commit(&mut log, &appending(vec![entry(1, 1, 1), entry(2, 1, 1)]));
    let mut w = Write::default();
    w.snapshot = Some(snapshot(2, 1, b"s"));
    commit(&mut log, &w);
    drop(log);
    let path = tmp.path().join("snapshot");
    fs::remove_file(&path).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &path, Some(0));
}

quickcheck::quickcheck! {
    fn scanning_arbitrary_segment_bytes_never_panics(body: Vec<u8>, is_last: bool) -> bool {
        use super::super::segment;
        let _ = segment::scan(&body, 1, is_last);
        let with_header = [&segment::header(1)[..], &body].concat();
        let _ = segment::scan(&with_header, 1, is_last);
        true
    }

    fn opening_a_directory_with_an_arbitrary_segment_never_panics(body: Vec<u8>) -> bool {
        let tmp = fast_tempdir();
        drop(open(tmp.path()));
        let seg = tmp.path().join("log-00000000000000000001.seg");
        fs::write(&seg, [&super::super::segment::header(1)[..], &body].concat()).unwrap();
        // Whatever it holds: recovered entries, or an error naming the segment.
        match DiskLog::open(tmp.path(), ME) {
            Ok(_) => true,
            Err(StorageError::Corrupt { file, .. }) => file == seg,
            Err(e) => panic!("{e}"),
        }
    }
}
