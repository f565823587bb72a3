//! Property tests: arbitrary fault schedules on 3-5 nodes never break election
//! safety or vote safety, and once every fault is repaired a leader is elected
//! and commits within a bounded time.
//!
//! The simulator checks its invariants (one leader per term, one durable vote
//! per term and node, log matching, state machine safety...) after every step
//! and panics on a violation; `schedule::run_ops` checks that no read
//! ([`Op::Read`]) gets a read index below what was applied anywhere when it
//! started; the properties add the recovery checks.
//!
//! * `quickcheck_schedules`: quickcheck with a seeded generator (`RAFT_QC_SEED`,
//!   fixed by default) so CI is reproducible; a failure prints the shrunk
//!   schedule as Rust source that can be pasted into a regression test.
//! * `seeded_schedules`: schedule `k` is generated from seed `k` alone, so
//!   `RAFT_SEED=k` replays one exactly.
//!
//! `RAFT_SEEDS` sets how many schedules each test runs.
//!
//! Every schedule has one or two quiet phases ([`Op::Quiet`]: faults
//! suspended until a leader applies what it holds), so every schedule
//! commits commands (acknowledged: applied by the leader that accepted them)
//! before the final repair, and both tests fail if more than 1% do not.
//! `RAFT_SCHEDULE_STATS=1` prints, per schedule, the operations, the
//! simulated time they took and the commands acknowledged, then the
//! distribution. With the default seeds (min/median/max):
//!
//! | test | operations | simulated time | acknowledged commands | none acknowledged |
//! | --- | --- | --- | --- | --- |
//! | `seeded_schedules` | 1/40/81 | 0.7/12.1/36.1 s | 1/7/35 | 0 of 1000 |
//! | `quickcheck_schedules` | 1/43/81 | 0.6/12.7/40.3 s | 1/7/40 | 0 of 1000 |
//!
//! (Since schedules also cut off single followers, transfer leadership and
//! read ([`Op::IsolateFollower`], [`Op::Transfer`], [`Op::Read`]), some
//! quiet phases find their leader in the middle of a transfer, which
//! refuses proposals. Such a phase now waits for the transfer to end, then
//! proposes, as a client told to retry would; before, it proposed once,
//! was refused and had nothing to wait for: 6 of the 1000 seeded schedules
//! and 1 of the quickcheck ones committed nothing, and a soak found chunks
//! of 100 seeds with 2 or 3 such schedules, e.g. `RAFT_SEED=30007406`, a
//! `Transfer` right before the phase, and `RAFT_SEED=30007473`, whose
//! target was down when `TimeoutNow` went out, so the transfer ran until
//! its deadline; a leader now sends `TimeoutNow` again when the target
//! answers a later heartbeat round, and that transfer hands over 82 ms
//! into the phase.)
//!
//! Before quiet phases: 505 of the 1000 seeded schedules (498 of the
//! quickcheck ones) committed no command before the repair.
//!
//! With pre-vote and check-quorum, 2 of the 1000 quickcheck schedules once
//! ended their quiet phases with nothing committed (on the tree of commit
//! 4b4b489). Both traces show the quiet phase's leader deposed right after
//! it was given the commands, which the phase then lost, with no one to
//! propose them again: in the 5-node one, a node restarted with a longer
//! stale log (i4/t1) collected pre-votes from nodes that had just voted for
//! the new leader but not yet heard from it (Raft's pre-vote rule grants
//! those, as etcd's does), its term-4 candidacy deposed the leader, and its
//! real votes were refused (older log); the 312 ms left in the phase were
//! shorter than an election. In the 3-node one, the leader found by the
//! phase had had no majority contact during the faults just before, and
//! check-quorum deposed it 53 ms into the phase; its 5 uncommitted entries
//! were truncated by the next leader. Both are the phase's single attempt,
//! not a liveness fault: each cluster elected a leader and committed
//! within about one election timeout. A quiet phase now proposes again at
//! the next leader when its leader is deposed before applying (as a client
//! retries), and on that tree both schedules then commit (0 of 1000); so
//! did 30,000 seeded schedules before the leadership operations came. With
//! them, and the wait for a transfer to end, so do 100,000 seeded schedules
//! from `RAFT_SEED_OFFSET=30000000`.

use quickcheck::{Arbitrary, Gen};
use raft_core::{Bytes, Duration, Instant};
use raft_tests::sim::schedule::{self, Op, OpMix, Property, Summary, cluster_size};
use raft_tests::sim::{Cluster, SimConfig};
use std::fmt;

/// Schedules per test unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 1_000;

/// The operations drawn: no disk latency, no whole-cluster crash.
const MIX: OpMix = OpMix {
    max_run_ms: 1500,
    disk_latency: false,
    crash_all: false,
    leadership: true,
    propose_weight: 3,
    max_propose: 5,
    quiet_phases: 2,
};

/// A cluster size, a simulator seed and the operations to apply.
#[derive(Clone)]
struct Schedule {
    nodes: u8,
    seed: u64,
    ops: Vec<Op>,
}

impl fmt::Debug for Schedule {
    /// Valid Rust, to paste into a regression test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule {{ nodes: {}, seed: {}, ops: vec!{:?} }}", self.nodes, self.seed, self.ops)
    }
}

