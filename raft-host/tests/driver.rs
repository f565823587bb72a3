//! Three drivers with real disk threads on temporary directories, wired
//! together in one thread: proposals complete with the state machine's
//! output, and a full restart recovers every acknowledged write from disk.

use raft_core::codec::DecodeError;
use raft_core::{Config, Instant, LogIndex, NodeId, PersistToken, Role};
use raft_host::driver::Outcome;
use raft_host::storage::fs::{Fs, RealFs};
use raft_host::{
    DiskLog, DiskLogOptions, DiskThread, Driver, KvCommand, KvOp, KvOutput, KvStore, NodeMeta, SnapshotWriter,
    StateMachine, kv::encode_command,
};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration as StdDuration;

struct Member {
    driver: Driver<KvStore>,
    disk: DiskThread,
    durable: mpsc::Receiver<PersistToken>,
}

fn start(dir: &Path, id: u64, now: Instant) -> Member {
    let meta = NodeMeta::new(NodeId(id), 99);
    let (log, recovered) = DiskLog::open(dir.join(id.to_string()), meta).unwrap();
    let config = Config::new(NodeId(id), (1..=3).map(NodeId));
    let driver = Driver::new(config, recovered.into_restored(), KvStore::new(), now).unwrap();
    let (tx, durable) = mpsc::channel();
    let disk = DiskThread::spawn(log, move |r| {
        let _ = tx.send(r.expect("disk write failed"));
    })
    .unwrap();
    Member { driver, disk, durable }
}

struct Cluster {
    members: Vec<Member>,
    inbox: VecDeque<(NodeId, NodeId, raft_core::Message)>,
    now: Instant,
    done: Vec<(u64, Outcome<Result<KvOutput, raft_host::KvError>>)>,
}

impl Cluster {
    /// Runs until nothing moves; time jumps to the next deadline when idle.
    fn run(&mut self, max_steps: usize, until: impl Fn(&Cluster) -> bool) {
        for _ in 0..max_steps {
            if until(self) {
                return;
            }
            let mut busy = false;
            for m in &mut self.members {
                let actions = m.driver.drain(self.now).unwrap();
                for w in actions.writes {
                    assert!(m.disk.submit(w));
                    busy = true;
                }
                for s in actions.sends {
                    self.inbox.push_back((m.driver.node().id(), s.to, s.message));
                }
                self.done.extend(actions.completed.into_iter().map(|c| (c.ticket, c.outcome)));
            }
            while let Some((from, to, msg)) = self.inbox.pop_front() {
                busy = true;
                self.members[to.0 as usize - 1].driver.handle_message(self.now, from, msg);
            }
            for m in &mut self.members {
                if let Ok(t) = m.durable.recv_timeout(StdDuration::from_millis(if busy { 1 } else { 0 })) {
                    m.driver.handle_persisted(self.now, t);
                    while let Ok(t) = m.durable.try_recv() {
                        m.driver.handle_persisted(self.now, t);
                    }
                    busy = true;
                }
            }
            if !busy {
                self.now = self.members.iter().filter_map(|m| m.driver.poll_timeout()).min().unwrap();
                for m in &mut self.members {
                    m.driver.handle_timeout(self.now);
                }
            }
        }
        panic!("cluster did not reach the condition");
    }

    fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| m.driver.node().role() == Role::Leader)
    }
}

fn put(seq: u64, key: &str, value: &str) -> Vec<u8> {
    encode_command(&KvCommand { client: 7, seq, op: KvOp::Put { key: key.into(), value: value.into() } })
}

