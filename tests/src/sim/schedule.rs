//! Fault schedules for the quickcheck property tests: the operations, their
//! generation, shrinking and printing, how they drive a [`Cluster`], and the
//! quickcheck, seeded and regression runners.
//!
//! A property test defines its own schedule type (cluster size, simulator
//! seed, [`Op`]s drawn with its [`OpMix`], plus what is specific to it) and
//! implements [`Property`] for it; [`quickcheck()`] and [`seeded`] then run it.
//! Schedules print as Rust source, so a shrunk failure can be pasted into a
//! regression test.

use super::trace::{MsgSummary, fmt_instant};
use super::{Applied, Cluster, NetConfig, TraceEvent, TraceKind, for_each_seed, seeds, sim_addr};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use raft_core::{Bytes, Duration, LogIndex, MembershipChange, NodeId, Payload, ReadId, Role};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

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
    /// A quiet phase, in which the cluster can make progress: repair the
    /// network and restart crashed nodes, wait for a single leader in the
    /// newest term (and, if it is transferring leadership, for the transfer
    /// to end), propose this many commands (as `Propose` does), wait
    /// until that leader has applied its whole log (if it is deposed first,
    /// wait for the next leader and propose again; all this for at most
    /// 10 s), run this many milliseconds, then turn the loss, duplication,
    /// reordering and disk latency of before back on (partitions stay healed).
    Quiet(u8, u16),

    // ---- membership (issue 10); drawn only through `MemberMix` ----
    /// Start a new machine (the next id, an empty disk, joining; at most
    /// [`MAX_NODES`] in all) and ask every node that believes it leads to add
    /// it as a learner.
    AddNode,
    /// Ask every node that believes it leads to add a machine that is not a
    /// member of its configuration (the `k`-th, wrapping; e.g. one removed
    /// earlier) as a learner.
    AddLearner(u8),
    /// Ask every node that believes it leads to promote the `k`-th learner
    /// (wrapping) of its configuration.
    Promote(u8),
    /// Ask every node that believes it leads to remove the `k`-th member
    /// (wrapping) of its configuration.
    RemoveMember(u8),
    // ---- end of membership ----
    // ---- Leadership and reads: pre-vote, check-quorum, transfer, ReadIndex ----
    /// Cut one follower off (the `k`-th node, by id, of those that do not
    /// lead) for this many milliseconds, then reconnect it: with pre-vote
    /// it must come back without deposing anyone.
    IsolateFollower(u8, u16),
    /// Every node that believes it leads hands leadership to node `k`
    /// (refusals, e.g. `k` is the leader itself, are fine).
    Transfer(u8),
    /// Start this many linearizable reads at node `k` (a leader confirms
    /// them, a follower asks its leader). [`run_ops`] checks every read
    /// index it sees reported: it must cover every entry any node had
    /// applied when the read started.
    Read(u8, u8),
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
            Op::Quiet(k, ms) => write!(f, "Op::Quiet({k}, {ms})"),
            // ---- membership ----
            Op::AddNode => write!(f, "Op::AddNode"),
            Op::AddLearner(k) => write!(f, "Op::AddLearner({k})"),
            Op::Promote(k) => write!(f, "Op::Promote({k})"),
            Op::RemoveMember(k) => write!(f, "Op::RemoveMember({k})"),
            Op::IsolateFollower(k, ms) => write!(f, "Op::IsolateFollower({k}, {ms})"),
            Op::Transfer(k) => write!(f, "Op::Transfer({k})"),
            Op::Read(k, n) => write!(f, "Op::Read({k}, {n})"),
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
/// enabled), `IsolateFollower`, `Transfer`, `Read` (2) (if `leadership`),
/// then `Propose` (`propose_weight`). Then 1 to `quiet_phases`
/// [`Op::Quiet`] are inserted at random places, so that every schedule
/// gives the cluster a chance to acknowledge writes.
#[derive(Clone, Copy, Debug)]
pub struct OpMix {
    /// `Run` lasts 1 to this many milliseconds.
    pub max_run_ms: u32,
    /// Draw `DiskLatency`.
    pub disk_latency: bool,
    /// Draw `CrashAll`.
    pub crash_all: bool,
    /// Draw `IsolateFollower`, `Transfer` and `Read`.
    pub leadership: bool,
    /// How many draws out of the total are `Propose`.
    pub propose_weight: u32,
    /// `Propose` asks for 1 to this many commands.
    pub max_propose: u32,
    /// Insert 1 to this many quiet phases (none if 0); each proposes 1 to
    /// `max_propose` commands and lasts 300 to 1500 ms.
    pub quiet_phases: u32,
}

