//! What the disk log stores and returns when nothing goes wrong, and which
//! directories and writes it refuses.

use super::*;
use std::fs;

#[test]
fn fresh_directory_is_created_stamped_and_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let (log, rec) = open(&dir);
    assert_eq!(rec, Recovered::default());
    assert_eq!(log.last_index(), LogIndex(0));
    assert!(dir.join("meta").exists());
    assert!(log.is_synced());
    drop(log);
    let (_, rec) = open(&dir);
    assert_eq!(rec, Recovered::default());
}

#[test]
fn entries_hard_state_and_truncation_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    let mut w = appending((1..=5).map(|i| entry(i, 1, i as usize * 3)).collect());
    w.hard_state = Some(hard_state(1, Some(1)));
    commit(&mut log, &w);
    // A new leader overwrites the tail: hard state, truncate, append, one write.
    let mut w = appending(vec![entry(4, 2, 7), entry(5, 2, 0), entry(6, 2, 9)]);
    w.hard_state = Some(hard_state(2, Some(3)));
    w.truncate_from = Some(LogIndex(4));
    commit(&mut log, &w);
    assert_eq!(log.last_index(), LogIndex(6));
    drop(log);
    let (log, rec) = open(tmp.path());
    assert_eq!(rec.hard_state, hard_state(2, Some(3)));
    let want: Vec<Entry> =
        vec![entry(1, 1, 3), entry(2, 1, 6), entry(3, 1, 9), entry(4, 2, 7), entry(5, 2, 0), entry(6, 2, 9)];
    assert_eq!(rec.entries, want);
    assert_eq!(log.last_index(), LogIndex(6));
    let restored = rec.into_restored().with_last_applied(LogIndex(2));
    assert_eq!(restored.entries.len(), 6);
    assert_eq!(restored.last_applied, LogIndex(2));
}

#[test]
fn group_commit_one_sync_covers_every_earlier_write_and_unsynced_writes_are_not_returned() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    for i in 1..=10 {
        log.write(&appending(vec![entry(i, 1, 5)])).unwrap();
    }
    assert!(!log.is_synced());
    log.sync().unwrap();
    assert!(log.is_synced());
    // Written but never synced: a crash may lose these.
    let mut w = appending(vec![entry(11, 1, 5)]);
    w.hard_state = Some(hard_state(9, None));
    log.write(&w).unwrap();
    drop(log);
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.entries.len(), 10);
    assert_eq!(rec.hard_state, HardState::default());
}

#[test]
fn a_segment_may_fill_segment_bytes_exactly_and_rolls_only_past_it() {
    // The size of one record: a segment holding one entry.
    let probe = tempfile::tempdir().unwrap();
    let (mut log, _) = open(probe.path());
    commit(&mut log, &appending(vec![entry(1, 1, 20)]));
    let frame = fs::metadata(&segments(probe.path())[0]).unwrap().len() - 64;
    // Segments of exactly the header and three such records.
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(tmp.path(), 64 + 3 * frame);
    for i in 1..=4 {
        commit(&mut log, &appending(vec![entry(i, 1, 20)]));
    }
    assert_eq!(segment_firsts(tmp.path()), vec![1, 4]);
    assert_eq!(fs::metadata(&segments(tmp.path())[0]).unwrap().len(), 64 + 3 * frame);
    drop(log);
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.entries, (1..=4).map(|i| entry(i, 1, 20)).collect::<Vec<_>>());
}

#[test]
fn segments_roll_and_replay_across_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(tmp.path(), 300);
    let mut want = Vec::new();
    for batch in 0..20u64 {
        let w = appending((1..=5).map(|k| entry(batch * 5 + k, 1 + batch / 7, 20)).collect());
        want.extend(w.entries.clone());
        commit(&mut log, &w);
    }
    drop(log);
    let segs = segments(tmp.path());
    assert!(segs.len() > 5, "{} segments", segs.len());
    for s in &segs {
        assert!(fs::metadata(s).unwrap().len() <= 300 + 100, "{} is too large", s.display());
    }
    let (mut log, rec) = open_small(tmp.path(), 300);
    assert_eq!(rec.entries, want);
    // Keep appending to the reopened last segment.
    commit(&mut log, &appending(vec![entry(101, 3, 1)]));
    drop(log);
    let (_, rec) = open_small(tmp.path(), 300);
    assert_eq!(rec.entries.len(), 101);
}