#[test]
fn proposals_complete_and_survive_a_full_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::ZERO;
    let mut c = Cluster {
        members: (1..=3).map(|i| start(dir.path(), i, now)).collect(),
        inbox: VecDeque::new(),
        now,
        done: vec![],
    };
    c.run(10_000, |c| c.leader().is_some());
    let l = c.leader().unwrap();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        let now = c.now;
        c.members[l].driver.propose(now, put(i as u64 + 1, key, "v"), i as u64).unwrap();
    }
    c.run(10_000, |c| c.done.len() == 3);
    for (ticket, outcome) in &c.done {
        assert_eq!(*outcome, Outcome::Applied(Some(Ok(KvOutput::Put))), "ticket {ticket}");
    }
    // Every member applies the writes.
    c.run(10_000, |c| c.members.iter().all(|m| m.driver.state_machine().get_local("c") == Some("v")));

    // Stop everything (flushing the disk threads) and start again from disk.
    let now = c.now;
    for m in c.members.drain(..) {
        m.disk.shutdown();
    }
    let mut c = Cluster {
        members: (1..=3).map(|i| start(dir.path(), i, now)).collect(),
        inbox: VecDeque::new(),
        now,
        done: vec![],
    };
    c.run(10_000, |c| {
        c.members.iter().all(|m| ["a", "b", "c"].iter().all(|k| m.driver.state_machine().get_local(k) == Some("v")))
    });
    // A retried command (same client and seq) is not applied twice.
    c.run(10_000, |c| c.leader().is_some());
    let l = c.leader().unwrap();
    let now = c.now;
    c.members[l].driver.propose(now, put(3, "c", "changed"), 9).unwrap();
    c.run(10_000, |c| !c.done.is_empty());
    assert_eq!(c.done[0], (9, Outcome::Applied(Some(Ok(KvOutput::Put)))));
    assert_eq!(c.members[l].driver.state_machine().get_local("c"), Some("v"), "retry re-executed");
}

/// Counts its commands; writing a snapshot fails while `broken` is set.
struct Flaky {
    total: u64,
    last: LogIndex,
    broken: Arc<AtomicBool>,
}

impl StateMachine for Flaky {
    type Command = u64;
    type Output = u64;

    fn apply(&mut self, index: LogIndex, command: u64) -> u64 {
        self.total += command;
        self.last = index;
        self.total
    }

    fn skip(&mut self, index: LogIndex) {
        self.last = index;
    }

    fn snapshot(&self) -> Vec<u8> {
        [self.total, self.last.0].iter().flat_map(|n| n.to_le_bytes()).collect()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError> {
        let word = |at: usize| snapshot.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
        let (Some(total), Some(last)) = (word(0), word(8)) else {
            return Err(DecodeError::Malformed("not a Flaky".into()));
        };
        (self.total, self.last) = (total, LogIndex(last));
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("no space left on device"));
        }
        out.write_all(&self.snapshot())
    }

    fn last_applied(&self) -> LogIndex {
        self.last
    }
}

/// One voter with stored snapshots on `dir`, and its disk thread.
struct Solo<S: StateMachine> {
    driver: Driver<S>,
    disk: DiskThread,
    durable: mpsc::Receiver<PersistToken>,
    now: Instant,
}

impl<S: StateMachine> Solo<S> {
    /// Starts from what `dir` holds, snapshotting every 5 entries.
    fn start(dir: &Path, sm: S) -> Solo<S> {
        let options = DiskLogOptions::default().stored_snapshots(true);
        let (log, recovered) = DiskLog::open_with(dir, NodeMeta::new(NodeId(1), 99), options).unwrap();
        let mut config = Config::new(NodeId(1), [NodeId(1)]);
        config.snapshot_after_entries = Some(5);
        let fs: Arc<dyn Fs> = Arc::new(RealFs);
        let now = Instant::from_micros(1_000_000);
        let driver = Driver::with_stored_snapshots(config, recovered.into_restored(), sm, now, fs, dir).unwrap();
        let (tx, durable) = mpsc::channel();
        let disk = DiskThread::spawn(log, move |r| {
            let _ = tx.send(r.expect("disk write failed"));
        })
        .unwrap();
        Solo { driver, disk, durable, now }
    }

    /// Drains, writes, and waits for the disk.
    fn step(&mut self) {
        let actions = self.driver.drain(self.now).unwrap();
        // The disk thread reports the last write of each sync only.
        let last = actions.writes.last().map(|w| w.token);
        for w in actions.writes {
            assert!(self.disk.submit(w));
        }
        while let Some(last) = last {
            let t = self.durable.recv_timeout(StdDuration::from_secs(10)).unwrap();
            self.driver.handle_persisted(self.now, t);
            if t == last {
                break;
            }
        }
    }

    /// Elects itself, then commits and applies `n` commands.
    fn lead_and_apply(&mut self, n: u64) {
        self.now = self.driver.poll_timeout().unwrap();
        self.driver.handle_timeout(self.now);
        for _ in 0..5 {
            self.step();
        }
        assert_eq!(self.driver.node().role(), Role::Leader, "a single voter elects itself");
        for i in 0..n {
            self.driver.propose(self.now, raft_core::codec::encode_value(&1u64).unwrap(), i).unwrap();
            self.step();
        }
        self.step();
    }
}

