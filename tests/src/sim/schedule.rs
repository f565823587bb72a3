//! Fault schedules for the quickcheck property tests: the operations, their
//! generation, shrinking and printing, how they drive a [`Cluster`], and the
//! quickcheck, seeded and regression runners.
//!
//! A property test defines its own schedule type (cluster size, simulator
//! seed, [`Op`]s drawn with its [`OpMix`], plus what is specific to it) and
//! implements [`Property`] for it; [`quickcheck()`] and [`seeded`] then run it.
//! Schedules print as Rust source, so a shrunk failure can be pasted into a
//! regression test.

use super::{Cluster, NetConfig, for_each_seed, seeds};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use raft_core::{Duration, NodeId};
use std::fmt;

/// One step of a fault schedule. Node numbers are taken modulo the cluster size.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
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
    /// Propose this many commands; what that means is up to the test.
    Propose(u8),
}

impl fmt::Debug for Op {
    /// Valid Rust, to paste into a regression test.
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

/// Uniform-ish in `[0, n)`, from quickcheck's generator.
pub fn below(g: &mut Gen, n: u32) -> u32 {
    u32::arbitrary(g) % n
}

/// A cluster size of 3 to 5 nodes.
pub fn cluster_size(g: &mut Gen) -> u8 {
    3 + below(g, 3) as u8
}

/// Which operations a schedule draws, and how large. The draw is one number
/// below the total weight, read in this order: `Run` (6), `DropRate`,
/// `DupRate`, `LongDelay`, `DiskLatency` (if enabled), `Partition`, `Heal`,
/// `Disconnect`, `Connect`, `Crash` (2), `Restart` (2), `CrashAll` (if
/// enabled), then `Propose` (`propose_weight`).
#[derive(Clone, Copy, Debug)]
pub struct OpMix {
    /// `Run` lasts 1 to this many milliseconds.
    pub max_run_ms: u32,
    /// Draw `DiskLatency`.
    pub disk_latency: bool,
    /// Draw `CrashAll`.
    pub crash_all: bool,
    /// How many draws out of the total are `Propose`.
    pub propose_weight: u32,
    /// `Propose` asks for 1 to this many commands.
    pub max_propose: u32,
}

impl OpMix {
    /// Every operation: what [`Op::arbitrary`] draws from.
    pub const ALL: OpMix =
        OpMix { max_run_ms: 1500, disk_latency: true, crash_all: true, propose_weight: 5, max_propose: 8 };

    /// One operation.
    pub fn op(&self, g: &mut Gen) -> Op {
        let node = |g: &mut Gen| below(g, 5) as u8;
        let total = 17 + u32::from(self.disk_latency) + u32::from(self.crash_all) + self.propose_weight;
        let mut k = below(g, total);
        // Whether the draw falls in the next `weight` values.
        let mut next = |weight: u32| {
            let hit = k < weight;
            k = k.wrapping_sub(weight);
            hit
        };
        if next(6) {
            Op::Run(1 + below(g, self.max_run_ms) as u16)
        } else if next(1) {
            Op::DropRate(below(g, 31) as u8)
        } else if next(1) {
            Op::DupRate(below(g, 21) as u8)
        } else if next(1) {
            Op::LongDelay(bool::arbitrary(g))
        } else if self.disk_latency && next(1) {
            Op::DiskLatency(below(g, 40) as u8)
        } else if next(1) {
            Op::Partition((0..5).map(|_| below(g, 3) as u8).collect())
        } else if next(1) {
            Op::Heal
        } else if next(1) {
            Op::Disconnect(node(g))
        } else if next(1) {
            Op::Connect(node(g))
        } else if next(2) {
            Op::Crash(node(g))
        } else if next(2) {
            Op::Restart(node(g))
        } else if self.crash_all && next(1) {
            Op::CrashAll
        } else {
            Op::Propose(1 + below(g, self.max_propose) as u8)
        }
    }

