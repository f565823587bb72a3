//! Injected faults on a real directory: cuts at every byte, flipped bits,
//! stray temp files, missing segments. Each checks that acknowledged data
//! survives or that its loss is reported as corruption of the right file at
//! the right offset, never a panic. (The same over a simulated disk with
//! power losses: `power_loss.rs`.)

use super::super::segment::SEGMENT_HEADER;
use super::*;
use std::fs;
use std::io::Write as _;

const HEADER: u64 = SEGMENT_HEADER as u64;

const N: u64 = 20;

/// A log of `N` entries, each written and synced on its own. Returns the
/// segment path and the segment's length after each sync (`ends[i]` = end of
/// entry `i`'s record; `ends[0]` = end of the header).
fn synced_log(dir: &Path) -> (PathBuf, Vec<u64>) {
    let (mut log, _) = open(dir);
    let mut ends = vec![HEADER];
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
fn cut_at_every_offset_below_the_watermark_is_corruption() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    for cut in 0..ends[N as usize] {
        fs::write(&seg, &pristine[..cut as usize]).unwrap();
        // Inside the identity header: at 0; in the watermark slots: where
        // the file now ends; in the records: where the cut record starts.
        let at = match cut {
            0..24 => 0,
            24..HEADER => cut,
            _ => *ends.iter().rev().find(|&&e| e <= cut).unwrap(),
        };
        assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, Some(at));
    }
}

/// The framed records of `extra`, as a sync cut short by a crash leaves
/// them beyond the watermark.
fn unsynced_tail(extra: &[Entry]) -> Vec<u8> {
    use super::super::record::{Change, frame};
    extra.iter().flat_map(|e| frame(Change::Append(e)).unwrap()).collect()
}

#[test]
fn torn_tail_beyond_the_watermark_at_every_offset_keeps_every_synced_entry() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    let extra: Vec<Entry> = (N + 1..=N + 3).map(|i| entry(i, 9, 30)).collect();
    let tail = unsynced_tail(&extra);
    let record = tail.len() / 3;
    for cut in 0..=tail.len() {
        fs::write(&seg, [&pristine[..], &tail[..cut]].concat()).unwrap();
        let (mut log, rec) = open(tmp.path());
        let kept = (cut / record) as u64;
        let mut w = want(N);
        w.extend_from_slice(&extra[..kept as usize]);
        assert_eq!(rec.entries, w, "cut at {cut}");
        let end = ends[N as usize] + kept * record as u64;
        assert_eq!(fs::metadata(&seg).unwrap().len(), end, "torn bytes are cut off (cut {cut})");
        // The log goes on from there, and the result reopens cleanly.
        if cut % 7 == 0 {
            commit(&mut log, &appending(vec![entry(N + kept + 1, 10, 3)]));
            drop(log);
            let (_, rec) = open(tmp.path());
            w.push(entry(N + kept + 1, 10, 3));
            assert_eq!(rec.entries, w, "append after cut at {cut}");
        }
        fs::write(&seg, &pristine).unwrap();
    }
}

#[test]
fn bad_record_followed_by_good_ones_beyond_the_watermark_is_a_torn_tail() {
    // Power loss may write a later page before an earlier one: beyond the
    // watermark, everything from the first bad record on goes.
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    let extra: Vec<Entry> = (N + 1..=N + 3).map(|i| entry(i, 9, 30)).collect();
    let tail = unsynced_tail(&extra);
    let record = tail.len() / 3;
    for bad in 0..3 {
        for hole in [0..record, 3..5, record - 1..record] {
            let mut t = tail.clone();
            t[bad * record..][hole.clone()].iter_mut().for_each(|b| *b = 0);
            fs::write(&seg, [&pristine[..], &t[..]].concat()).unwrap();
            let (_, rec) = open(tmp.path());
            let mut w = want(N);
            w.extend_from_slice(&extra[..bad]);
            assert_eq!(rec.entries, w, "record {bad} damaged at {hole:?}");
            // Cut off, or only zeros left (no torn tail: zeros are what
            // preallocation leaves after the records).
            let end = (ends[N as usize] as usize) + bad * record;
            assert!(fs::read(&seg).unwrap()[end..].iter().all(|&b| b == 0), "record {bad} damaged at {hole:?}");
            fs::write(&seg, &pristine).unwrap();
        }
    }
}

