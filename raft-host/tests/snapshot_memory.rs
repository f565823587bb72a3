//! Snapshots hundreds of times the chunk size, while a counting allocator
//! measures what each step holds beyond the key-value stores themselves:
//!
//! * the host's pieces alone: a store streams into the leader's snapshot
//!   file, the file goes chunk by chunk into a follower's file, and the
//!   follower's store restores from it;
//! * the whole path: three [`Driver`]s with stored snapshots on disk logs, one
//!   follower cut off while the others take snapshots, then healed: the
//!   leader's core asks for each chunk, the follower's core hands each one to
//!   its host, which installs and restores from disk.
//!
//! Every step stays within a few chunks. Size: `RAFT_SNAPSHOT_TEST_MIB`
//! (default 16 MiB of state: 256 chunks of 64 KiB). Run with `--nocapture`
//! to see the numbers.

use peak_alloc::PeakAlloc;
use raft_core::{
    APPEND_OVERHEAD_BYTES, Body, Config, Instant, LogIndex, Membership, Message, NodeId, PersistToken, Role,
    SnapshotMeta, Term,
};
use raft_host::kv::encode_command;
use raft_host::storage::fs::{Fs, RealFs};
use raft_host::storage::{SNAPSHOT_CHUNK, SnapshotFile, SnapshotFileWriter};
use raft_host::{DiskLog, DiskLogOptions, DiskThread, Driver, KvCommand, KvOp, KvStore, NodeMeta, StateMachine};
use std::collections::VecDeque;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration as StdDuration;

/// The tests measure the whole process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn size_mib() -> usize {
    std::env::var("RAFT_SNAPSHOT_TEST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(16)
}

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
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mib = size_mib();
    let chunk = SNAPSHOT_CHUNK;
    let bound = 4 * chunk;
    let leader_dir = fast_tempdir();
    let follower_dir = fast_tempdir();
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let membership = Membership::with_voters((1..=3).map(NodeId));
    let meta = SnapshotMeta { index: LogIndex(1_000_000), term: Term(7) };

    let leader = store_of(mib << 20);

    // The old way, for comparison (and to show the counter sees a whole snapshot).
    let (whole, whole_peak) = measure(|| leader.snapshot().len());
    assert!(whole >= 100 * chunk, "the snapshot ({whole} bytes) must be at least 100 chunks");
    assert!(whole_peak >= whole, "the allocator must see a snapshot taken whole ({whole_peak} < {whole})");

    // 1. Take: the state machine writes straight into the leader's snapshot file.
    let (taken, take_peak) = measure(|| {
        let mut w = SnapshotFileWriter::create(fs.clone(), leader_dir.path(), meta, &membership).unwrap();
        StateMachine::write_snapshot(&leader, &mut w).unwrap();
        let len = w.data_len();
        w.finish().unwrap();
        len
    });
    assert_eq!(taken, whole as u64);

    // 2. Send: the leader reads chunks at increasing offsets; the follower
    //    appends each to its own file and checks the whole snapshot's CRC.
    let ((sent, chunks), send_peak) = measure(|| {
        let mut source = SnapshotFile::open(&*fs, leader_dir.path()).unwrap().expect("the leader stored a snapshot");
        assert_eq!((source.meta(), source.data_len()), (meta, taken));
        let mut sink =
            SnapshotFileWriter::create(fs.clone(), follower_dir.path(), source.meta(), source.membership()).unwrap();
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
        let mut file = SnapshotFile::open(&*fs, follower_dir.path()).unwrap().expect("the follower stored it");
        let meta = file.meta();
        let mut reader = BufReader::with_capacity(chunk, file.data_reader().unwrap());
        StateMachine::restore_from(&mut follower, &mut reader).unwrap();
        meta
    });
    assert_eq!(restored_meta, meta);
    assert_eq!(follower, leader, "the follower holds the leader's state");

    println!(
        "host pieces: snapshot of {whole} bytes, chunk {chunk} bytes ({chunks} chunks): extra bytes held at \
         peak: whole in memory {whole_peak}, take {take_peak}, send {send_peak}, install {install_peak} (bound {bound})"
    );
    for (step, peak) in [("take", take_peak), ("send", send_peak), ("install", install_peak)] {
        assert!(peak <= bound, "{step} held {peak} bytes at once, more than {bound}");
    }
}

