//! Three drivers with real disk threads on temporary directories, wired
//! together in one thread: proposals complete with the state machine's
//! output, and a full restart recovers every acknowledged write from disk.

use raft_core::{Config, Instant, NodeId, PersistToken, Role};
use raft_host::driver::Outcome;
use raft_host::{DiskLog, DiskThread, Driver, KvCommand, KvOp, KvOutput, KvStore, NodeMeta, kv::encode_command};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc;
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