impl Arbitrary for Schedule {
    fn arbitrary(g: &mut Gen) -> Schedule {
        Schedule { nodes: cluster_size(g), seed: u64::arbitrary(g), ops: MIX.ops(g) }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Schedule>> {
        let (nodes, seed) = (self.nodes, self.seed);
        let fewer_nodes = (nodes > 3).then(|| Schedule { nodes: nodes - 1, seed, ops: self.ops.clone() });
        let shorter = self.ops.shrink().map(move |ops| Schedule { nodes, seed, ops });
        Box::new(fewer_nodes.into_iter().chain(shorter))
    }
}

impl Property for Schedule {
    /// The longest schedule has 80 operations.
    const SIZE: usize = 80;

    /// Runs the schedule, then repairs everything and requires a leader
    /// within 10 s and a new command applied on every node within 10 s more.
    /// `Op::Propose(k)` proposes `k` commands at the current leader, if any.
    fn check(&self) -> Result<Summary, String> {
        let s = self;
        let mut c = Cluster::new(SimConfig::new(s.nodes as usize, s.seed));
        let acks = schedule::track_acks(&mut c);
        let mut writes = 0u64;
        schedule::run_ops(&mut c, &s.ops, |c, k| {
            schedule::propose_at_leaders(c, k, &acks, || {
                writes += 1;
                Bytes::from(format!("cmd {writes}").as_str())
            });
        });
        let acked = acks.borrow().acked.len();
        let summary = Summary { ops: s.ops.len(), sim_time: c.now().saturating_since(Instant::ZERO), acked };
        schedule::repair(&mut c);
        let repaired = c.now();
        if !c.run_until(|c| !c.leaders().is_empty(), Duration::from_secs(10)) {
            return Err(format!("seed {}: no leader 10 s after repair\n{}", s.seed, c.trace_tail()));
        }
        let elected = c.now().saturating_since(repaired);
        // A new command commits everywhere: the leader is a real one.
        let index = c.one("after repair", s.nodes as usize, true);
        let by = c.n_committed(index).0;
        if by != s.nodes as usize {
            return Err(format!("seed {}: index {index} applied by {by} of {} nodes", s.seed, s.nodes));
        }
        let leaders = c.leaders();
        if leaders.len() != 1 {
            return Err(format!(
                "seed {}: {} leaders after recovery: {leaders:?} (elected after {elected:?})",
                s.seed,
                leaders.len()
            ));
        }
        Ok(summary)
    }
}

#[test]
fn quickcheck_schedules() {
    let runs = schedule::quickcheck::<Schedule>(0x5EED_0E1E, SEEDS);
    // At most 1% (none of the 1000 default quickcheck schedules or seeded
    // ones end their quiet phases without a commit).
    let none = runs.iter().filter(|r| r.acked == 0).count();
    assert!(none * 100 <= runs.len(), "{none} schedules committed no command (RAFT_SCHEDULE_STATS=1 lists them)");
}

#[test]
fn seeded_schedules() {
    let runs = schedule::seeded::<Schedule>(7_000, SEEDS);
    let seeds = raft_tests::sim::seeds(7_000, SEEDS);
    let none: Vec<u64> = seeds.iter().zip(&runs).filter(|(_, r)| r.acked == 0).map(|(s, _)| *s).collect();
    assert!(none.len() * 100 <= runs.len(), "schedules committed no command before the repair: RAFT_SEED={none:?}");
}

/// Hand-written schedules that once mattered, replayed exactly.
#[test]
fn regression_schedules() {
    let cases = [
        // Leader crashes while partitioned in the minority; heals with loss on.
        Schedule {
            nodes: 5,
            seed: 11,
            ops: vec![
                Op::Run(900),
                Op::Partition(vec![0, 0, 1, 1, 1]),
                Op::Crash(0),
                Op::Crash(1),
                Op::DropRate(30),
                Op::Run(1500),
                Op::Restart(0),
                Op::Heal,
                Op::Propose(3),
                Op::Run(700),
            ],
        },
    ];
    for s in &cases {
        s.check_or_panic();
    }
    // Quiet phases whose leader is transferring leadership: they must wait
    // for the transfer to end, then propose (once, both committed nothing).
    let transferring = [
        // From RAFT_SEED=30007469: the transfer hands over in the phase.
        Schedule {
            nodes: 3,
            seed: 0,
            ops: vec![Op::Run(639), Op::Transfer(2), Op::Partition(vec![0, 0, 1, 2, 1]), Op::Quiet(4, 301)],
        },
        // RAFT_SEED=30007473: the target is down when the transfer starts
        // (its `TimeoutNow` is lost) and restarts when the phase begins.
        Schedule {
            nodes: 3,
            seed: 8618390057330794543,
            ops: vec![
                Op::Propose(1),
                Op::IsolateFollower(4, 2376),
                Op::Disconnect(1),
                Op::DropRate(6),
                Op::Transfer(0),
                Op::Crash(1),
                Op::DropRate(17),
                Op::Run(334),
                Op::Run(1442),
                Op::Connect(2),
                Op::Run(796),
                Op::Run(1469),
                Op::Disconnect(4),
                Op::IsolateFollower(3, 2761),
                Op::Partition(vec![1, 2, 0, 1, 2]),
                Op::Crash(0),
                Op::Run(180),
                Op::Transfer(0),
                Op::Quiet(3, 636),
                Op::Read(1, 3),
            ],
        },
    ];
    for s in &transferring {
        let acked = s.check_or_panic().acked;
        assert!(acked > 0, "the quiet phase committed nothing: {s:?}");
    }
}