struct Member {
    driver: Driver<KvStore>,
    disk: DiskThread,
    durable: mpsc::Receiver<PersistToken>,
    /// The newest write submitted and not yet reported durable.
    unsynced: Option<PersistToken>,
}

/// A directory in memory if the machine has one (the test writes hundreds
/// of megabytes with fsync), else a temporary directory on disk.
fn fast_tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap()
}

fn config(id: u64) -> Config {
    let mut c = Config::new(NodeId(id), (1..=3).map(NodeId));
    // InstallSnapshot chunks of exactly SNAPSHOT_CHUNK bytes.
    c.max_message_bytes = SNAPSHOT_CHUNK + APPEND_OVERHEAD_BYTES;
    c.max_entry_bytes = SNAPSHOT_CHUNK / 2;
    c.snapshot_after_log_bytes = None;
    c.snapshot_after_entries = Some(BATCH);
    c
}

/// Entries per batch; the policy takes a snapshot after each batch.
const BATCH: u64 = 128;
const VALUE_BYTES: usize = 30_000;

/// A member whose snapshots stay on disk (`stored`), or are held by the core.
fn start(dir: &Path, id: u64, now: Instant, stored: bool) -> Member {
    let dir = dir.join(id.to_string());
    let options = DiskLogOptions::default().stored_snapshots(stored);
    let (log, recovered) = DiskLog::open_with(&dir, NodeMeta::new(NodeId(id), 5), options).unwrap();
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let restored = recovered.into_restored();
    let driver = if stored {
        Driver::with_stored_snapshots(config(id), restored, KvStore::new(), now, fs, dir).unwrap()
    } else {
        Driver::new(config(id), restored, KvStore::new(), now).unwrap()
    };
    let (tx, durable) = mpsc::channel();
    let disk = DiskThread::spawn(log, move |r| {
        let _ = tx.send(r.expect("disk write failed"));
    })
    .unwrap();
    Member { driver, disk, durable, unsynced: None }
}

struct Cluster {
    members: Vec<Member>,
    inbox: VecDeque<(NodeId, NodeId, Message)>,
    now: Instant,
    /// Messages to and from this member are lost.
    cut: Option<NodeId>,
    /// InstallSnapshot messages delivered, and their largest chunk.
    chunks: (u64, usize),
}

