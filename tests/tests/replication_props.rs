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

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use raft_core::{Bytes, Config, Duration, LogIndex, NodeId, Payload, Role};
use raft_tests::sim::{Applied, Cluster, NetConfig, SimConfig, for_each_seed, seeds};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Schedules per test unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 1_000;
/// Quickcheck's size: the longest schedule has this many operations.
const SIZE: usize = 60;

/// One step of a schedule. Node numbers are taken modulo the cluster size.
#[derive(Clone, PartialEq, Eq)]
enum Op {
    /// Let the cluster run this many milliseconds.
    Run(u16),
    /// Set the loss rate, in percent.
    DropRate(u8),
    /// Set the duplication rate, in percent.
    DupRate(u8),
    /// Turn MIT long reordering on or off.
    LongDelay(bool),
    /// Set the largest disk write latency, in milliseconds.
    DiskLatency(u8),
    /// Partition: node `k` goes to group `groups[k] % 3`.
    Partition(Vec<u8>),
    /// Repair the network (partitions, disconnections).
    Heal,
    Disconnect(u8),
    Connect(u8),
    Crash(u8),
    Restart(u8),
    /// Crash every node at once, then restart them all.
    CrashAll,
    /// Propose this many writes at every node that believes it leads.
    Propose(u8),
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Run(ms) => write!(f, "Op::Run({ms})"),
            Op::DropRate(p) => write!(f, "Op::DropRate({p})"),
            Op::DupRate(p) => write!(f, "Op::DupRate({p})"),
            Op::LongDelay(b) => write!(f, "Op::LongDelay({b})"),
            Op::DiskLatency(ms) => write!(f, "Op::DiskLatency({ms})"),
            Op::Partition(g) => write!(f, "Op::Partition(vec!{g:?})"),
            Op::Heal => write!(f, "Op::Heal"),
            Op::Disconnect(k) => write!(f, "Op::Disconnect({k})"),
            Op::Connect(k) => write!(f, "Op::Connect({k})"),
            Op::Crash(k) => write!(f, "Op::Crash({k})"),
            Op::Restart(k) => write!(f, "Op::Restart({k})"),
            Op::CrashAll => write!(f, "Op::CrashAll"),
            Op::Propose(k) => write!(f, "Op::Propose({k})"),
        }
    }
}