/// A stored snapshot that cannot be written (a full disk) is tried again
/// later, with a doubling wait, until it is taken: the core asks only once
/// per trigger of its policy, so a single failure used to stop snapshots
/// (and the log's compaction) for good.
#[test]
fn a_stored_snapshot_that_failed_is_taken_on_a_later_try() {
    let dir = tempfile::tempdir().unwrap();
    let broken = Arc::new(AtomicBool::new(true));
    let mut solo = Solo::start(dir.path(), Flaky { total: 0, last: LogIndex(0), broken: broken.clone() });
    solo.lead_and_apply(10);
    let taken = solo.driver.snapshots_taken();
    assert!(taken.failed >= 1 && taken.count == 0, "{taken:?}");
    assert_eq!(solo.driver.node().snapshot_index(), LogIndex(0));

    // Still failing at the retry: the wait doubles.
    solo.now += raft_core::Duration::from_secs(1);
    solo.step();
    let failed = solo.driver.snapshots_taken().failed;
    assert!(failed > taken.failed, "tried again after a second");
    solo.now += raft_core::Duration::from_secs(1);
    solo.step();
    assert_eq!(solo.driver.snapshots_taken().failed, failed, "the next try waits two seconds");

    // The disk has room again: the next try takes it.
    broken.store(false, Ordering::Relaxed);
    solo.now += raft_core::Duration::from_secs(1);
    solo.step();
    let taken = solo.driver.snapshots_taken();
    assert_eq!(taken.count, 1, "{taken:?}");
    assert!(solo.driver.node().snapshot_index() >= LogIndex(5), "the log was compacted");
}

/// Counts its commands; copies itself for snapshots, and the copy writes
/// only once `gate` opens.
struct Gated {
    sum: Flaky,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl StateMachine for Gated {
    type Command = u64;
    type Output = u64;

    fn apply(&mut self, index: LogIndex, command: u64) -> u64 {
        self.sum.apply(index, command)
    }

    fn skip(&mut self, index: LogIndex) {
        self.sum.skip(index);
    }

    fn snapshot(&self) -> Vec<u8> {
        self.sum.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError> {
        self.sum.restore(snapshot)
    }

    fn snapshot_writer(&self) -> Option<SnapshotWriter> {
        let (bytes, gate) = (self.sum.snapshot(), self.gate.clone());
        Some(Box::new(move |out| {
            let (open, opened) = &*gate;
            let mut o = open.lock().unwrap();
            while !*o {
                o = opened.wait(o).unwrap();
            }
            out.write_all(&bytes)
        }))
    }

    fn last_applied(&self) -> LogIndex {
        self.sum.last_applied()
    }
}

/// A state machine that can copy itself is snapshotted on a thread of its
/// own: the node goes on applying while the snapshot is written, and the
/// log is compacted to the copy's index once the file is in place, from
/// which a restart recovers.
#[test]
fn a_snapshot_is_written_on_its_own_thread_while_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let gated = |gate| Gated { sum: Flaky { total: 0, last: LogIndex(0), broken: Arc::default() }, gate };
    let mut solo = Solo::start(dir.path(), gated(gate.clone()));
    solo.lead_and_apply(20);
    // The snapshot was asked for after 5 entries; its writer waits at the
    // gate, and meanwhile the node applied everything.
    let applied = solo.driver.node().last_applied();
    assert!(applied >= LogIndex(20), "the node stopped while the snapshot was written: applied {applied:?}");
    assert_eq!(solo.driver.node().snapshot_index(), LogIndex(0), "compacted before the snapshot was written");
    assert_eq!(solo.driver.snapshots_taken().count, 0);

    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for _ in 0..5_000 {
        if solo.driver.node().snapshot_index() != LogIndex(0) {
            break;
        }
        std::thread::sleep(StdDuration::from_millis(2));
        solo.step();
    }
    assert_ne!(solo.driver.node().snapshot_index(), LogIndex(0), "the snapshot never went in place");
    let index = solo.driver.node().snapshot_index();
    assert!(index >= LogIndex(5) && index < applied, "compacted to {index:?}, the copy's index, not {applied:?}");
    assert_eq!(solo.driver.snapshots_taken().count, 1);
    drop(solo);

    // A restart recovers the snapshot and replays the rest.
    let mut again = Solo::start(dir.path(), gated(gate));
    assert_eq!(again.driver.node().snapshot_index(), index);
    again.step();
    assert_eq!(again.driver.state_machine().sum.last_applied(), index, "restored from the snapshot file");
}
