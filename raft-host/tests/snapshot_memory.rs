//! A snapshot hundreds of times the chunk size goes from a key-value store to
//! the leader's snapshot file, from that file chunk by chunk into a
//! follower's snapshot file, and from there into the follower's store, while
//! a counting allocator measures what each step holds beyond the stores
//! themselves. Every step stays within a few chunks.
//!
//! This covers the host side only: raft-core still holds a snapshot it sends
//! or receives as one buffer, so the chunks here are moved by the test in
//! the way the leader's `InstallSnapshot` chunks would be.
//!
//! Size: `RAFT_SNAPSHOT_TEST_MIB` (default 64 MiB of state, 1024 chunks of
//! 64 KiB). Run with `--nocapture` to see the numbers.

use peak_alloc::PeakAlloc;
use raft_core::{LogIndex, Membership, NodeId, SnapshotMeta, Term};
use raft_host::storage::fs::RealFs;
use raft_host::storage::{SNAPSHOT_CHUNK, SnapshotFile, SnapshotFileWriter};
use raft_host::{KvCommand, KvOp, KvStore, StateMachine};
use std::io::BufReader;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Runs `step` and returns its result with the most bytes it held at once
/// beyond what was live before it and what it left live after it.
fn measure<T>(step: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let out = step();
    let after = ALLOC.current_usage();
    let peak = ALLOC.peak_usage();
    (out, peak - before.max(after))
}

/// A store whose snapshot weighs at least `bytes` (each pair's frame holds
/// 4 + 2 + 11 + 2 + 1000 bytes).
fn store_of(bytes: usize) -> KvStore {
    let mut kv = KvStore::new();
    let value = "v".repeat(1000);
    for index in 1..=(bytes / 1019 + 1) as u64 {
        let op = KvOp::Put { key: format!("key{index:08}"), value: value.clone() };
        kv.apply_command(LogIndex(index), &KvCommand { client: 1, seq: index, op }).unwrap();
    }
    kv
}

#[test]
fn a_large_snapshot_streams_from_store_to_store_in_bounded_memory() {
    let mib: usize = std::env::var("RAFT_SNAPSHOT_TEST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let chunk = SNAPSHOT_CHUNK;
    let bound = 4 * chunk;
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let fs = RealFs;
    let membership = Membership::with_voters((1..=3).map(NodeId));
    let meta = SnapshotMeta { index: LogIndex(1_000_000), term: Term(7) };

    let leader = store_of(mib << 20);

    // The old way, for comparison (and to show the counter sees a whole snapshot).
    let (whole, whole_peak) = measure(|| leader.snapshot().len());
    assert!(whole >= 100 * chunk, "the snapshot ({whole} bytes) must be at least 100 chunks");
    assert!(whole_peak >= whole, "the allocator must see a snapshot taken whole ({whole_peak} < {whole})");

    // 1. Take: the state machine writes straight into the leader's snapshot file.
    let (taken, take_peak) = measure(|| {
        let mut w = SnapshotFileWriter::create(&fs, leader_dir.path(), meta, &membership).unwrap();
        StateMachine::write_snapshot(&leader, &mut w).unwrap();
        let len = w.data_len();
        w.finish().unwrap();
        len
    });
    assert_eq!(taken, whole as u64);

    // 2. Send: the leader reads chunks at increasing offsets; the follower
    //    appends each to its own file and checks the whole snapshot's CRC.
    let ((sent, chunks), send_peak) = measure(|| {
        let mut source = SnapshotFile::open(&fs, leader_dir.path()).unwrap().expect("the leader stored a snapshot");
        assert_eq!((source.meta(), source.data_len()), (meta, taken));
        let mut sink =
            SnapshotFileWriter::create(&fs, follower_dir.path(), source.meta(), source.membership()).unwrap();
        let mut received = crc32fast::Hasher::new();
        let mut buf = vec![0u8; chunk];
        let (mut offset, mut chunks) = (0u64, 0u64);
        loop {
            let n = source.read_data_at(offset, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            received.update(&buf[..n]);
            sink.write_data(&buf[..n]).unwrap();
            offset += n as u64;
            chunks += 1;
        }
        assert_eq!(received.finalize(), source.data_checksum(), "the follower got the leader's bytes");
        sink.finish().unwrap();
        (offset, chunks)
    });
    assert_eq!(sent, taken);
    assert!(chunks >= 100, "{chunks} chunks");

    // 3. Install: the follower's store restores from its file as a stream.
    let mut follower = KvStore::new();
    let (restored_meta, install_peak) = measure(|| {
        let mut file = SnapshotFile::open(&fs, follower_dir.path()).unwrap().expect("the follower stored it");
        let meta = file.meta();
        let mut reader = BufReader::with_capacity(chunk, file.data_reader().unwrap());
        StateMachine::restore_from(&mut follower, &mut reader).unwrap();
        meta
    });
    assert_eq!(restored_meta, meta);
    assert_eq!(follower, leader, "the follower holds the leader's state");

    println!(
        "snapshot of {whole} bytes, chunk {chunk} bytes ({chunks} chunks): extra bytes held at peak: \
         whole in memory {whole_peak}, take {take_peak}, send {send_peak}, install {install_peak} (bound {bound})"
    );
    for (step, peak) in [("take", take_peak), ("send", send_peak), ("install", install_peak)] {
        assert!(peak <= bound, "{step} held {peak} bytes at once, more than {bound}");
    }
}
