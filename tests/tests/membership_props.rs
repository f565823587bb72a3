//! Property tests of membership changes under arbitrary fault schedules:
//! the operations of `replication_props` (runs, loss, duplication, long
//! reordering, slow disks, partitions, disconnections, crashes, restarts,
//! crashes of every node, proposals, quiet phases) with membership
//! operations sprinkled in ([`MemberMix`]: new machines added as learners,
//! promotions, removals, each asked of every node that believes it leads,
//! refusals expected).
//!
//! The simulator checks its invariants after every step (one leader per term
//! across every configuration, the commit quorum of the configuration in
//! force, both halves when joint, removed and joining nodes never lead, log
//! matching, state machine safety...). At the end, with every fault repaired:
//!
//! * the membership settles: a leader holds the newest committed
//!   configuration (not joint) and every live member applies a new write;
//! * every live member holds that configuration;
//! * acknowledged writes (applied by the node that accepted them) are
//!   committed at their index;
//! * log matching, leader completeness and state machine safety hold on the
//!   final state.
//!
//! * `membership_quickcheck_schedules`: quickcheck with a seeded generator
//!   (`RAFT_QC_SEED`); a failure prints the shrunk schedule as Rust source.
//! * `membership_seeded_schedules`: schedule `k` comes from seed `k` alone, so
//!   `RAFT_SEED=k` replays one exactly.
//!
//! `RAFT_SEEDS` sets how many schedules each test runs; `RAFT_SCHEDULE_STATS=1`
//! prints what each did.

mod common;

use quickcheck::{Arbitrary, Gen};
use raft_core::{Bytes, Duration, Instant, Payload};
use raft_tests::sim::schedule::{self, MemberMix, Op, OpMix, Property, Summary, cluster_size};
use raft_tests::sim::snapshots::{ApplierConfig, ApplierMode, Appliers};
use raft_tests::sim::{Cluster, SimConfig};
use std::fmt;

/// Schedules per test unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 150;

/// The fault and proposal operations (all of them, shorter runs).
const MIX: OpMix = OpMix {
    max_run_ms: 800,
    disk_latency: true,
    crash_all: true,
    propose_weight: 5,
    max_propose: 6,
    quiet_phases: 2,
    leadership: false,
};

/// Up to 20 membership operations per schedule.
const MEMBERS: MemberMix = MemberMix { max_ops: 20 };

/// A cluster size, a simulator seed, the operations, and whether nodes
/// compact their logs: with `snapshots`, every node's applier snapshots every
/// 8 entries ([`Appliers`], which check every applied and restored state
/// against the committed history), so new and lagging members catch up from
/// snapshots that carry the configuration, joint ones included; writes are
/// then not tracked.
#[derive(Clone)]
struct Schedule {
    nodes: u8,
    seed: u64,
    snapshots: bool,
    ops: Vec<Op>,
}

impl fmt::Debug for Schedule {
    /// Valid Rust, to paste into a regression test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Schedule {{ nodes: {}, seed: {}, snapshots: {}, ops: vec!{:?} }}",
            self.nodes, self.seed, self.snapshots, self.ops
        )
    }
}

impl Arbitrary for Schedule {
    fn arbitrary(g: &mut Gen) -> Schedule {
        let nodes = cluster_size(g);
        let seed = u64::arbitrary(g);
        let snapshots = bool::arbitrary(g);
        let mut ops = MIX.ops(g);
        MEMBERS.sprinkle(g, &mut ops);
        Schedule { nodes, seed, snapshots, ops }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Schedule>> {
        let s = self.clone();
        let fewer_nodes = (s.nodes > 3).then(|| Schedule { nodes: s.nodes - 1, ..s.clone() });
        let no_snapshots = s.snapshots.then(|| Schedule { snapshots: false, ..s.clone() });
        let base = s.clone();
        let shorter = s.ops.shrink().map(move |ops| Schedule { ops, ..base.clone() });
        Box::new(fewer_nodes.into_iter().chain(no_snapshots).chain(shorter))
    }
}

impl Property for Schedule {
    /// The longest schedule has 50 operations (plus membership ones).
    const SIZE: usize = 50;

    fn check(&self) -> Result<Summary, String> {
        let s = self;
        let mut c = Cluster::new(SimConfig::new(usize::from(s.nodes), s.seed));
        let appliers = s.snapshots.then(|| {
            let cfg = ApplierConfig { every: Some(8), mode: ApplierMode::Digest, ..ApplierConfig::policy() };
            Appliers::install(&mut c, cfg)
        });
        let acks = if s.snapshots { Default::default() } else { schedule::track_acks(&mut c) };
        let mut writes = 0u64;
        schedule::run_ops(&mut c, &s.ops, |c, k| {
            schedule::propose_at_leaders(c, k, &acks, || {
                writes += 1;
                Bytes::from(format!("w{writes}").as_str())
            });
        });
        let summary = Summary { ops: s.ops.len(), sim_time: c.now().saturating_since(Instant::ZERO), acked: 0 };
        schedule::repair(&mut c);
        c.settle_membership("settled".into(), Duration::from_secs(20))
            .map_err(|e| format!("seed {}: {e}\n{}", s.seed, c.trace_tail()))?;
        let (_, config) = c.committed_config().ok_or_else(|| format!("seed {}: no configuration", s.seed))?;
        let config = config.clone();
        for id in config.members() {
            if let Some(m) = c.membership(id)
                && (m.voters != config.voters || m.learners != config.learners || m.is_joint())
            {
                return Err(format!("seed {}: member n{id} holds {m:?}, the committed one is {config:?}", s.seed));
            }
        }
        common::check_final_state(&mut c)?;
        if let Some(a) = &appliers {
            a.check(&c);
        }
        let acked = std::mem::take(&mut acks.borrow_mut().acked);
        for (index, w) in &acked {
            let got = c.committed_entry(*index).map(|(_, p)| p);
            if got != Some(&Payload::Command(w.clone())) {
                return Err(format!(
                    "seed {}: acknowledged write {w:?} at i{index}, but {got:?} is committed there",
                    s.seed
                ));
            }
        }
        Ok(Summary { acked: acked.len(), ..summary })
    }
}

#[test]
fn membership_quickcheck_schedules() {
    let runs = schedule::quickcheck::<Schedule>(0x5EED_3E3B, SEEDS);
    let acked: usize = runs.iter().map(|r| r.acked).sum();
    println!("membership quickcheck schedules: {acked} acknowledged writes checked");
}

#[test]
fn membership_seeded_schedules() {
    let runs = schedule::seeded::<Schedule>(98_000, SEEDS);
    let acked: usize = runs.iter().map(|r| r.acked).sum();
    println!("membership seeded schedules: {acked} acknowledged writes checked");
}

/// Found by `membership_quickcheck_schedules` (after the host-side membership
/// changes landed): a removed node led a term.
#[test]
fn regression_a_removed_node_never_leads() {
    let s = Schedule {
        nodes: 5,
        seed: 13173322665133039811,
        snapshots: true,
        ops: vec![
            Op::RemoveMember(5),
            Op::AddNode,
            Op::RemoveMember(7),
            Op::Quiet(5, 1450),
            Op::DropRate(28),
            Op::CrashAll,
            Op::Run(523),
            Op::Run(582),
            Op::Restart(4),
        ],
    };
    if let Err(e) = s.check() {
        panic!("{e}");
    }
}