#[test]
fn flipped_bit_in_any_synced_record_is_corruption_at_that_record() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    for k in 1..=N as usize {
        for bit in ends[k - 1] * 8..ends[k] * 8 {
            let mut bytes = pristine.clone();
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            fs::write(&seg, &bytes).unwrap();
            assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, Some(ends[k - 1]));
        }
    }
}

#[test]
fn flipped_bit_in_the_newest_watermark_falls_back_to_the_previous_one() {
    // The two slots alternate: the newest one damaged leaves the previous
    // sync's watermark, and the last sync's records (intact) are kept.
    let tmp = fast_tempdir();
    let (seg, _) = synced_log(tmp.path());
    let pristine = fs::read(&seg).unwrap();
    for bit in 24 * 8..HEADER * 8 {
        let mut bytes = pristine.clone();
        bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
        fs::write(&seg, &bytes).unwrap();
        let (_, rec) = open(tmp.path());
        assert_eq!(rec.entries, want(N), "bit {bit}");
        fs::write(&seg, &pristine).unwrap();
    }
    // Both slots damaged: corruption.
    let mut bytes = pristine.clone();
    bytes[30] ^= 1;
    bytes[50] ^= 1;
    fs::write(&seg, &bytes).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, Some(24));
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
        assert_corrupt(DiskLog::open(tmp.path(), ME), &seg, Some(0));
    }
}

#[test]
fn garbage_tail_is_cut_off_and_a_zeroed_one_is_harmless() {
    let tmp = fast_tempdir();
    let (seg, ends) = synced_log(tmp.path());
    let mut rng = Rng::new(5);
    for tail in [vec![0u8; 4096], vec![0u8; 3], rng.bytes(200), vec![0xFF; 50], vec![1, 0, 0, 0, 0, 0, 0, 0, 0]] {
        let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&tail).unwrap();
        drop(f);
        let (_, rec) = open(tmp.path());
        assert_eq!(rec.entries, want(N), "tail {tail:?}");
        // Garbage is cut off; zeros may stay.
        let bytes = fs::read(&seg).unwrap();
        assert!(bytes[ends[N as usize] as usize..].iter().all(|&b| b == 0), "tail {tail:?}");
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
    assert_corrupt(DiskLog::open_with(tmp.path(), ME, unpadded().segment_bytes(200)), &segs[2], Some(0));
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
    // Refused for its name (not read as the segment starting at 12, whose
    // header would be the complaint).
    let err = DiskLog::open(tmp.path(), ME).unwrap_err().to_string();
    assert!(err.contains("malformed segment file name"), "{err}");
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
fn half_created_last_segment_is_removed() {
    let tmp = fast_tempdir();
    let segs = multi_segment_log(tmp.path());
    let last = segs.last().unwrap();
    let expected = {
        let (_, rec) = open(tmp.path());
        rec.entries
    };
    // A segment being created when the crash came (first index = next
    // index) is still under its temporary name.
    let next = tmp.path().join(format!("log-{:020}.seg.tmp", 61));
    for len in 0..=HEADER as usize {
        fs::write(&next, &super::super::segment::header(61)[..len]).unwrap();
        let (_, rec) = open(tmp.path());
        assert_eq!(rec.entries, expected);
        assert!(!next.exists() && last.exists());
    }
    // Under its real name it was durable: a torn header there is damage.
    let named = tmp.path().join(format!("log-{:020}.seg", 61));
    fs::write(&named, &super::super::segment::header(61)[..30]).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &named, Some(30));
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
    w.snapshot = Some(snapshot(1, 1, b"snap").into());
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
    w.snapshot = Some(snapshot(1, 1, b"s").into());
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
    w.snapshot = Some(snapshot(2, 1, b"s").into());
    commit(&mut log, &w);
    drop(log);
    let path = tmp.path().join("snapshot");
    fs::remove_file(&path).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &path, Some(0));
}