impl Cluster {
    fn run(&mut self, max_steps: usize, until: impl Fn(&Cluster) -> bool) {
        for _ in 0..max_steps {
            if until(self) {
                return;
            }
            let mut busy = false;
            for m in &mut self.members {
                let actions = m.driver.drain(self.now).unwrap();
                for w in actions.writes {
                    m.unsynced = Some(w.token);
                    assert!(m.disk.submit(w));
                    busy = true;
                }
                for s in actions.sends {
                    self.inbox.push_back((m.driver.node().id(), s.to, s.message));
                }
            }
            while let Some((from, to, msg)) = self.inbox.pop_front() {
                if self.cut == Some(from) || self.cut == Some(to) {
                    continue;
                }
                if let Body::InstallSnapshot(c) = &msg.body {
                    self.chunks = (self.chunks.0 + 1, self.chunks.1.max(c.data.len()));
                }
                busy = true;
                self.members[to.0 as usize - 1].driver.handle_message(self.now, from, msg);
            }
            // Simulated time stands still while a disk write or a snapshot
            // taken in the background is in progress, so that slow fsyncs
            // never look like silence to the timers.
            let writing = self.members.iter().any(|m| m.unsynced.is_some());
            let taking = self.members.iter().any(|m| m.driver.is_taking_snapshot());
            for m in &mut self.members {
                let wait = StdDuration::from_millis(if m.unsynced.is_some() { 20 } else { 0 });
                if let Ok(t) = m.durable.recv_timeout(wait) {
                    let mut newest = t;
                    while let Ok(t) = m.durable.try_recv() {
                        newest = t;
                    }
                    m.driver.handle_persisted(self.now, newest);
                    m.unsynced = m.unsynced.filter(|&u| u > newest);
                    busy = true;
                }
            }
            if !busy && !writing && taking {
                std::thread::sleep(StdDuration::from_millis(1));
            } else if !busy && !writing {
                self.now = self.members.iter().filter_map(|m| m.driver.poll_timeout()).min().unwrap();
                for m in &mut self.members {
                    m.driver.handle_timeout(self.now);
                }
            }
        }
        panic!(
            "cluster did not reach the condition: applied {:?}, roles {:?}",
            (0..3).map(|i| self.applied(i)).collect::<Vec<_>>(),
            self.members.iter().map(|m| (m.driver.node().role(), m.driver.node().last_log_index())).collect::<Vec<_>>()
        );
    }

    fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| m.driver.node().role() == Role::Leader)
    }

    fn applied(&self, i: usize) -> LogIndex {
        self.members[i].driver.state_machine().last_applied()
    }
}

/// What one transfer to a lagging follower measured.
#[derive(Debug)]
struct Transfer {
    snapshot_len: u64,
    chunks: u64,
    largest_chunk: usize,
    /// The most bytes held at once during the transfer, beyond the memory
    /// of the store the follower ends with.
    held_peak: i64,
    /// What stayed held after it, beyond that store.
    held_after: i64,
    /// The store's own memory.
    store_bytes: usize,
    taken: raft_host::SnapshotsTaken,
}