impl OpMix {
    /// Every operation: what [`Op::arbitrary`] draws from.
    pub const ALL: OpMix = OpMix {
        max_run_ms: 1500,
        disk_latency: true,
        crash_all: true,
        leadership: true,
        propose_weight: 5,
        max_propose: 8,
        quiet_phases: 2,
    };

    /// One operation.
    pub fn op(&self, g: &mut Gen) -> Op {
        let node = |g: &mut Gen| below(g, 5) as u8;
        let leadership = if self.leadership { 4 } else { 0 };
        let total = 17 + u32::from(self.disk_latency) + u32::from(self.crash_all) + leadership + self.propose_weight;
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
        } else if self.leadership && next(1) {
            Op::IsolateFollower(node(g), 1 + below(g, self.max_run_ms * 3) as u16)
        } else if self.leadership && next(1) {
            Op::Transfer(node(g))
        } else if self.leadership && next(2) {
            Op::Read(node(g), 1 + below(g, 4) as u8)
        } else {
            Op::Propose(1 + below(g, self.max_propose) as u8)
        }
    }

    /// A list of operations, as long as `Vec::<Op>::arbitrary` would draw,
    /// plus the quiet phases.
    pub fn ops(&self, g: &mut Gen) -> Vec<Op> {
        // `()` draws nothing, so this is exactly the length draw of `Vec::arbitrary`.
        let len = Vec::<()>::arbitrary(g).len();
        let mut ops: Vec<Op> = (0..len).map(|_| self.op(g)).collect();
        if self.quiet_phases > 0 {
            for _ in 0..1 + below(g, self.quiet_phases) {
                let at = below(g, ops.len() as u32 + 1) as usize;
                let writes = 1 + below(g, self.max_propose) as u8;
                ops.insert(at, Op::Quiet(writes, 300 + below(g, 1201) as u16));
            }
        }
        ops
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
            Op::IsolateFollower(k, ms) if *ms > 1 => Box::new([Op::IsolateFollower(*k, ms / 2)].into_iter()),
            _ => Box::new(std::iter::empty()),
        }
    }
}

// ---- membership (issue 10) ----

/// The most machines a schedule's [`Op::AddNode`]s bring the cluster to.
pub const MAX_NODES: usize = 8;

/// Membership operations to add to a schedule drawn with an [`OpMix`]
/// (which draws none, so that the schedules of tests without membership stay
/// what they were): [`MemberMix::sprinkle`] inserts some at random places.
#[derive(Clone, Copy, Debug)]
pub struct MemberMix {
    /// Insert 0 to this many membership operations.
    pub max_ops: u32,
}

impl MemberMix {
    /// One membership operation: `AddNode` (2), `AddLearner`, `Promote` (2),
    /// `RemoveMember` (2), on node numbers below [`MAX_NODES`].
    pub fn op(&self, g: &mut Gen) -> Op {
        let node = |g: &mut Gen| below(g, MAX_NODES as u32) as u8;
        match below(g, 7) {
            0 | 1 => Op::AddNode,
            2 => Op::AddLearner(node(g)),
            3 | 4 => Op::Promote(node(g)),
            _ => Op::RemoveMember(node(g)),
        }
    }

    /// Inserts 0 to `max_ops` membership operations into `ops` at random places.
    pub fn sprinkle(&self, g: &mut Gen, ops: &mut Vec<Op>) {
        for _ in 0..below(g, self.max_ops + 1) {
            let at = below(g, ops.len() as u32 + 1) as usize;
            let op = self.op(g);
            ops.insert(at, op);
        }
    }
}

