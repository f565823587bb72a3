//! [`Cluster`]: nodes, network, disks and checker driven in virtual time.

use super::adversary::{Adversary, AdversaryStats, Forgery, PacketKind};
use super::clock::Clock;
use super::disk::{Disk, DiskConfig, DiskStats};
use super::invariants::{Checker, Violation};
use super::network::{MsgKind, MsgStats, NetConfig, Network};
use super::rng::{SimRng, mix64};
use super::trace::{DropReason, MsgSummary, Trace, TraceKind, WriteSummary};
use super::transport::{FrameStats, Transport, TransportConfig, Wire};
use raft_core::codec::{decode_message, encode_message};
use raft_core::{
    Bytes, ChangeError, CompactError, Config, Duration, Entry, Event, Instant, LogIndex, MembershipChange, Node,
    NodeId, Outgoing, Output, PersistToken, ProposeError, ReadError, ReadId, Restored, Role, Snapshot, SnapshotMeta,
    Term, TransferError, TransferOutcome,
};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

/// How to build a [`Cluster`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes, named `n1..=nN` (`NodeId(1)..=NodeId(N)`), at least
    /// one. They bootstrap the cluster: each starts with all of them as
    /// `Config::members`. Nodes added later ([`Cluster::add_node`]) join empty.
    pub nodes: usize,
    /// The one seed every random choice of the run derives from.
    pub seed: u64,
    /// Network faults at start.
    pub net: NetConfig,
    /// Disk timing at start.
    pub disk: DiskConfig,
    /// Called on every node's [`Config`] (built with `Config::new` and a
    /// per-node, per-lifetime seed) before the node starts, e.g. to change timeouts.
    pub configure: fn(&mut Config),
    /// How many trace events the ring buffer keeps.
    pub trace_capacity: usize,
    /// How many trace lines a failure report shows.
    pub report_lines: usize,
    /// Bound on clock drift: each node's clock runs at a rate drawn from the
    /// seed in `[-clock_drift_ppm, +clock_drift_ppm]` parts per million of
    /// virtual time (see [`super::clock`]). 0 (the default): every clock is exact.
    pub clock_drift_ppm: u64,
    /// `None` (the default): messages go from node to node as encoded
    /// bytes. `Some`: they travel as frames of a transport layer, with an
    /// optional adversary on the network (see [`super::transport`]).
    pub transport: Option<TransportConfig>,
}

impl SimConfig {
    /// `nodes` nodes with default timeouts, a reliable 1-5 ms network and a
    /// 0-2 ms disk.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            net: NetConfig::reliable(),
            disk: DiskConfig::default(),
            configure: |_| {},
            trace_capacity: 1024,
            report_lines: 60,
            clock_drift_ppm: 0,
            transport: None,
        }
    }
}

/// A leader election seen during the run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Election {
    /// When the node reported itself leader.
    pub at: Instant,
    /// The new leader.
    pub leader: NodeId,
    /// Its term.
    pub term: Term,
}

/// Counters of one node over all its lifetimes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStats {
    /// The node.
    pub id: NodeId,
    /// Messages it sent.
    pub msgs: MsgStats,
    /// Its disk.
    pub disk: DiskStats,
    /// Times it was restarted.
    pub restarts: u32,
}

/// A snapshot of every counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Per node, in id order.
    pub nodes: Vec<NodeStats>,
}

impl Stats {
    /// Message counters summed over all nodes.
    pub fn total(&self) -> MsgStats {
        let mut t = MsgStats::default();
        for n in &self.nodes {
            t.add(&n.msgs);
        }
        t
    }

    /// The counters of `id`.
    pub fn node(&self, id: NodeId) -> &NodeStats {
        &self.nodes[(id.0 - 1) as usize]
    }
}

/// What a node's state machine is told to do.
#[derive(Copy, Clone, Debug)]
pub enum Applied<'a> {
    /// Apply these committed entries (contiguous, continuing the stream).
    Entries(&'a [Entry]),
    /// Replace the state with this snapshot; the stream continues after it.
    Snapshot(&'a Snapshot),
}

/// Called for every apply batch and snapshot restore: time, node, lifetime
/// (0 for the first), and what to apply. Each lifetime's stream starts at
/// index 1 (or after a restored snapshot).
pub type ApplyHook = Box<dyn FnMut(Instant, NodeId, u32, Applied<'_>)>;

/// The host side of snapshots: called at the end of every step in which a
/// node applied entries, restored a snapshot or emitted
/// `Event::SnapshotWanted`, with the time, node, lifetime and, if the core's
/// policy asked for a snapshot in that step, the index it reported. Returning
/// `Some((index, data))` hands that snapshot to [`Node::compact`] at once (as
/// a host's apply loop would); a refused compaction is a failure.
pub type CompactHook = Box<dyn FnMut(Instant, NodeId, u32, Option<LogIndex>) -> Option<(LogIndex, Bytes)>>;

/// The outcome of one [`Cluster::read_index`] call, as the node reported it
/// in an [`Output::Read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadDone {
    /// Virtual time of the report.
    pub at: Instant,
    /// The node that was asked.
    pub node: NodeId,
    /// Its lifetime (a crash loses the reads of a lifetime).
    pub lifetime: u32,
    /// The id given to `read_index`.
    pub id: ReadId,
    /// The read index, or why there is none.
    pub result: Result<LogIndex, ReadError>,
}

/// Called for every [`Output::Read`] (see [`Cluster::set_read_hook`]).
pub type ReadHook = Box<dyn FnMut(&ReadDone)>;

/// A leadership transfer that ended ([`Event::TransferFinished`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TransferDone {
    /// Virtual time of the report.
    pub at: Instant,
    /// The leader that started the transfer.
    pub from: NodeId,
    /// Its target.
    pub to: NodeId,
    /// How it ended.
    pub outcome: TransferOutcome,
}