/// Three drivers; one is cut off while the others apply `mib` MiB of puts
/// (taking snapshots), then healed and measured until it caught up.
fn transfer(mib: usize, stored: bool) -> Transfer {
    let dir = fast_tempdir();
    let now = Instant::ZERO;
    let members = (1..=3).map(|i| start(dir.path(), i, now, stored)).collect();
    let mut c = Cluster { members, inbox: VecDeque::new(), now, cut: None, chunks: (0, 0) };
    c.run(100_000, |c| c.leader().is_some());
    let l = c.leader().unwrap();
    let lag = (l + 1) % 3;
    let other = 3 - l - lag;
    c.cut = Some(NodeId(lag as u64 + 1));

    // Batches of BATCH entries, each applied (and then snapshotted) before the next.
    let value = "v".repeat(VALUE_BYTES);
    let batches = ((mib << 20) / (BATCH as usize * VALUE_BYTES) + 1) as u64;
    for b in 0..batches {
        for k in 0..BATCH {
            let seq = b * BATCH + k + 1;
            let op = KvOp::Put { key: format!("key{seq:08}"), value: value.clone() };
            let now = c.now;
            c.members[l].driver.propose(now, encode_command(&KvCommand { client: 7, seq, op }), seq).unwrap();
        }
        let last = c.members[l].driver.node().last_log_index();
        // Applied, and any snapshot of it (written in the background when
        // snapshots are stored: the policy asks in the drain that applies
        // the batch) handed to the core, so that no take is still running
        // when the next batch asks for one.
        let idle = |c: &Cluster, i: usize| !c.members[i].driver.is_taking_snapshot();
        c.run(20_000, |c| c.applied(l) == last && c.applied(other) == last && idle(c, l) && idle(c, other));
    }
    assert_eq!(c.leader(), Some(l), "the leader kept its place");
    let leader = c.members[l].driver.node();
    assert_eq!(leader.snapshot_index(), leader.last_log_index(), "the last batch ended with a snapshot");
    assert_eq!(leader.snapshot_digest().is_some(), stored);
    let snapshot_len = leader.snapshot_digest().map_or_else(|| leader.snapshot().unwrap().data.len() as u64, |d| d.len);
    assert_eq!(c.applied(lag), LogIndex(0));

    // The memory of the store the follower will end with, built the same way.
    let bytes = c.members[l].driver.state_machine().snapshot();
    let (reference, store_bytes) = measure_retained(|| KvStore::restore(&bytes).unwrap());
    drop(bytes);

    // Heal: the lagging follower gets the snapshot and catches up.
    let before = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    c.cut = None;
    let target = c.applied(l);
    c.run(1_000_000, |c| c.applied(lag) == target);
    let (peak, after) = (ALLOC.peak_usage(), ALLOC.current_usage());

    assert_eq!(c.members[lag].driver.state_machine(), &reference);
    assert_eq!(c.members[lag].driver.state_machine(), c.members[l].driver.state_machine());
    assert_eq!(c.members[lag].driver.node().snapshot_digest(), c.members[l].driver.node().snapshot_digest());
    if stored {
        // Restarted from its disk, the follower restores from the snapshot
        // file (its data never read into memory by recovery) and catches up.
        c.members.remove(lag).disk.shutdown();
        c.members.insert(lag, start(dir.path(), lag as u64 + 1, c.now, true));
        let node = c.members[lag].driver.node();
        assert_eq!(node.snapshot_digest(), c.members[l].driver.node().snapshot_digest());
        assert!(node.snapshot().is_some_and(|s| s.data.is_empty()));
        c.run(1_000_000, |c| c.applied(lag) == target);
        assert_eq!(c.members[lag].driver.state_machine(), &reference);
    }
    let taken = c.members[l].driver.snapshots_taken();
    for m in c.members.drain(..) {
        m.disk.shutdown();
    }
    let held = |at: usize| at as i64 - before as i64 - store_bytes as i64;
    let (chunks, largest_chunk) = c.chunks;
    Transfer { snapshot_len, chunks, largest_chunk, held_peak: held(peak), held_after: held(after), store_bytes, taken }
}

/// Runs `make` and returns its result with the bytes it left allocated.
fn measure_retained<T>(make: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOC.current_usage();
    let out = make();
    (out, ALLOC.current_usage() - before)
}

#[test]
fn a_lagging_follower_installs_a_large_snapshot_through_the_drivers_in_bounded_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mib = size_mib();
    let bound = 4 * SNAPSHOT_CHUNK as i64;
    let t = transfer(mib, true);
    println!(
        "drivers, snapshots on disk: snapshot of {} bytes sent in {} chunks of at most {} bytes to a lagging \
         follower; beyond its store ({} bytes), the transfer held {} bytes at peak and {} after (bound {bound}); \
         the leader took {} snapshots ({} bytes) on the way",
        t.snapshot_len,
        t.chunks,
        t.largest_chunk,
        t.store_bytes,
        t.held_peak,
        t.held_after,
        t.taken.count,
        t.taken.bytes
    );
    assert!(t.snapshot_len >= 100 * SNAPSHOT_CHUNK as u64, "snapshot of {} bytes", t.snapshot_len);
    assert!(t.chunks >= 100, "{} chunks", t.chunks);
    assert_eq!(t.largest_chunk, SNAPSHOT_CHUNK);
    assert!(t.held_peak <= bound, "the transfer held {} bytes at once, more than {bound}", t.held_peak);
    assert!(t.held_after <= bound, "the transfer left {} bytes held, more than {bound}", t.held_after);

    // The control: snapshots held by the core. The same measure sees them.
    let m = transfer(mib, false);
    println!(
        "drivers, snapshots in the core: snapshot of {} bytes; beyond the store, {} bytes held at peak and {} after",
        m.snapshot_len, m.held_peak, m.held_after
    );
    assert!(m.held_after >= m.snapshot_len as i64, "{m:?}");
}