#[test]
fn truncation_below_the_current_segment_keeps_names_increasing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(tmp.path(), 200);
    commit(&mut log, &appending((1..=40).map(|i| entry(i, 1, 30)).collect()));
    let before = segments(tmp.path()).len();
    // Truncate deep into an earlier segment, then grow again.
    let mut w = appending((3..=60).map(|i| entry(i, 2, 30)).collect());
    w.truncate_from = Some(LogIndex(3));
    commit(&mut log, &w);
    assert!(segments(tmp.path()).len() > before);
    drop(log);
    let (_, rec) = open_small(tmp.path(), 200);
    let want: Vec<Entry> = (1..=2).map(|i| entry(i, 1, 30)).chain((3..=60).map(|i| entry(i, 2, 30))).collect();
    assert_eq!(rec.entries, want);
}

#[test]
fn snapshot_that_the_log_holds_keeps_the_suffix() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    commit(&mut log, &appending((1..=10).map(|i| entry(i, 1 + i / 4, 4)).collect()));
    let mut w = Write::default();
    w.snapshot = Some(snapshot(6, 2, b"state at 6").into());
    commit(&mut log, &w);
    assert_eq!(log.snapshot_index(), LogIndex(6));
    // An older snapshot is ignored.
    let mut w = Write::default();
    w.snapshot = Some(snapshot(3, 1, b"old").into());
    commit(&mut log, &w);
    drop(log);
    let (log, rec) = open(tmp.path());
    assert_eq!(rec.snapshot, Some(snapshot(6, 2, b"state at 6")));
    assert_eq!(rec.entries, (7..=10).map(|i| entry(i, 1 + i / 4, 4)).collect::<Vec<_>>());
    assert_eq!((log.snapshot_index(), log.last_index()), (LogIndex(6), LogIndex(10)));
    let restored = rec.into_restored();
    assert_eq!(restored.snapshot.map(|s| s.meta.index), Some(LogIndex(6)));
}

#[test]
fn installed_snapshot_that_conflicts_drops_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(tmp.path(), 256);
    commit(&mut log, &appending((1..=8).map(|i| entry(i, 1, 4)).collect()));
    // As the core emits it: truncate at the snapshot index, then the snapshot.
    let mut w = Write::default();
    w.truncate_from = Some(LogIndex(20));
    w.snapshot = Some(snapshot(20, 3, &[7; 1000]).into());
    commit(&mut log, &w);
    assert_eq!(log.last_index(), LogIndex(20));
    commit(&mut log, &appending(vec![entry(21, 3, 2), entry(22, 4, 2)]));
    drop(log);
    let (mut log, rec) = open_small(tmp.path(), 256);
    assert_eq!(rec.snapshot, Some(snapshot(20, 3, &[7; 1000])));
    assert_eq!(rec.entries, vec![entry(21, 3, 2), entry(22, 4, 2)]);
    commit(&mut log, &appending(vec![entry(23, 4, 2), entry(24, 4, 2)]));
    // The log holds 22 with term 4, the snapshot says 9: entries after it
    // belong to a history the snapshot replaced, so they go too.
    let mut w = Write::default();
    w.snapshot = Some(snapshot(22, 9, b"x").into());
    commit(&mut log, &w);
    assert_eq!(log.last_index(), LogIndex(22));
    commit(&mut log, &appending(vec![entry(23, 9, 0)]));
    drop(log);
    let (_, rec) = open_small(tmp.path(), 256);
    assert_eq!(rec.snapshot.as_ref().map(|s| s.meta), Some(SnapshotMeta { index: LogIndex(22), term: Term(9) }));
    assert_eq!(rec.entries, vec![entry(23, 9, 0)]);
}

#[test]
fn snapshot_file_newer_than_the_log_is_adopted_and_recorded() {
    // A crash after the snapshot file was replaced but before its record was
    // appended: recovery applies it and appends the record itself.
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    commit(&mut log, &appending((1..=5).map(|i| entry(i, 1, 4)).collect()));
    drop(log);
    super::super::snapshot_file::write(
        &(std::sync::Arc::new(super::super::fs::RealFs) as _),
        tmp.path(),
        &snapshot(9, 2, b"installed"),
    )
    .unwrap();
    let (mut log, rec) = open(tmp.path());
    assert_eq!(rec.entries, vec![]);
    assert_eq!(log.last_index(), LogIndex(9));
    commit(&mut log, &appending(vec![entry(10, 2, 3)]));
    drop(log);
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.snapshot, Some(snapshot(9, 2, b"installed")));
    assert_eq!(rec.entries, vec![entry(10, 2, 3)]);
}