/// Runs one membership operation (see [`Op::AddNode`] and the next ones):
/// every node that believes it leads is asked, every 10 ms, until one
/// accepts or 300 ms have passed; refusals are expected (no leader, a change
/// in progress, a learner behind...).
fn run_member_op(c: &mut Cluster, op: &Op) {
    if *op == Op::AddNode {
        if c.len() >= MAX_NODES {
            return;
        }
        c.add_node();
    }
    for _ in 0..30 {
        if ask_leaders(c, op) {
            return;
        }
        c.run_for(Duration::from_millis(10));
    }
}

/// Asks every node that believes it leads to make the change `op` stands
/// for; true if one accepted.
fn ask_leaders(c: &mut Cluster, op: &Op) -> bool {
    let mut accepted = false;
    let leaders: Vec<NodeId> = c.leaders().into_iter().map(|(l, _)| l).collect();
    for l in leaders {
        let Some(m) = c.membership(l).cloned() else { continue };
        let pick = |v: Vec<NodeId>, k: u8| (!v.is_empty()).then(|| v[usize::from(k) % v.len()]);
        let outsiders = c.ids().into_iter().filter(|&id| !m.contains(id)).collect();
        let change = match *op {
            Op::AddNode => c.ids().last().map(|&id| MembershipChange::AddLearner { id, addr: sim_addr(id) }),
            Op::AddLearner(k) => pick(outsiders, k).map(|id| MembershipChange::AddLearner { id, addr: sim_addr(id) }),
            Op::Promote(k) => pick(m.learners.iter().copied().collect(), k).map(|id| MembershipChange::Promote { id }),
            Op::RemoveMember(k) => pick(m.members(), k).map(|id| MembershipChange::Remove { id }),
            _ => unreachable!("not a membership operation: {op:?}"),
        };
        let Some(change) = change else { continue };
        accepted |= c.change_membership(l, change).is_ok();
    }
    accepted
}

// ---- end of membership ----

/// Node number `k` of a cluster of `n` (numbers wrap around).
pub fn node_id(n: usize, k: u8) -> NodeId {
    NodeId(u64::from(k) % n as u64 + 1)
}

/// Applies `ops` to the cluster in order, leaving `Op::Propose(k)` to
/// `propose(c, k)`. After every operation it checks the reads that
/// [`Op::Read`] started and [`Cluster::take_reads`] reports (none, if the
/// test installed a read hook): a read index below the largest index any
/// node had applied when the read started is a stale read, and fails the run.
///
/// Under `RAFT_SCHEDULE_TRACE=1` it prints the operations as Rust source,
/// then each operation as it starts and the trace as it happens, without
/// log replication messages and disk writes (`RAFT_SCHEDULE_TRACE=all`
/// prints those too), until the cluster is dropped: see [`trace_run`].
pub fn run_ops(c: &mut Cluster, ops: &[Op], mut propose: impl FnMut(&mut Cluster, u8)) {
    let mut reads = Reads::default();
    let traced = trace_run(c, ops);
    for op in ops {
        if traced {
            println!("t={} == {op:?}", fmt_instant(c.now()));
        }
        run_op(c, op, &mut propose, &mut reads);
        reads.check(c);
    }
}

/// The environment variable that turns on [`trace_run`].
pub const TRACE_VAR: &str = "RAFT_SCHEDULE_TRACE";

/// Under `RAFT_SCHEDULE_TRACE` (not `0`), prints `ops` and installs a trace
/// observer on `c` that prints its events: with `all`, every event; else
/// all but replication messages (appends, snapshots and their answers) and
/// disk writes. True if it did. For replaying one seed (`RAFT_SEED`).
pub fn trace_run(c: &mut Cluster, ops: &[Op]) -> bool {
    if !tracing() {
        return false;
    }
    let all = std::env::var_os(TRACE_VAR).is_some_and(|v| v == "all");
    println!("schedule ops: vec!{ops:?}");
    c.set_trace_observer(Some(Box::new(move |e: &TraceEvent| {
        let replication = |m: &MsgSummary| !matches!(m, MsgSummary::RequestVote { .. } | MsgSummary::Vote { .. });
        let quiet = match &e.kind {
            TraceKind::Deliver { msg, .. } | TraceKind::Drop { msg, .. } => replication(msg),
            TraceKind::Persist { .. } | TraceKind::Durable { .. } => true,
            _ => false,
        };
        if all || !quiet {
            println!("{e}");
        }
    })));
    true
}