fn below(g: &mut Gen, n: u32) -> u32 {
    u32::arbitrary(g) % n
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let node = |g: &mut Gen| below(g, 5) as u8;
        match below(g, 24) {
            0..=5 => Op::Run(1 + below(g, 1200) as u16),
            6 => Op::DropRate(below(g, 31) as u8),
            7 => Op::DupRate(below(g, 21) as u8),
            8 => Op::LongDelay(bool::arbitrary(g)),
            9 => Op::DiskLatency(below(g, 40) as u8),
            10 => Op::Partition((0..5).map(|_| below(g, 3) as u8).collect()),
            11 => Op::Heal,
            12 => Op::Disconnect(node(g)),
            13 => Op::Connect(node(g)),
            14 | 15 => Op::Crash(node(g)),
            16 | 17 => Op::Restart(node(g)),
            18 => Op::CrashAll,
            _ => Op::Propose(1 + below(g, 8) as u8),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Op>> {
        match self {
            Op::Run(ms) if *ms > 1 => Box::new([Op::Run(ms / 2)].into_iter()),
            Op::Propose(k) if *k > 1 => Box::new([Op::Propose(k / 2)].into_iter()),
            _ => Box::new(std::iter::empty()),
        }
    }
}

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
            nodes: 3 + below(g, 3) as u8,
            tight: bool::arbitrary(g),
            seed: u64::arbitrary(g),
            ops: Vec::arbitrary(g),
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

impl Schedule {
    /// The schedule generated from `seed` alone.
    fn from_seed(seed: u64) -> Schedule {
        Schedule::arbitrary(&mut Gen::from_size_and_seed(SIZE, seed))
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

/// Runs the schedule, crashes the final minority (or everyone), repairs
/// everything and checks the properties. Safety violations during the run
/// panic inside the simulator (with seed and trace).
fn check(s: &Schedule) -> Result<usize, String> {
    let n = usize::from(s.nodes);
    let mut cfg = SimConfig::new(n, s.seed);
    if s.tight {
        cfg.configure = tight_limits;
    }
    let mut c = Cluster::new(cfg);
    let acks = track_acks(&mut c);
    let id = |k: u8| NodeId(u64::from(k) % n as u64 + 1);
    let mut writes = 0u64;
    for op in &s.ops {
        match op {
            Op::Run(ms) => c.run_for(Duration::from_millis(u64::from(*ms))),
            Op::DropRate(p) => c.net_config_mut().drop_rate = f64::from(*p) / 100.0,
            Op::DupRate(p) => c.net_config_mut().duplicate_rate = f64::from(*p) / 100.0,
            Op::LongDelay(b) => c.net_config_mut().long_reordering = *b,
            Op::DiskLatency(ms) => c.disk_config_mut().latency_max = Duration::from_millis(u64::from(*ms)),
            Op::Partition(groups) => {
                let mut members: Vec<Vec<NodeId>> = vec![Vec::new(); 3];
                for k in 0..s.nodes {
                    let g = groups.get(usize::from(k)).copied().unwrap_or(0) % 3;
                    members[usize::from(g)].push(id(k));
                }
                let refs: Vec<&[NodeId]> = members.iter().map(Vec::as_slice).collect();
                c.partition(&refs);
            }
            Op::Heal => c.heal(),
            Op::Disconnect(k) => c.disconnect(id(*k)),
            Op::Connect(k) => c.connect(id(*k)),
            Op::Crash(k) => c.crash(id(*k)),
            Op::Restart(k) => c.restart(id(*k)),
            Op::CrashAll => {
                for node in c.ids() {
                    c.crash(node);
                }
                for node in c.ids() {
                    c.restart(node);
                }
            }
            Op::Propose(k) => {
                let leaders: Vec<NodeId> =
                    c.ids().into_iter().filter(|&l| c.node(l).is_some_and(|x| x.role() == Role::Leader)).collect();
                for l in leaders {
                    for _ in 0..*k {
                        writes += 1;
                        let w = write(writes, s.tight);
                        if let Ok(index) = c.propose(l, w.clone()) {
                            let lifetime = c.lifetime(l);
                            acks.borrow_mut().proposed.insert((l, lifetime, index), w);
                        }
                    }
                }
            }
        }
    }

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
    // Repair everything.
    c.heal();
    *c.net_config_mut() = NetConfig::reliable();
    *c.disk_config_mut() = Default::default();
    for node in c.ids() {
        if !c.is_up(node) {
            c.restart(node);
        }
    }
    c.note("all faults repaired");
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
    common::check_final_state(&c)?;
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

fn tests_count() -> u64 {
    seeds(0, SEEDS).len() as u64
}

#[test]
fn quickcheck_schedules() {
    if std::env::var("RAFT_SEED").is_ok() {
        return; // replaying one seed: see `seeded_schedules`
    }
    let seed = std::env::var("RAFT_QC_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5EED_0E1F);
    let prop = |s: Schedule| -> TestResult {
        match check(&s) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    };
    let n = tests_count();
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(SIZE, seed))
        .tests(n)
        .max_tests(n)
        .quickcheck(prop as fn(Schedule) -> TestResult);
}

#[test]
fn seeded_schedules() {
    let (mut acked, mut with_acks) = (0, 0);
    for_each_seed(60_000, SEEDS, |seed| {
        let s = Schedule::from_seed(seed);
        match check(&s) {
            Ok(a) => {
                acked += a;
                with_acks += usize::from(a > 0);
            }
            Err(e) => panic!("{e}\nschedule: {s:?}"),
        }
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
        match check(s) {
            Ok(acked) => assert!(acked > 0, "the regression schedule acknowledged nothing: {s:?}"),
            Err(e) => panic!("{e}\nschedule: {s:?}"),
        }
    }
}