#[test]
fn invalid_writes_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    commit(&mut log, &appending(vec![entry(1, 2, 1), entry(2, 2, 1)]));
    let cases = [
        appending(vec![entry(4, 2, 1)]),                 // gap
        appending(vec![entry(2, 2, 1)]),                 // overlaps without truncation
        appending(vec![entry(3, 1, 1)]),                 // term goes down
        appending(vec![entry(3, 2, 1), entry(5, 2, 1)]), // gap inside the write
        appending(vec![entry(3, 3, 1), entry(4, 2, 1)]), // term goes down inside the write
    ];
    for w in &cases {
        match log.write(w) {
            Err(e @ StorageError::InvalidWrite { .. }) => assert!(e.to_string().contains("refused a write"), "{e}"),
            other => panic!("{w:?} gave {other:?}"),
        }
        assert_eq!(log.last_index(), LogIndex(2));
        assert!(log.is_synced());
    }
    let mut w = Write::default();
    w.snapshot = Some(snapshot(u64::MAX, 1, b"").into()); // index out of range
    assert!(matches!(log.write(&w), Err(StorageError::InvalidWrite { .. })));
    let mut w = appending(vec![entry(1, 3, 1)]);
    w.truncate_from = Some(LogIndex(1));
    commit(&mut log, &w);
    drop(log);
    let (_, rec) = open(tmp.path());
    assert_eq!(rec.entries, vec![entry(1, 3, 1)]);
}

#[test]
fn directory_of_another_node_or_cluster_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    let other_node = NodeMeta::new(NodeId(2), ME.cluster_id);
    match DiskLog::open(tmp.path(), other_node) {
        Err(e @ StorageError::WrongNode { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("node 1, not node 2") && msg.contains(&*tmp.path().to_string_lossy()), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let other_cluster = NodeMeta::new(ME.node_id, 7);
    match DiskLog::open(tmp.path(), other_cluster) {
        Err(e @ StorageError::WrongCluster { expected: 7, found: 42, .. }) => {
            assert!(e.to_string().contains("cluster 42, not cluster 7"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    drop(open(tmp.path()));
}

#[test]
fn data_without_a_stamp_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    commit(&mut log, &appending(vec![entry(1, 1, 1)]));
    drop(log);
    fs::remove_file(tmp.path().join("meta")).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &tmp.path().join("meta"), Some(0));
}

#[test]
fn a_vote_alone_without_a_stamp_is_refused() {
    // A hard state is raft data even with no segment and no snapshot beside it.
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    let mut vote = Write::default();
    vote.hard_state = Some(hard_state(3, Some(2)));
    commit(&mut log, &vote);
    drop(log);
    for seg in segments(tmp.path()) {
        fs::remove_file(seg).unwrap();
    }
    assert!(super::super::hard_state::path(tmp.path()).exists());
    fs::remove_file(tmp.path().join("meta")).unwrap();
    assert_corrupt(DiskLog::open(tmp.path(), ME), &tmp.path().join("meta"), Some(0));
}

#[test]
fn a_directory_is_opened_by_one_log_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(tmp.path());
    assert!(matches!(DiskLog::open(tmp.path(), ME), Err(StorageError::Locked { .. })));
    drop(log);
    drop(open(tmp.path()));
}

#[test]
fn oversized_entry_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = open(tmp.path());
    let big = Entry {
        term: Term(1),
        index: LogIndex(1),
        payload: Payload::Command(Bytes::from(vec![0u8; raft_core::codec::MAX_DECODE_BYTES + 1])),
    };
    assert!(matches!(log.write(&appending(vec![big])), Err(StorageError::InvalidWrite { .. })));
    assert_eq!(log.last_index(), LogIndex(0));
}

#[test]
fn a_record_payload_may_be_exactly_the_maximum_and_no_longer() {
    use super::super::record::{self, BadFrame, Change, FRAME_HEADER, MAX_RECORD_BYTES};
    let entry =
        |n: usize| Entry { term: Term(1), index: LogIndex(1), payload: Payload::Command(Bytes::from(vec![7u8; n])) };
    let framed = |n: usize| record::frame(Change::Append(&entry(n))).map(|f| f.len() - FRAME_HEADER);
    // The codec's overhead around a large command is constant.
    let overhead = framed(1 << 20).unwrap() - (1 << 20);
    let fits = MAX_RECORD_BYTES - overhead;
    assert_eq!(framed(fits), Some(MAX_RECORD_BYTES));
    assert_eq!(framed(fits + 1), None);
    let largest = record::frame(Change::Append(&entry(fits))).unwrap();
    assert_eq!(record::frame_at(&largest, 0).map(<[u8]>::len), Ok(MAX_RECORD_BYTES));
    // Reading: a length above the maximum is refused as too long even when
    // the file holds that many bytes (and before any checksum is computed).
    let len = MAX_RECORD_BYTES + 1;
    let mut bytes = vec![0u8; FRAME_HEADER + len];
    bytes[..4].copy_from_slice(&(len as u32).to_le_bytes());
    assert_eq!(record::frame_at(&bytes, 0), Err(BadFrame::TooLong { len: len as u64 }));
}