quickcheck::quickcheck! {
    fn scanning_arbitrary_segment_bytes_never_panics(body: Vec<u8>, is_last: bool) -> bool {
        use super::super::segment;
        let _ = segment::scan(&body, 1, is_last, Path::new("seg"));
        let with_header = [&segment::header(1)[..], &body].concat();
        let _ = segment::scan(&with_header, 1, is_last, Path::new("seg"));
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

#[test]
fn repair_on_a_real_directory_keeps_the_good_prefix_and_marks_catching_up() {
    let tmp = fast_tempdir();
    let segs = multi_segment_log(tmp.path());
    {
        let (mut log, _) = open_small(tmp.path(), 200);
        let mut w = Write::default();
        w.hard_state = Some(hard_state(7, Some(2)));
        commit(&mut log, &w);
    }
    // Nothing to repair: nothing changes.
    let repaired = DiskLog::repair(tmp.path(), ME).unwrap();
    assert!(repaired.is_clean());
    assert_eq!(open_small(tmp.path(), 200).1.hard_state, hard_state(7, Some(2)));
    // Damage the second segment's second record.
    let mut bytes = fs::read(&segs[1]).unwrap();
    let first_len = u32::from_le_bytes(bytes[64..68].try_into().unwrap()) as usize;
    let second = 64 + 8 + first_len;
    bytes[second + 10] ^= 0x40;
    fs::write(&segs[1], &bytes).unwrap();
    let err = DiskLog::open(tmp.path(), ME).unwrap_err();
    assert!(err.to_string().contains("--repair"), "{err}");
    // Opening with the repair option repairs, then opens.
    let options = unpadded().segment_bytes(200).repair(true);
    let (mut log, rec) = DiskLog::open_with(tmp.path(), ME, options).unwrap();
    let first_of_second: u64 = segs[1].file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap();
    assert_eq!(rec.entries, (1..=first_of_second).map(|i| entry(i, 1, 20)).collect::<Vec<_>>());
    assert_eq!(rec.hard_state, HardState { catching_up: true, ..hard_state(7, Some(2)) });
    assert_eq!(segments(tmp.path()), segs[..2].to_vec(), "later segments removed");
    assert_eq!(fs::metadata(&segs[1]).unwrap().len(), second as u64, "cut at the damaged record");
    // The core clears the flag once caught up; the log stores that too.
    let mut w = appending(vec![entry(first_of_second + 1, 2, 5)]);
    w.hard_state = Some(hard_state(8, None));
    commit(&mut log, &w);
    drop(log);
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.hard_state, hard_state(8, None));
    assert_eq!(rec.entries.len() as u64, first_of_second + 1);
}

#[test]
fn damage_outside_the_log_is_not_repaired() {
    let tmp = fast_tempdir();
    let (mut log, _) = open(tmp.path());
    let mut w = appending(vec![entry(1, 1, 1)]);
    w.hard_state = Some(hard_state(3, Some(2)));
    commit(&mut log, &w);
    drop(log);
    let path = tmp.path().join("hardstate");
    let mut bytes = fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&path, &bytes).unwrap();
    match DiskLog::repair(tmp.path(), ME) {
        Err(e @ StorageError::Corrupt { .. }) => assert!(e.to_string().contains("cannot be repaired"), "{e}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // A damaged snapshot file: refused, and repair touches nothing (neither
    // the file, nor the hard state's `catching_up`, nor the segments).
    let tmp = fast_tempdir();
    let (mut log, _) = open(tmp.path());
    let mut w = appending((1..=5).map(|i| entry(i, 1, 10)).collect());
    w.hard_state = Some(hard_state(3, Some(2)));
    commit(&mut log, &w);
    let mut w = Write::default();
    w.snapshot = Some(Box::new(snapshot(3, 1, b"the state at 3")));
    commit(&mut log, &w);
    drop(log);
    let path = tmp.path().join("snapshot");
    let mut bytes = fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&path, &bytes).unwrap();
    let files = |dir: &Path| {
        let mut v: Vec<(PathBuf, Vec<u8>)> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| (p.clone(), fs::read(&p).unwrap())).collect();
        v.sort();
        v
    };
    let before = files(tmp.path());
    match DiskLog::repair(tmp.path(), ME) {
        Err(e @ StorageError::Corrupt { .. }) => assert!(e.to_string().contains("cannot be repaired"), "{e}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(files(tmp.path()) == before, "repair changed files beside a damaged snapshot");
}

#[test]
fn files_of_the_previous_format_are_refused_with_a_clear_error() {
    // Version 1: a 24-byte segment header without watermark slots, and a
    // hard state without `catching_up`.
    let tmp = fast_tempdir();
    drop(open(tmp.path()));
    let mut h = [0u8; 24];
    h[..8].copy_from_slice(b"RAFTLOG\0");
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[12..20].copy_from_slice(&1u64.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    let seg = tmp.path().join("log-00000000000000000001.seg");
    fs::write(&seg, h).unwrap();
    match DiskLog::open(tmp.path(), ME) {
        Err(e @ StorageError::UnsupportedVersion { found: 1, supported: 2, .. }) => {
            assert!(e.to_string().contains(&*seg.to_string_lossy()), "{e}")
        }
        other => panic!("expected UnsupportedVersion, got {:?}", other.map(|(_, r)| r)),
    }
    fs::remove_file(&seg).unwrap();
    // A version-1 hard state: term 3, vote 2.
    let payload = raft_core::codec::encode_value(&(Term(3), Some(NodeId(2)))).unwrap();
    let mut file = b"RAFTHARD".to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    file.extend_from_slice(&payload);
    fs::write(tmp.path().join("hardstate"), file).unwrap();
    assert!(matches!(DiskLog::open(tmp.path(), ME), Err(StorageError::UnsupportedVersion { found: 1, .. })));
}

#[test]
fn an_unreadable_hard_state_is_an_error_never_a_forgotten_vote() {
    let tmp = fast_tempdir();
    let (mut log, _) = open(tmp.path());
    let mut w = Write::default();
    w.hard_state = Some(hard_state(3, Some(2)));
    commit(&mut log, &w);
    drop(log);
    // The file cannot be read (a directory under its name): refusing to
    // start is right, starting with no vote in term 3 is not.
    let path = tmp.path().join("hardstate");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    match DiskLog::open_with(tmp.path(), ME, unpadded()) {
        Err(StorageError::Io { path: p, .. }) => assert_eq!(p, path),
        Err(e) => panic!("expected an I/O error on {}, got {e}", path.display()),
        Ok((_, rec)) => panic!("opened with hard state {:?}", rec.hard_state),
    }
}

#[test]
fn a_small_file_may_hold_4096_payload_bytes_and_one_announcing_more_is_refused_by_its_header() {
    for (len, offset) in [(4096, 20), (4097, 12)] {
        let tmp = fast_tempdir();
        drop(open(tmp.path()));
        // A well-formed `hardstate` file (magic, version 2, length, CRC) of
        // `len` zero bytes: within the bound it is read and refused for
        // its contents (offset 20), past it for its length field (offset 12).
        let payload = vec![0u8; len];
        let mut bytes = b"RAFTHARD".to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&(len as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let path = tmp.path().join("hardstate");
        fs::write(&path, &bytes).unwrap();
        assert_corrupt(DiskLog::open_with(tmp.path(), ME, unpadded()), &path, Some(offset));
    }
}

#[test]
fn a_leftover_temp_file_that_cannot_be_removed_stops_the_start() {
    let tmp = fast_tempdir();
    drop(open(tmp.path()));
    let leftover = tmp.path().join("hardstate.tmp");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("x"), b"x").unwrap();
    match DiskLog::open_with(tmp.path(), ME, unpadded()) {
        Err(StorageError::Io { op, path, .. }) => assert_eq!((op, path), ("remove leftover", leftover)),
        Err(e) => panic!("expected an I/O error, got {e}"),
        Ok(_) => panic!("opened beside a leftover it could not remove"),
    }
}