    /// A list of operations, as long as `Vec::<Op>::arbitrary` would draw.
    pub fn ops(&self, g: &mut Gen) -> Vec<Op> {
        // `()` draws nothing, so this is exactly the length draw of `Vec::arbitrary`.
        let len = Vec::<()>::arbitrary(g).len();
        (0..len).map(|_| self.op(g)).collect()
    }
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        OpMix::ALL.op(g)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Op>> {
        match self {
            Op::Run(ms) if *ms > 1 => Box::new([Op::Run(ms / 2)].into_iter()),
            Op::Propose(k) if *k > 1 => Box::new([Op::Propose(k / 2)].into_iter()),
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// Node number `k` of a cluster of `n` (numbers wrap around).
pub fn node_id(n: usize, k: u8) -> NodeId {
    NodeId(u64::from(k) % n as u64 + 1)
}

/// Applies `ops` to the cluster in order, leaving `Op::Propose(k)` to
/// `propose(c, k)`.
pub fn run_ops(c: &mut Cluster, ops: &[Op], mut propose: impl FnMut(&mut Cluster, u8)) {
    let n = c.len();
    let id = |k: u8| node_id(n, k);
    for op in ops {
        match op {
            Op::Run(ms) => c.run_for(Duration::from_millis(u64::from(*ms))),
            Op::DropRate(p) => c.net_config_mut().drop_rate = f64::from(*p) / 100.0,
            Op::DupRate(p) => c.net_config_mut().duplicate_rate = f64::from(*p) / 100.0,
            Op::LongDelay(b) => c.net_config_mut().long_reordering = *b,
            Op::DiskLatency(ms) => c.disk_config_mut().latency_max = Duration::from_millis(u64::from(*ms)),
            Op::Partition(groups) => {
                let mut members: Vec<Vec<NodeId>> = vec![Vec::new(); 3];
                for k in 0..n {
                    let g = groups.get(k).copied().unwrap_or(0) % 3;
                    members[usize::from(g)].push(NodeId(k as u64 + 1));
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
            Op::Propose(k) => propose(c, *k),
        }
    }
}

/// Repairs every fault: heals the network, makes it reliable, resets the
/// disks' timing and restarts the crashed nodes.
pub fn repair(c: &mut Cluster) {
    c.heal();
    *c.net_config_mut() = NetConfig::reliable();
    *c.disk_config_mut() = Default::default();
    for node in c.ids() {
        if !c.is_up(node) {
            c.restart(node);
        }
    }
    c.note("all faults repaired");
}

/// A schedule type that a property test generates, runs and checks.
pub trait Property: Arbitrary + fmt::Debug {
    /// What a passing run reports (e.g. how much it checked).
    type Outcome;
    /// Quickcheck's size: the longest schedule has this many operations.
    const SIZE: usize;

    /// Runs the schedule and checks the property; `Err` says what failed.
    /// Safety violations panic inside the simulator (with seed and trace).
    fn check(&self) -> Result<Self::Outcome, String>;

    /// The schedule generated from `seed` alone.
    fn from_seed(seed: u64) -> Self {
        Self::arbitrary(&mut Gen::from_size_and_seed(Self::SIZE, seed))
    }

    /// [`Property::check`], panicking with the schedule on failure.
    fn check_or_panic(&self) -> Self::Outcome {
        match self.check() {
            Ok(outcome) => outcome,
            Err(e) => panic!("{e}\nschedule: {self:?}"),
        }
    }
}

fn passes<P: Property>(s: P) -> TestResult {
    match s.check() {
        Ok(_) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

/// Quickcheck with a seeded generator (`RAFT_QC_SEED`, else `default_seed`)
/// so CI is reproducible, over as many schedules as [`seeds`] gives; a
/// failure prints the shrunk schedule. Does nothing under `RAFT_SEED` (see
/// [`seeded`]).
pub fn quickcheck<P: Property>(default_seed: u64, default_count: u64) {
    if std::env::var("RAFT_SEED").is_ok() {
        return; // replaying one seed: see `seeded`
    }
    let seed = std::env::var("RAFT_QC_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(default_seed);
    let n = seeds(0, default_count).len() as u64;
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(P::SIZE, seed))
        .tests(n)
        .max_tests(n)
        .quickcheck(passes::<P> as fn(P) -> TestResult);
}

/// Checks schedule [`Property::from_seed`]`(seed)` for every seed of
/// [`for_each_seed`]`(base, default_count)`, so `RAFT_SEED=k` replays one
/// exactly; hands each outcome to `each`.
pub fn seeded<P: Property>(base: u64, default_count: u64, mut each: impl FnMut(P::Outcome)) {
    for_each_seed(base, default_count, |seed| each(P::from_seed(seed).check_or_panic()));
}