/// Whether `RAFT_SCHEDULE_TRACE` is set (and not `0`).
fn tracing() -> bool {
    std::env::var_os(TRACE_VAR).is_some_and(|v| v != "0")
}

/// The reads [`Op::Read`] started and the least read index each may get.
///
/// Linearizability of a read comes down to its read index: the state
/// machine serves it once it has applied that index, so the index must
/// cover every write completed before the read began. Every entry any node
/// has applied is committed, and a leader that confirmed its leadership
/// after the read began has committed all of them; so a read index below
/// the largest index applied anywhere at the start is a stale read.
#[derive(Debug, Default)]
struct Reads {
    next: u64,
    /// `(node, lifetime, read id)` -> the largest index applied anywhere when it started.
    started: HashMap<(NodeId, u32, ReadId), LogIndex>,
}

impl Reads {
    fn start(&mut self, c: &mut Cluster, node: NodeId, count: u8) {
        for _ in 0..count {
            self.next += 1;
            let id = ReadId(self.next);
            let floor = c.max_applied();
            if c.read_index(node, id).is_ok() {
                self.started.insert((node, c.lifetime(node), id), floor);
            }
        }
    }

    fn check(&mut self, c: &mut Cluster) {
        for done in c.take_reads() {
            let Some(floor) = self.started.remove(&(done.node, done.lifetime, done.id)) else { continue };
            if let Ok(index) = done.result
                && index < floor
            {
                c.fail(format_args!(
                    "stale read: {} read {:?} got read index {index}, but index {floor} was applied before it started",
                    done.node, done.id
                ));
            }
        }
    }
}

fn run_op(c: &mut Cluster, op: &Op, propose: &mut impl FnMut(&mut Cluster, u8), reads: &mut Reads) {
    let n = c.len();
    let id = |k: u8| node_id(n, k);
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
        Op::Quiet(k, ms) => {
            let (net, disk) = (c.net_config_mut().clone(), c.disk_config_mut().clone());
            repair(c);
            // Until a leader has applied what it holds (it may have a
            // backlog to replicate first), for at most 10 s. A leader
            // deposed first (the faults before can still do that: a
            // check-quorum window spanning them, a restarted node with a
            // longer stale log) loses the commands; the next leader gets
            // them again, as a client would retry. A leader in the middle
            // of a leadership transfer (an `Op::Transfer` just before)
            // refuses proposals and names the target: wait for the transfer
            // to end (the target is elected, or it times out), then
            // propose, as a client told to retry would.
            let deadline = c.now() + Duration::from_secs(10);
            while c.now() < deadline {
                c.run_until(settled, deadline.saturating_since(c.now()));
                let Some(&(leader, term)) = c.leaders().first() else { break };
                let lifetime = c.lifetime(leader);
                let leads = |c: &Cluster| {
                    c.lifetime(leader) == lifetime
                        && c.node(leader).is_some_and(|n| n.term() == term && n.role() == Role::Leader)
                };
                if c.node(leader).is_some_and(|n| n.transfer_target().is_some()) {
                    c.note("quiet phase: the leader is transferring leadership; waiting for the transfer to end");
                    let transferring = |c: &Cluster| c.node(leader).is_some_and(|n| n.transfer_target().is_some());
                    c.run_until(|c| !leads(c) || !transferring(c), deadline.saturating_since(c.now()));
                    continue;
                }
                propose(c, *k);
                let last = c.node(leader).map_or(LogIndex(0), |n| n.last_log_index());
                let applied = |c: &Cluster| c.node(leader).is_some_and(|n| n.last_applied() >= last);
                c.run_until(|c| !leads(c) || applied(c), deadline.saturating_since(c.now()));
                if leads(c) && applied(c) {
                    break;
                }
                if c.now() < deadline {
                    c.note("quiet phase: the leader was deposed before applying; proposing again");
                }
            }
            c.run_for(Duration::from_millis(u64::from(*ms)));
            *c.net_config_mut() = net;
            *c.disk_config_mut() = disk;
            c.note("quiet phase over");
        }
        Op::IsolateFollower(k, ms) => {
            let leaders: Vec<NodeId> = c.leaders().into_iter().map(|(l, _)| l).collect();
            let followers: Vec<NodeId> = c.ids().into_iter().filter(|i| !leaders.contains(i)).collect();
            if let Some(&f) = followers.get(usize::from(*k) % followers.len().max(1)) {
                c.disconnect(f);
                c.run_for(Duration::from_millis(u64::from(*ms)));
                c.connect(f);
            }
        }
        Op::Transfer(k) => {
            for (leader, _) in c.leaders() {
                let _ = c.transfer_leadership(leader, id(*k));
            }
        }
        Op::Read(k, count) => reads.start(c, id(*k), *count),
        Op::AddNode | Op::AddLearner(_) | Op::Promote(_) | Op::RemoveMember(_) => run_member_op(c, op),
    }
}