/// Called after every simulator step with the whole cluster (read-only), e.g.
/// to check a bound on every node's state; it may panic via [`Cluster::fail`].
pub type StepObserver = Box<dyn FnMut(&Cluster)>;

enum Pending {
    Deliver {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
        sent: Instant,
    },
    /// A transport-layer packet, claimed to come from `from`; `forged` if
    /// the adversary injected it.
    Packet {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
        kind: PacketKind,
        forged: Option<Forgery>,
        sent: Instant,
    },
    DiskDone {
        node: usize,
        lifetime: u32,
        token: PersistToken,
    },
}

struct Scheduled {
    at: Instant,
    seq: u64,
    what: Pending,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` pops the earliest (then lowest sequence number).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub(super) struct Slot {
    pub(super) id: NodeId,
    pub(super) node: Option<Node>,
    pub(super) lifetime: u32,
    pub(super) disk: Disk,
    /// Entries applied in the current (or, while crashed, the last) lifetime,
    /// in increasing index order (a restored snapshot leaves a gap).
    pub(super) applied: Vec<Entry>,
    /// The node's clock (kept across restarts, like a machine's).
    pub(super) clock: Clock,
}

impl Slot {
    /// Slot `i` (node `n{i+1}`), never started, its clock's rate drawn from `rng`.
    fn new(i: usize, rng: &mut SimRng, drift: i64) -> Slot {
        let ppm = if drift == 0 { 0 } else { rng.between(0, 2 * drift as u64) as i64 - drift };
        Slot {
            id: NodeId(i as u64 + 1),
            node: None,
            lifetime: 0,
            disk: Disk::new(),
            applied: Vec::new(),
            clock: Clock::new(ppm),
        }
    }

    pub(super) fn applied_at(&self, index: LogIndex) -> Option<&Entry> {
        let k = self.applied.binary_search_by_key(&index, |e| e.index).ok()?;
        self.applied.get(k)
    }
}

enum Next {
    Queue,
    Timer(usize),
}

/// Steps at one instant after which the simulator declares a livelock.
const MAX_STEPS_PER_INSTANT: u64 = 1_000_000;

/// A simulated cluster: `n` raft-core nodes, a network, a disk per node, an
/// invariant checker and a trace, all driven by one seed in virtual time.
///
/// Nothing happens between calls: time advances only inside [`Cluster::run_for`],
/// [`Cluster::run_until`] and the MIT helpers. Each step jumps to the earliest
/// of every live node's timer, the next message delivery and the next disk
/// completion (queued events before timers at the same instant; ties by
/// sequence number, timers by node id). After every input the node's outputs
/// are drained and the invariants checked; a violation panics with the seed,
/// the invariant, its values and the trace tail.
pub struct Cluster {
    pub(super) seed: u64,
    pub(super) now: Instant,
    configure: fn(&mut Config),
    pub(super) report_lines: usize,
    pub(super) slots: Vec<Slot>,
    /// The nodes `n1..=n{bootstrap}` bootstrap the cluster; later ones join.
    bootstrap: usize,
    clock_rng: SimRng,
    clock_drift_ppm: i64,
    pub(super) net: Network,
    pub(super) disk_cfg: DiskConfig,
    disk_rng: SimRng,
    pub(super) helper_rng: SimRng,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    pub(super) checker: Checker,
    pub(super) trace: Trace,
    pub(super) apply_hook: Option<ApplyHook>,
    read_hook: Option<ReadHook>,
    /// Read outcomes not yet taken (only while no read hook is installed).
    reads_done: Vec<ReadDone>,
    transfers_done: Vec<TransferDone>,
    compact_hook: Option<CompactHook>,
    step_observer: Option<StepObserver>,
    pub(super) elections: Vec<Election>,
    scratch: Vec<Output>,
    pub(super) steps: u64,
    steps_at_instant: u64,
    transport: Option<Transport>,
    adversary: Option<Adversary>,
    /// `Some` in report mode: violations are recorded here instead of panicking.
    pub(super) violations: RefCell<Option<Vec<Violation>>>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.slots.len())
            .field("in_flight", &self.queue.len())
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts `cfg.nodes` fresh nodes at time zero, all connected.
    ///
    /// Panics if `cfg.nodes` is 0 or the configured node `Config` is invalid.
    pub fn new(cfg: SimConfig) -> Cluster {
        assert!(cfg.nodes >= 1, "a cluster needs at least one node");
        let n = cfg.nodes;
        let mut clock_rng = SimRng::stream(cfg.seed, 4);
        let drift = i64::try_from(cfg.clock_drift_ppm.min(999_999)).unwrap_or(0);
        let slots = (0..n).map(|i| Slot::new(i, &mut clock_rng, drift)).collect();
        let mut c = Cluster {
            seed: cfg.seed,
            now: Instant::ZERO,
            configure: cfg.configure,
            report_lines: cfg.report_lines,
            slots,
            bootstrap: n,
            clock_rng,
            clock_drift_ppm: drift,
            net: Network::new(n, cfg.net, SimRng::stream(cfg.seed, 1)),
            disk_cfg: cfg.disk,
            disk_rng: SimRng::stream(cfg.seed, 2),
            helper_rng: SimRng::stream(cfg.seed, 3),
            queue: BinaryHeap::new(),
            seq: 0,
            checker: Checker::new(n),
            trace: Trace::new(cfg.trace_capacity),
            apply_hook: None,
            read_hook: None,
            reads_done: Vec::new(),
            transfers_done: Vec::new(),
            compact_hook: None,
            step_observer: None,
            elections: Vec::new(),
            scratch: Vec::new(),
            steps: 0,
            steps_at_instant: 0,
            transport: cfg.transport.as_ref().map(|t| Transport::new(t.mode, cfg.seed)),
            adversary: cfg.transport.and_then(|t| t.adversary).map(|a| Adversary::new(a, SimRng::stream(cfg.seed, 6))),
            violations: RefCell::new(None),
        };
        for i in 0..n {
            c.start_node(i, Restored::fresh());
        }
        c
    }

    // ---- faults ----

    /// MIT `disconnect`: the node's messages, in both directions, are dropped
    /// (also those already in flight when they arrive). It keeps running.
    pub fn disconnect(&mut self, id: NodeId) {
        let i = self.idx(id);
        self.net.set_connected(i, false);
        self.trace.push(self.now, TraceKind::Disconnect { node: id });
    }

    /// MIT `connect`: undoes [`Cluster::disconnect`].
    pub fn connect(&mut self, id: NodeId) {
        let i = self.idx(id);
        self.net.set_connected(i, true);
        self.trace.push(self.now, TraceKind::Connect { node: id });
    }

    /// Splits the cluster: nodes talk only within their group; nodes not
    /// listed are isolated. Replaces any earlier partition.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let idx: Vec<Vec<usize>> = groups.iter().map(|g| g.iter().map(|&id| self.idx(id)).collect()).collect();
        self.net.partition(&idx);
        let groups = groups.iter().map(|g| g.to_vec()).collect();
        self.trace.push(self.now, TraceKind::Partition { groups });
    }

    /// Drops every message from `from` to `to` (one direction) until [`Cluster::heal`].
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        let (a, b) = (self.idx(from), self.idx(to));
        self.net.set_link(a, b, false);
        self.trace.push(self.now, TraceKind::CutLink { from, to });
    }

    /// Full connectivity: no partition, no cut link, every node connected.
    /// Crashed nodes stay crashed.
    pub fn heal(&mut self) {
        self.net.heal();
        self.trace.push(self.now, TraceKind::Heal);
    }

    /// Crashes the node: its in-memory state is dropped, every write not yet
    /// durable is lost, and messages reaching it while down are dropped.
    /// Its connected flag is unchanged. No-op if already down.
    pub fn crash(&mut self, id: NodeId) {
        let i = self.idx(id);
        let slot = &mut self.slots[i];
        if slot.node.take().is_none() {
            return;
        }
        if let Some(t) = self.transport.as_mut() {
            t.crash(i);
        }
        let lost_writes = slot.disk.crash();
        self.trace.push(self.now, TraceKind::Crash { node: id, lost_writes });
    }

    /// Restarts the node from exactly its durable state, with a fresh
    /// per-lifetime seed; its apply stream restarts at index 1. A live node
    /// is crashed first.
    pub fn restart(&mut self, id: NodeId) {
        let i = self.idx(id);
        self.crash(id);
        let slot = &mut self.slots[i];
        slot.lifetime += 1;
        slot.applied.clear();
        let restored = slot.disk.restored();
        let (term, log_len) = (restored.hard_state.term, restored.entries.len() as u64);
        let lifetime = slot.lifetime;
        self.checker.on_restart(i);
        self.trace.push(self.now, TraceKind::Restart { node: id, lifetime, term, log_len });
        self.start_node(i, restored);
    }

    /// Adds a node with the next id (`n{len+1}`), an empty disk and an empty
    /// `Config::members`: it is no member yet, never campaigns, and waits to
    /// be contacted by a leader that added it ([`Cluster::change_membership`]).
    /// It is connected, in group 0 of any partition in force. Returns its id.
    pub fn add_node(&mut self) -> NodeId {
        let i = self.slots.len();
        let slot = Slot::new(i, &mut self.clock_rng, self.clock_drift_ppm);
        let id = slot.id;
        self.slots.push(slot);
        let k = self.net.add_node();
        debug_assert_eq!(k, i);
        self.checker.add_node();
        self.trace.push(self.now, TraceKind::AddNode { node: id });
        self.start_node(i, Restored::fresh());
        id
    }

    fn start_node(&mut self, i: usize, restored: Restored) {
        // Bootstrap nodes start with the initial configuration (the log
        // governs once it holds one); added nodes start empty, as joining.
        let members: Vec<NodeId> =
            if i < self.bootstrap { (1..=self.bootstrap as u64).map(NodeId).collect() } else { Vec::new() };
        let slot = &mut self.slots[i];
        let mut config = Config::new(NodeId(i as u64 + 1), members);
        config.seed = mix64(self.seed ^ mix64((i as u64 + 1) << 32 | u64::from(slot.lifetime)));
        (self.configure)(&mut config);
        let lifetime = slot.lifetime;
        match Node::new(config, restored, slot.clock.local(self.now)) {
            Ok(node) => {
                slot.node = Some(node);
                if let Some(t) = self.transport.as_mut() {
                    t.start(i, lifetime);
                }
            }
            Err(e) => self.fail(format_args!("Node::new failed for n{}: {e}", i + 1)),
        }
        self.drain(i);
    }

    // ---- inputs ----

    /// Proposes `command` at the node (it must lead to accept it). A crashed
    /// node refuses with `NotLeader { leader_hint: None }`.
    pub fn propose(&mut self, id: NodeId, command: impl Into<Bytes>) -> Result<LogIndex, ProposeError> {
        let i = self.idx(id);
        let now = self.local_now(i);
        let Some(node) = self.slots[i].node.as_mut() else {
            return Err(ProposeError::NotLeader { leader_hint: None });
        };
        let r = node.propose(now, command);
        self.trace.push(self.now, TraceKind::Propose { node: id, index: r.as_ref().ok().copied() });
        self.steps += 1;
        self.drain(i);
        r
    }

    /// Proposes every command at the node in one step, as a host that
    /// batches its clients' requests would: the node then writes them in one
    /// `Persist` and replicates them in as few messages as it can. Returns
    /// the index of the last command, or the first refusal (the commands
    /// before it stay proposed).
    pub fn propose_batch(
        &mut self,
        id: NodeId,
        commands: impl IntoIterator<Item = Bytes>,
    ) -> Result<LogIndex, ProposeError> {
        let i = self.idx(id);
        let now = self.local_now(i);
        let Some(node) = self.slots[i].node.as_mut() else {
            return Err(ProposeError::NotLeader { leader_hint: None });
        };
        let mut r = match node.role() {
            Role::Leader => Ok(node.last_log_index()), // an empty batch
            _ => Err(ProposeError::NotLeader { leader_hint: node.leader() }),
        };
        for command in commands {
            r = node.propose(now, command);
            self.trace.push(self.now, TraceKind::Propose { node: id, index: r.as_ref().ok().copied() });
            if r.is_err() {
                break;
            }
        }
        self.steps += 1;
        self.drain(i);
        r
    }

    /// Hands the node's host snapshot (`data`, covering up to `index`) to
    /// [`Node::compact`]. A crashed node refuses with `NotApplied`.
    pub fn compact(&mut self, id: NodeId, index: LogIndex, data: impl Into<Bytes>) -> Result<(), CompactError> {
        let i = self.idx(id);
        let now = self.local_now(i);
        let Some(node) = self.slots[i].node.as_mut() else {
            return Err(CompactError::NotApplied { index, applied: LogIndex(0) });
        };
        let r = node.compact(now, index, data);
        self.trace.push(self.now, TraceKind::Compact { node: id, index, ok: r.is_ok() });
        self.steps += 1;
        self.drain(i);
        r
    }

    /// Starts a linearizable read at the node ([`Node::read_index`]); its
    /// outcome goes to the read hook ([`Cluster::set_read_hook`]) or, without
    /// one, to [`Cluster::take_reads`]. A crashed node refuses with
    /// `NotLeader { leader_hint: None }`.
    pub fn read_index(&mut self, id: NodeId, read: ReadId) -> Result<(), ReadError> {
        let i = self.idx(id);
        let now = self.local_now(i);
        let Some(node) = self.slots[i].node.as_mut() else {
            return Err(ReadError::NotLeader { leader_hint: None });
        };
        let r = node.read_index(now, read);
        let refused = r.as_ref().err().map(ToString::to_string);
        self.trace.push(self.now, TraceKind::ReadStart { node: id, id: read.0, refused });
        self.steps += 1;
        self.drain(i);
        r
    }

    /// Asks the node, which must lead, to hand leadership to `to`
    /// ([`Node::transfer_leadership`]); the end is traced and listed by
    /// [`Cluster::transfers`]. A crashed node refuses with `NotLeader`.
    pub fn transfer_leadership(&mut self, id: NodeId, to: NodeId) -> Result<(), TransferError> {
        let i = self.idx(id);
        let now = self.local_now(i);
        let Some(node) = self.slots[i].node.as_mut() else {
            return Err(TransferError::NotLeader { leader_hint: None });
        };
        let r = node.transfer_leadership(now, to);
        let refused = r.as_ref().err().map(ToString::to_string);
        self.trace.push(self.now, TraceKind::TransferStart { node: id, to, refused });
        self.steps += 1;
        self.drain(i);
        r
    }

    /// Asks the node, which must lead, to change the configuration
    /// ([`Node::change_membership`]). Returns the index of the configuration
    /// entry. A crashed node refuses with `NotLeader`.
    pub fn change_membership(&mut self, id: NodeId, change: MembershipChange) -> Result<LogIndex, ChangeError> {
        let i = self.idx(id);
        let now = self.local_now(i);
        let Some(node) = self.slots[i].node.as_mut() else {
            return Err(ChangeError::NotLeader { leader_hint: None });
        };
        let what = format!("{change:?}");
        let r = node.change_membership(now, change);
        let result = r.as_ref().copied().map_err(ToString::to_string);
        self.trace.push(self.now, TraceKind::Change { node: id, change: what, result });
        self.steps += 1;
        self.drain(i);
        r
    }

    /// From now on, the node's clock runs at `ppm` parts per million off
    /// virtual time (e.g. `500_000`: 1.5 times as fast). Its local time stays
    /// continuous. Panics below [`super::clock::MIN_PPM`].
    pub fn set_clock_rate(&mut self, id: NodeId, ppm: i64) {
        let i = self.idx(id);
        let now = self.now;
        self.slots[i].clock.set_rate(now, ppm);
        self.trace.push(now, TraceKind::ClockRate { node: id, ppm });
    }

    /// The node's local time now (what its host passes as `now`).
    pub fn local_time(&self, id: NodeId) -> Instant {
        self.local_now(self.idx(id))
    }

    /// The node's clock rate in parts per million off virtual time.
    pub fn clock_rate(&self, id: NodeId) -> i64 {
        self.slots[self.idx(id)].clock.ppm()
    }

    pub(super) fn local_now(&self, i: usize) -> Instant {
        self.slots[i].clock.local(self.now)
    }

    /// Installs the callback that receives every read outcome (replacing
    /// [`Cluster::take_reads`]'s queue).
    pub fn set_read_hook(&mut self, hook: Option<ReadHook>) {
        self.read_hook = hook;
    }

    /// Takes the read outcomes reported since the last call (while no read
    /// hook is installed), oldest first.
    pub fn take_reads(&mut self) -> Vec<ReadDone> {
        std::mem::take(&mut self.reads_done)
    }

    /// Every leadership transfer that ended, in order.
    pub fn transfers(&self) -> &[TransferDone] {
        &self.transfers_done
    }

    fn read_done(&mut self, i: usize, id: ReadId, result: Result<LogIndex, ReadError>) {
        let (node, lifetime) = (self.slots[i].id, self.slots[i].lifetime);
        let error = result.as_ref().err().map(ToString::to_string);
        let index = result.as_ref().ok().copied();
        self.trace.push(self.now, TraceKind::Read { node, id: id.0, index, error });
        let done = ReadDone { at: self.now, node, lifetime, id, result };
        match self.read_hook.as_mut() {
            Some(hook) => hook(&done),
            None => self.reads_done.push(done),
        }
    }

    fn transfer_finished(&mut self, i: usize, to: NodeId, outcome: TransferOutcome) {
        let from = self.slots[i].id;
        self.trace.push(self.now, TraceKind::TransferEnd { node: from, to, outcome });
        self.transfers_done.push(TransferDone { at: self.now, from, to, outcome });
    }

    /// Installs the host's snapshot taker (see [`CompactHook`]).
    pub fn set_compact_hook(&mut self, hook: Option<CompactHook>) {
        self.compact_hook = hook;
    }

    /// Installs a check run after every step (see [`StepObserver`]).
    pub fn set_step_observer(&mut self, observer: Option<StepObserver>) {
        self.step_observer = observer;
    }

    fn host_compact(&mut self, i: usize, wanted: Option<LogIndex>) {
        let (id, lifetime) = (self.slots[i].id, self.slots[i].lifetime);
        let Some(hook) = self.compact_hook.as_mut() else {
            return;
        };
        let Some((index, data)) = hook(self.now, id, lifetime, wanted) else {
            return;
        };
        if let Err(e) = self.compact(id, index, data) {
            self.fail(format_args!("n{id} refused the host's snapshot at i{index}: {e}"));
        }
    }

    // ---- time ----

    fn next_event(&self) -> Option<(Instant, Next)> {
        let mut best: Option<(Instant, Next)> = self.queue.peek().map(|s| (s.at, Next::Queue));
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(t) = s.node.as_ref().and_then(Node::poll_timeout).map(|t| s.clock.virtual_at(t))
                && best.as_ref().is_none_or(|(b, _)| t < *b)
            {
                best = Some((t, Next::Timer(i)));
            }
        }
        best
    }

    /// Runs the next event if it is due at or before `limit`. Returns false
    /// (and does nothing) otherwise.
    fn step_until(&mut self, limit: Instant) -> bool {
        let Some((at, next)) = self.next_event() else {
            return false;
        };
        if at > limit {
            return false;
        }
        let at = at.max(self.now);
        if at == self.now {
            self.steps_at_instant += 1;
            if self.steps_at_instant > MAX_STEPS_PER_INSTANT {
                self.fail("livelock: a million steps without time advancing");
            }
        } else {
            self.steps_at_instant = 0;
        }
        self.now = at;
        self.steps += 1;
        match next {
            Next::Timer(i) => self.fire_timer(i),
            Next::Queue => {
                if let Some(ev) = self.queue.pop() {
                    match ev.what {
                        Pending::Deliver { from, to, bytes, sent } => self.deliver(from, to, &bytes, sent),
                        Pending::Packet { from, to, bytes, kind, forged, sent } => {
                            self.receive_packet(from, to, &bytes, kind, forged, sent);
                        }
                        Pending::DiskDone { node, lifetime, token } => self.disk_done(node, lifetime, token),
                    }
                }
            }
        }
        if let Some(mut observer) = self.step_observer.take() {
            observer(self);
            self.step_observer = Some(observer);
        }
        true
    }

    /// Runs every event due within the next `d` of virtual time; then the
    /// clock reads exactly `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step_until(until) {}
        self.now = until;
    }

    /// Runs until `pred` holds (checked before the first step and after
    /// each), at most `max` of virtual time. Returns whether it held; on
    /// false the clock reads `now + max`.
    pub fn run_until(&mut self, mut pred: impl FnMut(&Cluster) -> bool, max: Duration) -> bool {
        let until = self.now + max;
        loop {
            if pred(self) {
                return true;
            }
            if !self.step_until(until) {
                self.now = until;
                return pred(self);
            }
        }
    }

    fn fire_timer(&mut self, i: usize) {
        let (now, local) = (self.now, self.local_now(i));
        let Some(node) = self.slots[i].node.as_mut() else {
            return;
        };
        let role = node.role();
        self.trace.push(now, TraceKind::Timeout { node: NodeId(i as u64 + 1), role });
        node.handle_timeout(local);
        self.drain(i);
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: &[u8], sent: Instant) {
        let msg = match decode_message(bytes) {
            Ok(m) => m,
            Err(e) => self.fail(format_args!("simulator bug: a message from n{} does not decode: {e}", from + 1)),
        };
        let (from_id, to_id) = (NodeId(from as u64 + 1), NodeId(to as u64 + 1));
        let reason = if !self.net.can_talk(from, to) {
            Some(DropReason::Disconnected)
        } else if self.slots[to].node.is_none() {
            Some(DropReason::Down)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.net.count_dropped(from);
            let msg = MsgSummary::of(&msg);
            self.trace.push(self.now, TraceKind::Drop { from: from_id, to: to_id, msg, reason });
            return;
        }
        self.net.count_delivered(from);
        self.trace.push(self.now, TraceKind::Deliver { from: from_id, to: to_id, msg: MsgSummary::of(&msg), sent });
        let now = self.local_now(to);
        if let Some(node) = self.slots[to].node.as_mut() {
            node.handle_message(now, from_id, msg);
        }
        self.drain(to);
    }

    fn disk_done(&mut self, i: usize, lifetime: u32, token: PersistToken) {
        let slot = &mut self.slots[i];
        if slot.lifetime != lifetime || slot.node.is_none() {
            return; // the write was lost in a crash
        }
        let id = slot.id;
        let write = match slot.disk.complete(token) {
            None => return,
            Some(Ok(w)) => w,
            Some(Err(e)) => self.fail(format_args!("core broke the Write contract on n{id}: {e}")),
        };
        let r = self.checker_durable(i, id, &write);
        self.check(r);
        self.trace.push(self.now, TraceKind::Durable { node: id, token: token.get() });
        let now = self.local_now(i);
        if let Some(node) = self.slots[i].node.as_mut() {
            node.handle_persisted(now, token);
        }
        self.drain(i);
    }

    fn checker_durable(&mut self, i: usize, id: NodeId, write: &raft_core::Write) -> Result<(), Violation> {
        self.checker.on_durable(i, id, write)?;
        if let Some(first) = write.entries.first() {
            let prev = self.slots[i].disk.durable().term_at(LogIndex(first.index.0 - 1));
            let prev = prev.ok_or_else(|| Violation {
                invariant: "write contract",
                detail: format!("n{id} stored i{} without the entry before it", first.index),
            })?;
            self.checker.on_written(id, &write.entries, prev)?;
        }
        Ok(())
    }

    /// Drains node `i`'s outputs and acts on each, then checks its invariants.
    fn drain(&mut self, i: usize) {
        let mut outs = std::mem::take(&mut self.scratch);
        if let Some(node) = self.slots[i].node.as_mut() {
            while let Some(o) = node.poll_output() {
                outs.push(o);
            }
        }
        let (mut cue, mut wanted) = (false, None);
        for o in outs.drain(..) {
            match o {
                Output::Persist(p) => self.issue_write(i, p.token, p.write),
                Output::Send(m) => self.send(i, m),
                Output::Apply(entries) => {
                    cue = true;
                    self.apply(i, entries);
                }
                Output::RestoreSnapshot(snap) => {
                    cue = true;
                    self.restore_snapshot(i, snap);
                }
                Output::Event(Event::RoleChanged { role, term, leader }) => self.role_changed(i, role, term, leader),
                Output::Event(Event::SnapshotWanted { applied }) => wanted = Some(applied),
                Output::Event(Event::TransferFinished { to, outcome }) => self.transfer_finished(i, to, outcome),
                Output::Event(Event::MembershipChanged { membership }) => {
                    let node = self.slots[i].id;
                    self.trace.push(self.now, TraceKind::Config { node, config: (&*membership).into() });
                }
                Output::Event(_) => {}
                Output::Read { id, result } => self.read_done(i, id, result),
                Output::SendSnapshotChunk { outgoing, .. } => self.fail(format_args!(
                    "n{} asked for a stored snapshot's chunk for {:?}, but the simulator keeps snapshots in the core",
                    i + 1,
                    outgoing.to
                )),
                Output::SaveSnapshotChunk { from, .. } => self.fail(format_args!(
                    "n{} handed out a snapshot chunk from {from:?}, but the simulator keeps snapshots in the core",
                    i + 1
                )),
                Output::Forwarded { id, result } => self.fail(format_args!(
                    "n{} reported forwarded proposal {id:?} ({result:?}), but the simulator forwards none",
                    i + 1
                )),
            }
        }
        self.scratch = outs;
        if cue || wanted.is_some() {
            self.host_compact(i, wanted);
        }
        if let Some(node) = self.slots[i].node.as_ref() {
            let slots = &self.slots;
            let stored = |id: NodeId, index: LogIndex, term: Term| {
                let Some(slot) = usize::try_from(id.0).ok().and_then(|k| slots.get(k.wrapping_sub(1))) else {
                    return false;
                };
                let d = slot.disk.durable();
                index <= d.snapshot_index() || d.term_at(index) == Some(term)
            };
            let r = self.checker.check_commit_quorum(i, node, stored);
            self.check(r);
            let r = self.checker.after_step(i, node);
            self.check(r);
        }
    }

    fn issue_write(&mut self, i: usize, token: PersistToken, write: raft_core::Write) {
        let slot = &mut self.slots[i];
        let id = slot.id;
        if let (Some(first), Some(node)) = (write.entries.first(), slot.node.as_ref()) {
            let Some(prev) = node.log_term(LogIndex(first.index.0 - 1)) else {
                self.fail(format_args!("n{id} wrote i{} but its log has no entry before it", first.index));
            };
            let r = self.checker.on_written(id, &write.entries, prev);
            self.check(r);
        }
        self.trace.push(self.now, TraceKind::Persist { node: id, token: token.get(), write: WriteSummary::of(&write) });
        let slot = &mut self.slots[i];
        let done = slot.disk.issue(self.now, token, write, &self.disk_cfg, &mut self.disk_rng);
        let lifetime = slot.lifetime;
        self.schedule(done, Pending::DiskDone { node: i, lifetime, token });
    }

    fn send(&mut self, i: usize, out: Outgoing) {
        let from_id = NodeId(i as u64 + 1);
        if !(1..=self.slots.len() as u64).contains(&out.to.0) {
            // A member whose machine does not exist (yet): like one that is down.
            self.net.count_dropped(i);
            let msg = MsgSummary::of(&out.message);
            self.trace.push(self.now, TraceKind::Drop { from: from_id, to: out.to, msg, reason: DropReason::Down });
            return;
        }
        let to = self.idx(out.to);
        let bytes = encode_message(&out.message);
        let kind = MsgKind::of(&out.message.body);
        if let Some(t) = self.transport.as_mut() {
            let now = self.slots[i].clock.local(self.now);
            for wire in t.send(i, to, bytes, kind, now) {
                self.transmit(i, to, wire);
            }
            return;
        }
        let delays = self.net.route(i, kind, bytes.len());
        let to_id = out.to;
        let reason = if !self.net.can_talk(i, to) {
            Some(DropReason::Disconnected)
        } else if delays.is_empty() {
            Some(DropReason::Lost)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.net.count_dropped(i);
            let msg = MsgSummary::of(&out.message);
            self.trace.push(self.now, TraceKind::Drop { from: from_id, to: to_id, msg, reason });
            return;
        }
        for (k, d) in delays.into_iter().enumerate() {
            if k > 0 {
                self.net.count_duplicated(i);
            }
            let bytes = bytes.clone();
            self.schedule(self.now + d, Pending::Deliver { from: i, to, bytes, sent: self.now });
        }
    }

    /// Puts a transport-layer packet from `from` on the wire towards `to`:
    /// the adversary (if any) sees it first, then the network decides its
    /// fate. Only packets carrying a message count in [`MsgStats`].
    fn transmit(&mut self, from: usize, to: usize, wire: Wire) {
        let n = self.slots.len();
        if let Some(adversary) = self.adversary.as_mut() {
            for inj in adversary.observe(self.now, from, to, &wire.bytes, wire.kind, n) {
                let (at, sent) = (self.now + inj.delay, self.now);
                let what = Pending::Packet {
                    from: inj.from,
                    to: inj.to,
                    bytes: inj.bytes,
                    kind: inj.kind,
                    forged: Some(inj.forgery),
                    sent,
                };
                self.schedule(at, what);
            }
        }
        let message = matches!(wire.kind, PacketKind::Message(_));
        let delays = match wire.kind {
            PacketKind::Message(kind) => self.net.route(from, kind, wire.bytes.len()),
            PacketKind::Handshake | PacketKind::Empty => self.net.fate(MsgKind::Other),
        };
        let cut = !self.net.can_talk(from, to);
        if cut || delays.is_empty() {
            if message {
                self.net.count_dropped(from);
            }
            let why = if cut { "disconnected" } else { "lost" };
            let note = format!("n{} -> n{} {:?} frame DROPPED ({why})", from + 1, to + 1, wire.kind);
            self.trace.push(self.now, TraceKind::Note(note));
            return;
        }
        for (k, d) in delays.into_iter().enumerate() {
            if k > 0 && message {
                self.net.count_duplicated(from);
            }
            let (from, to, bytes, kind, sent) = (from, to, wire.bytes.clone(), wire.kind, self.now);
            self.schedule(self.now + d, Pending::Packet { from, to, bytes, kind, forged: None, sent });
        }
    }

    /// A transport-layer packet arrives at `to`, claimed to come from
    /// `from`: the receiver's frame layer opens it (or drops it), sends
    /// what it answers, and hands the message inside to the node.
    fn receive_packet(
        &mut self,
        from: usize,
        to: usize,
        bytes: &[u8],
        kind: PacketKind,
        forged: Option<Forgery>,
        sent: Instant,
    ) {
        if !self.net.can_talk(from, to) || self.slots[to].node.is_none() {
            if forged.is_none() && matches!(kind, PacketKind::Message(_)) {
                self.net.count_dropped(from);
            }
            return;
        }
        let now = self.local_now(to);
        let Some(transport) = self.transport.as_mut() else { return };
        let r = transport.receive(to, from, bytes, now, forged);
        for wire in r.replies {
            self.transmit(to, from, wire);
        }
        let (from_id, to_id) = (NodeId(from as u64 + 1), NodeId(to as u64 + 1));
        if let Some(why) = r.dropped {
            let forged = forged.map_or(String::new(), |f| format!(" ({f:?} by the adversary)"));
            let note = format!("n{to_id} dropped a {kind:?} frame claimed from n{from_id}{forged}: {why}");
            self.trace.push(self.now, TraceKind::Note(note));
        } else if let (Some(f), Some(_)) = (forged, r.message.as_ref()) {
            let note = format!("n{to_id} took a {kind:?} frame claimed from n{from_id} ({f:?} by the adversary)");
            self.trace.push(self.now, TraceKind::Note(note));
        }
        if let Some(message) = r.message {
            self.deliver(from, to, &message, sent);
        }
    }

    /// The frame layer's counters (all zero without a transport layer).
    pub fn frame_stats(&self) -> FrameStats {
        self.transport.as_ref().map(|t| t.stats().clone()).unwrap_or_default()
    }

    /// What the adversary did (all zero without one).
    pub fn adversary_stats(&self) -> AdversaryStats {
        self.adversary.as_ref().map(|a| a.stats().clone()).unwrap_or_default()
    }

    /// The adversary, to change its rates mid-run (`None` without one).
    pub fn adversary_mut(&mut self) -> Option<&mut Adversary> {
        self.adversary.as_mut()
    }

    /// Report mode: from now on a broken invariant is recorded (see
    /// [`Cluster::violations`]) instead of failing the run, so that a test
    /// can show that an attack breaks safety. Other simulator failures
    /// still panic. Stop the run at the first violation: what follows
    /// rests on a broken state.
    pub fn record_violations(&mut self) {
        let list = self.violations.get_mut();
        if list.is_none() {
            *list = Some(Vec::new());
        }
    }

    /// The invariant violations recorded in report mode, oldest first.
    pub fn violations(&self) -> Vec<Violation> {
        self.violations.borrow().clone().unwrap_or_default()
    }

    fn apply(&mut self, i: usize, entries: Vec<Entry>) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        let (first, last) = (first.index, last.index);
        let slot = &self.slots[i];
        let (id, lifetime) = (slot.id, slot.lifetime);
        let term = slot.node.as_ref().map_or(Term(0), Node::term);
        let r = self.checker.on_apply(i, id, term, &entries);
        self.check(r);
        self.trace.push(self.now, TraceKind::Apply { node: id, first, last });
        if let Some(hook) = self.apply_hook.as_mut() {
            hook(self.now, id, lifetime, Applied::Entries(&entries));
        }
        self.slots[i].applied.extend(entries);
    }

    fn restore_snapshot(&mut self, i: usize, snap: Snapshot) {
        let (id, lifetime) = (self.slots[i].id, self.slots[i].lifetime);
        let r = self.checker.on_restore_snapshot(i, id, snap.meta);
        self.check(r);
        let SnapshotMeta { index, term } = snap.meta;
        self.trace.push(self.now, TraceKind::RestoreSnapshot { node: id, index, term });
        if let Some(hook) = self.apply_hook.as_mut() {
            hook(self.now, id, lifetime, Applied::Snapshot(&snap));
        }
    }

    fn role_changed(&mut self, i: usize, role: Role, term: Term, leader: Option<NodeId>) {
        let id = self.slots[i].id;
        self.trace.push(self.now, TraceKind::Role { node: id, role, term, leader });
        if role == Role::Leader {
            if let Some(node) = self.slots[i].node.as_ref() {
                let r = self.checker.on_leader(node, term);
                self.check(r);
            }
            self.elections.push(Election { at: self.now, leader: id, term });
        }
    }

    fn schedule(&mut self, at: Instant, what: Pending) {
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_seed_and_show_the_trace() {
        let mut c = Cluster::new(SimConfig::new(3, 4242));
        c.run_for(Duration::from_secs(1));
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.fail("boom"))).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("seed 4242") && msg.contains("boom"), "{msg}");
        assert!(msg.contains("last 60 trace events") && msg.contains(" -> "), "{msg}");
    }

    #[test]
    fn crash_loses_unfinished_writes_and_restart_restores_the_disk() {
        let mut cfg = SimConfig::new(3, 9);
        cfg.disk.latency_min = Duration::from_millis(50);
        cfg.disk.latency_max = Duration::from_millis(50);
        let mut c = Cluster::new(cfg);
        let leader = loop {
            c.run_for(Duration::from_millis(100));
            if let Some(&(l, _)) = c.leaders().first() {
                break l;
            }
        };
        c.run_for(Duration::from_secs(1));
        let index = c.propose(leader, "x").unwrap();
        c.crash(leader); // its write of "x" needs 50 ms: lost
        assert!(c.durable(leader).entries.iter().all(|e| e.index < index));
        c.restart(leader);
        let n = c.node(leader).unwrap();
        assert_eq!(n.last_log_index(), c.durable(leader).last_index());
        assert_eq!(n.term(), c.durable(leader).hard_state.term);
        assert!(c.applied(leader).is_empty(), "the apply stream restarts");
        assert_eq!(c.lifetime(leader), 1);
        c.run_for(Duration::from_secs(2));
        assert!(c.applied(leader).first().is_some_and(|e| e.index == LogIndex(1)));
    }

    #[test]
    fn clock_rates_come_from_the_seed_within_the_bound() {
        let rates = |seed| {
            let mut cfg = SimConfig::new(5, seed);
            cfg.clock_drift_ppm = 50_000;
            let c = Cluster::new(cfg);
            c.ids().into_iter().map(|id| c.clock_rate(id)).collect::<Vec<_>>()
        };
        assert_eq!(rates(3), rates(3));
        assert_ne!(rates(3), rates(4));
        assert!(rates(3).iter().all(|r| r.abs() <= 50_000) && rates(3).iter().any(|&r| r != 0));
        let exact = Cluster::new(SimConfig::new(3, 3));
        assert!(exact.ids().into_iter().all(|id| exact.clock_rate(id) == 0), "no drift unless asked");
    }

    #[test]
    fn a_node_lives_by_its_own_clock() {
        // One node elects itself after one election timeout (300-600 ms) of its own time.
        let first_election = |ppm: i64| {
            let mut c = Cluster::new(SimConfig::new(1, 8));
            c.set_clock_rate(NodeId(1), ppm);
            c.run_for(Duration::from_secs(2));
            assert_eq!(c.local_time(NodeId(1)).as_micros(), (2_000_000 * (1_000_000 + ppm) / 1_000_000) as u64);
            c.elections()[0].at
        };
        let (fast, exact, slow) = (first_election(1_000_000), first_election(0), first_election(-500_000));
        assert!(fast <= Instant::from_micros(300_000) && fast.as_micros() * 2 <= exact.as_micros() + 2, "{fast:?}");
        assert!(slow >= Instant::from_micros(600_000) && slow.as_micros() <= exact.as_micros() * 2 + 2, "{slow:?}");
    }

    #[test]
    fn disconnected_nodes_neither_send_nor_receive() {
        let mut c = Cluster::new(SimConfig::new(3, 1));
        c.disconnect(NodeId(1));
        c.run_for(Duration::from_secs(3));
        let s = c.stats();
        assert!(s.node(NodeId(1)).msgs.sent > 0);
        assert_eq!(s.node(NodeId(1)).msgs.delivered, 0);
        assert!(c.node(NodeId(1)).is_some_and(|n| n.role() != Role::Leader));
        assert!(c.leaders().iter().all(|&(l, _)| l != NodeId(1)));
    }
}
