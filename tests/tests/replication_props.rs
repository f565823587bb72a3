//! Property tests of replication under arbitrary fault schedules with
//! crashes, restarts, slow disks and proposals.
//!
//! The simulator checks its invariants after every step (election and vote
//! safety, log matching, state machine safety, leader completeness, apply
//! order...) and panics on a violation. At the end of each schedule these
//! properties check the final state once more, and the durability promise:
//!
//! * **log matching**: two logs holding an entry with the same index and
//!   term are identical up to it;
//! * **leader completeness**: the final leader holds every committed entry;
//! * **state machine safety**: no two nodes applied different entries at an index;
//! * **acknowledged writes survive any minority of crashes**: a write is
//!   acknowledged once the node that accepted it applied it (what a server
//!   answers its client). Then a random minority crashes at once (or every
//!   node), the crashed nodes restart, the network heals, and every
//!   acknowledged write must be applied, at its index, on every node.
//!
//! * `quickcheck_schedules`: quickcheck with a seeded generator
//!   (`RAFT_QC_SEED`, fixed by default) so CI is reproducible; a failure
//!   prints the shrunk schedule as Rust source for a regression test.
//! * `seeded_schedules`: schedule `k` comes from seed `k` alone, so
//!   `RAFT_SEED=k` replays one exactly.
//!
//! `RAFT_SEEDS` sets how many schedules each test runs.

mod common;

use quickcheck::{Arbitrary, Gen};
use raft_core::{Bytes, Config, Duration, LogIndex, NodeId, Payload, Role};
use raft_tests::sim::schedule::{self, Op, OpMix, Property, below, cluster_size, node_id};
use raft_tests::sim::{Applied, Cluster, SimConfig};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Schedules per test unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 1_000;

/// The operations drawn: all of them. `Op::Propose(k)` proposes `k` writes
/// at every node that believes it leads.
const MIX: OpMix = OpMix { max_run_ms: 1200, disk_latency: true, crash_all: true, propose_weight: 5, max_propose: 8 };

/// A cluster size, a simulator seed, the operations, and the final crash:
/// every node if `crash_all`, otherwise the distinct nodes of `final_crash`,
/// at most a minority of them. With `tight`, nodes use tiny message and
/// in-flight limits ([`tight_limits`]) and writes of 100-250 bytes, so
/// flow control and message splitting are exercised.
#[derive(Clone)]
struct Schedule {
    nodes: u8,
    tight: bool,
    seed: u64,
    ops: Vec<Op>,
    final_crash: Vec<u8>,
    crash_all: bool,
}

impl fmt::Debug for Schedule {
    /// Valid Rust, to paste into a regression test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Schedule {{ nodes: {}, tight: {}, seed: {}, ops: vec!{:?}, final_crash: vec!{:?}, crash_all: {} }}",
            self.nodes, self.tight, self.seed, self.ops, self.final_crash, self.crash_all
        )
    }
}