/// One node leads, and no live node has a newer term: not a stale leader
/// that a partition left behind.
fn settled(c: &Cluster) -> bool {
    match c.leaders()[..] {
        [(_, term)] => c.ids().into_iter().filter_map(|id| c.node(id)).all(|n| n.term() <= term),
        _ => false,
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

/// What one schedule did up to its final faults: what
/// [`Property::check`] reports, and what `RAFT_SCHEDULE_STATS=1` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Operations in the schedule.
    pub ops: usize,
    /// Simulated time the operations took.
    pub sim_time: Duration,
    /// Writes acknowledged to their clients (applied by the node that
    /// accepted them) while the operations ran.
    pub acked: usize,
}

/// The environment variable that turns on [`report`].
pub const STATS_VAR: &str = "RAFT_SCHEDULE_STATS";

/// Under `RAFT_SCHEDULE_STATS=1`, prints one line per schedule and the
/// distribution (minimum, median, maximum) of operations, simulated time
/// and acknowledged writes, with how many schedules acknowledged none.
pub fn report(name: &str, runs: &[Summary]) {
    if std::env::var_os(STATS_VAR).is_none_or(|v| v == "0") || runs.is_empty() {
        return;
    }
    for (k, r) in runs.iter().enumerate() {
        println!(
            "{name} #{k}: {} ops, {} ms simulated, {} acknowledged writes",
            r.ops,
            r.sim_time.as_millis(),
            r.acked
        );
    }
    fn spread(mut v: Vec<u64>) -> String {
        v.sort_unstable();
        format!("{}/{}/{}", v[0], v[v.len() / 2], v[v.len() - 1])
    }
    println!(
        "{name}: {} schedules; min/median/max: {} ops, {} ms simulated, {} acknowledged writes; {} acknowledged none",
        runs.len(),
        spread(runs.iter().map(|r| r.ops as u64).collect()),
        spread(runs.iter().map(|r| r.sim_time.as_millis()).collect()),
        spread(runs.iter().map(|r| r.acked as u64).collect()),
        runs.iter().filter(|r| r.acked == 0).count()
    );
}

/// Writes proposed and acknowledged during a run: see [`track_acks`].
#[derive(Debug, Default)]
pub struct Acks {
    /// `(node, lifetime, index)` -> the write a node accepted there.
    pub proposed: HashMap<(NodeId, u32, LogIndex), Bytes>,
    /// Writes the accepting node applied (acknowledged to their clients), in order.
    pub acked: Vec<(LogIndex, Bytes)>,
}

/// Installs an apply hook on `c` that moves a proposed write to
/// [`Acks::acked`] once the node that accepted it (in the same lifetime)
/// applies it at its index. [`propose_at_leaders`] records the proposals.
pub fn track_acks(c: &mut Cluster) -> Rc<RefCell<Acks>> {
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

/// Proposes `k` writes made by `write` at every node that believes it
/// leads, recording the accepted ones in `acks`.
pub fn propose_at_leaders(c: &mut Cluster, k: u8, acks: &RefCell<Acks>, mut write: impl FnMut() -> Bytes) {
    let leaders: Vec<NodeId> = c.leaders().into_iter().map(|(l, _)| l).collect();
    for l in leaders {
        for _ in 0..k {
            let w = write();
            match c.propose(l, w.clone()) {
                Ok(index) => {
                    let lifetime = c.lifetime(l);
                    acks.borrow_mut().proposed.insert((l, lifetime, index), w);
                }
                Err(e) if tracing() => println!("t={} n{l} refused a proposal: {e}", fmt_instant(c.now())),
                Err(_) => {}
            }
        }
    }
}

/// A schedule type that a property test generates, runs and checks.
pub trait Property: Arbitrary + fmt::Debug {
    /// Quickcheck's size: the longest schedule has this many operations.
    const SIZE: usize;

    /// Runs the schedule and checks the property; `Err` says what failed.
    /// Safety violations panic inside the simulator (with seed and trace).
    fn check(&self) -> Result<Summary, String>;

    /// The schedule generated from `seed` alone.
    fn from_seed(seed: u64) -> Self {
        Self::arbitrary(&mut Gen::from_size_and_seed(Self::SIZE, seed))
    }

    /// [`Property::check`], panicking with the schedule on failure.
    fn check_or_panic(&self) -> Summary {
        match self.check() {
            Ok(summary) => summary,
            Err(e) => panic!("{e}\nschedule: {self:?}"),
        }
    }
}

thread_local! {
    /// What the schedules quickcheck ran on this thread reported.
    static QUICKCHECKED: RefCell<Vec<Summary>> = const { RefCell::new(Vec::new()) };
}

fn passes<P: Property>(s: P) -> TestResult {
    match s.check() {
        Ok(summary) => {
            QUICKCHECKED.with(|q| q.borrow_mut().push(summary));
            TestResult::passed()
        }
        Err(e) => TestResult::error(e),
    }
}

/// Quickcheck with a seeded generator (`RAFT_QC_SEED`, else `default_seed`)
/// so CI is reproducible, over as many schedules as [`seeds`] gives; a
/// failure prints the shrunk schedule. Does nothing under `RAFT_SEED` (see
/// [`seeded`]). Returns what each schedule reported (see [`report`]).
pub fn quickcheck<P: Property>(default_seed: u64, default_count: u64) -> Vec<Summary> {
    if std::env::var("RAFT_SEED").is_ok() {
        return Vec::new(); // replaying one seed: see `seeded`
    }
    let seed = std::env::var("RAFT_QC_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(default_seed);
    let n = seeds(0, default_count).len() as u64;
    QUICKCHECKED.with(|q| q.borrow_mut().clear());
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(P::SIZE, seed))
        .tests(n)
        .max_tests(n)
        .quickcheck(passes::<P> as fn(P) -> TestResult);
    let runs = QUICKCHECKED.with(|q| std::mem::take(&mut *q.borrow_mut()));
    super::soak_report(runs.len());
    report(&format!("{} (quickcheck)", std::any::type_name::<P>()), &runs);
    runs
}

/// Checks schedule [`Property::from_seed`]`(seed)` for every seed of
/// [`for_each_seed`]`(base, default_count)`, so `RAFT_SEED=k` replays one
/// exactly. Returns what each schedule reported (see [`report`]). Under
/// `RAFT_SCHEDULE_TRACE` it prints each schedule as Rust source first.
pub fn seeded<P: Property>(base: u64, default_count: u64) -> Vec<Summary> {
    let mut runs = Vec::new();
    for_each_seed(base, default_count, |seed| {
        let schedule = P::from_seed(seed);
        if tracing() {
            println!("RAFT_SEED={seed}: {schedule:?}");
        }
        runs.push(schedule.check_or_panic());
    });
    report(&format!("{} (seeded from {base})", std::any::type_name::<P>()), &runs);
    runs
}