impl Arbitrary for Schedule {
    fn arbitrary(g: &mut Gen) -> Schedule {
        Schedule {
            nodes: cluster_size(g),
            tight: bool::arbitrary(g),
            seed: u64::arbitrary(g),
            ops: MIX.ops(g),
            final_crash: (0..below(g, 3)).map(|_| below(g, 5) as u8).collect(),
            crash_all: below(g, 4) == 0,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Schedule>> {
        let s = self.clone();
        let fewer_nodes = (s.nodes > 3).then(|| Schedule { nodes: s.nodes - 1, ..s.clone() });
        let no_crash_all = s.crash_all.then(|| Schedule { crash_all: false, ..s.clone() });
        let loose = s.tight.then(|| Schedule { tight: false, ..s.clone() });
        let base = s.clone();
        let fewer_crashes = s.final_crash.shrink().map(move |final_crash| Schedule { final_crash, ..base.clone() });
        let base = s.clone();
        let shorter = s.ops.shrink().map(move |ops| Schedule { ops, ..base.clone() });
        Box::new(fewer_nodes.into_iter().chain(no_crash_all).chain(loose).chain(fewer_crashes).chain(shorter))
    }
}

/// Tiny limits: messages of at most 400 bytes (one 256-byte entry), two
/// messages or 800 bytes in flight per follower.
fn tight_limits(c: &mut Config) {
    c.max_entry_bytes = 256;
    c.max_message_bytes = 400;
    c.max_inflight_messages = 2;
    c.max_inflight_bytes = 800;
}

/// The `k`-th write: unique, and 100-250 bytes long when `tight`.
fn write(k: u64, tight: bool) -> Bytes {
    let mut w = format!("w{k}");
    if tight {
        let len = 100 + (k * 37) % 151;
        while w.len() < len as usize {
            w.push('.');
        }
    }
    Bytes::from(w.as_str())
}

/// Writes proposed and acknowledged during a run.
#[derive(Default)]
struct Acks {
    /// `(node, lifetime, index)` -> the write a node accepted there.
    proposed: HashMap<(NodeId, u32, LogIndex), Bytes>,
    /// Writes the accepting node applied: acknowledged to their clients.
    acked: Vec<(LogIndex, Bytes)>,
}

fn track_acks(c: &mut Cluster) -> Rc<RefCell<Acks>> {
    let acks = Rc::new(RefCell::new(Acks::default()));
    let sink = Rc::clone(&acks);
    c.set_apply_hook(Some(Box::new(move |_, id, lifetime, applied| {
        let Applied::Entries(entries) = applied else { return };
        let mut a = sink.borrow_mut();
        for e in entries {
            if let Some(w) = a.proposed.remove(&(id, lifetime, e.index))
                && e.payload == Payload::Command(w.clone())
            {
                a.acked.push((e.index, w));
            }
        }
    })));
    acks
}

impl Property for Schedule {
    type Outcome = usize;
    /// The longest schedule has 60 operations.
    const SIZE: usize = 60;

    /// Runs the schedule, crashes the final minority (or everyone), repairs
    /// everything and checks the properties. Safety violations during the run
    /// panic inside the simulator (with seed and trace).
    /// Returns how many acknowledged writes were checked.
    fn check(&self) -> Result<usize, String> {
        let s = self;
        let n = usize::from(s.nodes);
        let mut cfg = SimConfig::new(n, s.seed);
        if s.tight {
            cfg.configure = tight_limits;
        }
        let mut c = Cluster::new(cfg);
        let acks = track_acks(&mut c);
        let id = |k: u8| node_id(n, k);
        let mut writes = 0u64;
        schedule::run_ops(&mut c, &s.ops, |c, k| {
            let leaders: Vec<NodeId> =
                c.ids().into_iter().filter(|&l| c.node(l).is_some_and(|x| x.role() == Role::Leader)).collect();
            for l in leaders {
                for _ in 0..k {
                    writes += 1;
                    let w = write(writes, s.tight);
                    if let Ok(index) = c.propose(l, w.clone()) {
                        let lifetime = c.lifetime(l);
                        acks.borrow_mut().proposed.insert((l, lifetime, index), w);
                    }
                }
            }
        });

        // The final crash: a minority at once (or everyone), then restart.
        let victims: Vec<NodeId> = if s.crash_all {
            c.ids()
        } else {
            let mut v: Vec<NodeId> = s.final_crash.iter().map(|&k| id(k)).collect();
            v.sort();
            v.dedup();
            v.truncate((n - 1) / 2);
            v
        };
        c.note(format!("final crash of {victims:?}"));
        for &v in &victims {
            c.crash(v);
        }
        schedule::repair(&mut c);
        if !c.run_until(|c| !c.leaders().is_empty(), Duration::from_secs(10)) {
            return Err(format!("seed {}: no leader 10 s after repair\n{}", s.seed, c.trace_tail()));
        }
        let last = c.one("after repair", n, true);
        let everyone = c.run_until(
            |c| c.ids().into_iter().all(|id| c.applied(id).last().is_some_and(|e| e.index >= last)),
            Duration::from_secs(10),
        );
        if !everyone {
            return Err(format!("seed {}: not every node applied i{last}", s.seed));
        }
        common::check_final_state(&mut c)?;
        let acked = std::mem::take(&mut acks.borrow_mut().acked);
        for (index, w) in &acked {
            for node in c.ids() {
                let got = c.applied_entry(node, *index).map(|e| &e.payload);
                if got != Some(&Payload::Command(w.clone())) {
                    return Err(format!(
                        "seed {}: acknowledged write {w:?} at i{index} lost on n{node} (it has {got:?}) after crashing {victims:?}\n{}",
                        s.seed,
                        c.trace_tail()
                    ));
                }
            }
        }
        Ok(acked.len())
    }
}

#[test]
fn quickcheck_schedules() {
    schedule::quickcheck::<Schedule>(0x5EED_0E1F, SEEDS);
}

#[test]
fn seeded_schedules() {
    let (mut acked, mut with_acks) = (0, 0);
    schedule::seeded::<Schedule>(60_000, SEEDS, |a| {
        acked += a;
        with_acks += usize::from(a > 0);
    });
    println!("seeded schedules: {acked} acknowledged writes checked, {with_acks} schedules had some");
}

/// Hand-written schedules, replayed exactly.
#[test]
fn regression_schedules() {
    let cases = [
        // Writes acknowledged by a 3-of-5 majority with slow disks, then the
        // whole cluster crashes mid-write.
        Schedule {
            nodes: 5,
            tight: true,
            seed: 3,
            ops: vec![
                Op::Run(1000),
                Op::DiskLatency(30),
                Op::Propose(8),
                Op::Partition(vec![0, 0, 0, 1, 1]),
                Op::Propose(8),
                Op::Run(40),
                Op::Propose(8),
                Op::Run(7),
            ],
            final_crash: vec![],
            crash_all: true,
        },
        // A minority holding the newest entries crashes at the end.
        Schedule {
            nodes: 5,
            tight: false,
            seed: 4,
            ops: vec![Op::Run(900), Op::Propose(5), Op::Run(3), Op::Crash(1), Op::Propose(5), Op::Run(20)],
            final_crash: vec![0, 2],
            crash_all: false,
        },
    ];
    for s in &cases {
        let acked = s.check_or_panic();
        assert!(acked > 0, "the regression schedule acknowledged nothing: {s:?}");
    }
}
