//! The node as the owning task sees it: the host [`raft_host::Engine`]
//! (node, state machine, disk thread, waiting proposals), the clock, the
//! peers' queues as its transport, and the published status. Every method
//! is synchronous and quick; the owning task ([`crate::node`]) feeds
//! it inputs and calls [`Owner::flush`] after each batch of them.

use crate::api::{MembershipError, NodeConfig, ProposeError, RoleInfo, StartError, Status, TransferError};
use crate::metrics::{Metrics, ProposalOutcome, ReadOutcome};
use crate::queue::PeerQueue;
use crate::runtime::Sleeper;
use crate::sync::{Joinable, Stop, TaskCount, Watch};
use crate::timed::Timed;
use crate::udp::Counters;
use raft_core::{
    Body, Bytes, Event, LogIndex, Membership, MembershipChange, Message, NodeId, ReadError, Role, TransferOutcome,
};
use raft_host::engine::{ChangeFailed, DiskReport, EngineStartError, Failure, Refused, Transport};
use raft_host::secure::SecureConfig;
use raft_host::{DiskLog, DiskThread, Engine, NodeMeta, Outcome, StateMachine, StdClock};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Answer<O> = Box<dyn FnOnce(Result<O, ProposeError>) + Send>;

/// The host engine with a [`Waiter`] per waiting proposal or read.
pub(crate) type NodeEngine<S> = Engine<Timed<S>, Waiter<S>>;

/// Serves one linearizable read, or tells why it failed.
pub(crate) type ReadFn<S> = Box<dyn FnOnce(Result<&S, ProposeError>) + Send>;

/// What the engine holds for one request of a handle.
pub(crate) enum Waiter<S: StateMachine> {
    Propose(Reply<S::Output>),
    Read(ReadFn<S>),
    Change(ChangeReply),
}

type ChangeAnswer = Box<dyn FnOnce(Result<Membership, MembershipError>) + Send>;

/// Answers one membership change, at most once; dropped unanswered after
/// its entry reached the log, it answers that the outcome is unknown.
pub(crate) struct ChangeReply {
    send: Option<ChangeAnswer>,
    in_log: bool,
}

impl ChangeReply {
    pub(crate) fn new(f: impl FnOnce(Result<Membership, MembershipError>) + Send + 'static) -> ChangeReply {
        ChangeReply { send: Some(Box::new(f)), in_log: false }
    }

    fn send(mut self, result: Result<Membership, MembershipError>) {
        if let Some(f) = self.send.take() {
            f(result);
        }
    }
}

impl Drop for ChangeReply {
    fn drop(&mut self) {
        if let Some(f) = self.send.take()
            && self.in_log
        {
            f(Err(MembershipError::OutcomeUnknown));
        }
    }
}

/// Answers one proposer, at most once. Dropped unanswered after its command
/// reached the log (the node stopped, or its task died) it answers that the
/// outcome is unknown, so no such proposer is told it was not applied;
/// dropped before, it answers nothing (the handle then reports `Shutdown`).
pub(crate) struct Reply<O> {
    send: Option<Answer<O>>,
    in_log: bool,
}

impl<O> Reply<O> {
    pub(crate) fn new(f: impl FnOnce(Result<O, ProposeError>) + Send + 'static) -> Reply<O> {
        Reply { send: Some(Box::new(f)), in_log: false }
    }

    fn send(mut self, result: Result<O, ProposeError>) {
        if let Some(f) = self.send.take() {
            f(result);
        }
    }
}

impl<O> Drop for Reply<O> {
    fn drop(&mut self) {
        if let Some(f) = self.send.take()
            && self.in_log
        {
            f(Err(ProposeError::OutcomeUnknown));
        }
    }
}
/// Answers one `transfer_leadership` call, at most once (dropped
/// unanswered, the handle reports `Shutdown`).
pub(crate) type TransferReply = Box<dyn FnOnce(Result<(), TransferError>) + Send>;

/// Runs against the state machine inside the owning task.
pub(crate) type LocalRead<S> = Box<dyn FnOnce(&S) + Send>;
/// Requests a handle may queue before `propose` waits for room.
pub(crate) const COMMAND_QUEUE: usize = 4096;
/// Inbound messages queued for the owning task before readers wait.
pub(crate) const INBOUND_QUEUE: usize = 1024;
/// Most inputs of one kind taken per turn of the owning task.
pub(crate) const BATCH: usize = 256;

/// What the disk thread reports.
pub(crate) type DiskResult = DiskReport;

/// A request from a handle to the owning task.
/// Answers a proposal from the state machine instead, if it returns `Some`.
pub(crate) type Precheck<S> = Box<dyn FnOnce(&S) -> Option<<S as StateMachine>::Output> + Send>;

pub(crate) enum Command<S: StateMachine> {
    Propose { command: Bytes, reply: Reply<S::Output> },
    ProposeUnless { check: Precheck<S>, command: Bytes, reply: Reply<S::Output> },
    Read(ReadFn<S>),
    LocalRead(LocalRead<S>),
    Transfer { to: NodeId, reply: TransferReply },
    Change { change: MembershipChange, reply: ChangeReply },
}

impl<S: StateMachine> fmt::Debug for Command<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Propose { command, .. } => write!(f, "Propose({} bytes)", command.len()),
            Command::ProposeUnless { command, .. } => write!(f, "ProposeUnless({} bytes)", command.len()),
            Command::Read(_) => f.write_str("Read"),
            Command::LocalRead(_) => f.write_str("LocalRead"),
            Command::Transfer { to, .. } => write!(f, "Transfer({to})"),
            Command::Change { change, .. } => write!(f, "Change({change:?})"),
        }
    }
}

#[derive(Debug, Default)]
struct CoreState {
    commit_index: LogIndex,
    last_applied: LogIndex,
    last_log_index: LogIndex,
    durable_index: LogIndex,
    snapshot_index: LogIndex,
    transfer_target: Option<NodeId>,
    membership: Membership,
    membership_index: LogIndex,
    removed: bool,
    stopped: bool,
    failure: Option<Arc<Failure>>,
}

/// Starts the writer task of a peer added while the node runs (the
/// transport's, over the runtime): given the node's shared state and the queue.
pub(crate) type SpawnPeer = Box<dyn Fn(&Arc<Shared>, Arc<PeerQueue>) -> Joinable + Send + Sync>;

/// What the handles and every task of one node share.
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    /// The bound listen address.
    pub(crate) listen: SocketAddr,
    /// This node's side of transport v2 (key, incarnation, id).
    pub(crate) secure: SecureConfig,
    /// The transports' clock (sessions' ages).
    pub(crate) clock: StdClock,
    pub(crate) role: Arc<Watch<RoleInfo>>,
    /// The peers' queues: those of `NodeConfig::peers`, then every member a
    /// configuration names (with its address), and, while this node has no
    /// configuration yet (joining), whoever contacts it first.
    peers: Mutex<BTreeMap<NodeId, Arc<PeerQueue>>>,
    /// Starts the writer of a peer added later (set by the transport).
    spawn_peer: Mutex<Option<SpawnPeer>>,
    /// The writers of peers added later, joined at shutdown.
    pub(crate) late_children: Mutex<Vec<Joinable>>,
    /// True while this node knows no configuration with voters (joining):
    /// it then accepts an authenticated peer it does not know yet.
    joining: AtomicBool,
    pub(crate) tasks: TaskCount,
    pub(crate) stop: Stop,
    /// The runtime's timers, for handles (which do not name the runtime).
    pub(crate) sleeper: Box<dyn Sleeper>,
    /// What the UDP transport dropped, if the peers talk over UDP.
    pub(crate) datagrams: Option<Arc<Mutex<Counters>>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Where the metrics are served over HTTP, if they are.
    pub(crate) metrics_addr: Option<SocketAddr>,
    state: Mutex<CoreState>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("id", &self.id()).field("listen", &self.listen).finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        config: NodeConfig,
        listen: SocketAddr,
        tasks: TaskCount,
        sleeper: Box<dyn Sleeper>,
        datagrams: Option<Arc<Mutex<Counters>>>,
        metrics: Arc<Metrics>,
        metrics_addr: Option<SocketAddr>,
    ) -> Shared {
        let peers = config
            .peers
            .iter()
            .map(|(&id, &addr)| (id, Arc::new(PeerQueue::new(id, addr, config.peer_queue_capacity))))
            .collect();
        let role = RoleInfo { role: raft_core::Role::Follower, term: raft_core::Term(0), leader: None };
        Shared {
            secure: SecureConfig::new(&config.keys, config.raft.id),
            clock: StdClock::new(),
            joining: AtomicBool::new(config.raft.members.is_empty()),
            config,
            listen,
            role: Arc::new(Watch::new(role)),
            peers: Mutex::new(peers),
            spawn_peer: Mutex::new(None),
            late_children: Mutex::new(Vec::new()),
            tasks,
            stop: Arc::new(Watch::new(())),
            sleeper,
            datagrams,
            metrics,
            metrics_addr,
            state: Mutex::default(),
        }
    }

    pub(crate) fn id(&self) -> NodeId {
        self.config.raft.id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CoreState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peer_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Arc<PeerQueue>>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every peer's queue, in id order.
    pub(crate) fn peers(&self) -> Vec<Arc<PeerQueue>> {
        self.peer_map().values().cloned().collect()
    }

    /// The queue of peer `id`, if it is known.
    pub(crate) fn peer(&self, id: NodeId) -> Option<Arc<PeerQueue>> {
        self.peer_map().get(&id).cloned()
    }

    /// Sets how peers added later get their writer (called once by the transport).
    pub(crate) fn set_spawn_peer(&self, f: SpawnPeer) {
        *self.spawn_peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Makes `id` reachable at `addr`: moves a known peer (not one given an
    /// address at start), or adds a queue and starts its writer. Nothing
    /// once the node stops.
    pub(crate) fn add_peer(self: &Arc<Self>, id: NodeId, addr: SocketAddr) {
        if id == self.id() || self.stop.is_closed() {
            return;
        }
        let added = {
            let mut peers = self.peer_map();
            match peers.get(&id) {
                // An address given at start (`NodeConfig::peers`: the
                // operator's route, maybe through a proxy or NAT) wins over
                // the one a configuration entry carries.
                Some(q) => {
                    if q.addr() != addr && !self.config.peers.contains_key(&id) {
                        q.set_addr(addr);
                    }
                    None
                }
                None => {
                    let q = Arc::new(PeerQueue::new(id, addr, self.config.peer_queue_capacity));
                    peers.insert(id, q.clone());
                    Some(q)
                }
            }
        };
        if let Some(q) = added {
            let spawn = self.spawn_peer.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = spawn.as_ref() {
                let child = f(self, q);
                self.late_children.lock().unwrap_or_else(|e| e.into_inner()).push(child);
            }
        }
    }

    /// True while this node has no configuration with voters.
    pub(crate) fn joining(&self) -> bool {
        self.joining.load(Ordering::Relaxed)
    }

    /// A snapshot of the node's state.
    pub(crate) fn status(&self) -> Status {
        let s = self.state();
        Status {
            id: self.id(),
            listen: self.listen,
            role: self.role.with(|r| *r),
            commit_index: s.commit_index,
            last_applied: s.last_applied,
            last_log_index: s.last_log_index,
            durable_index: s.durable_index,
            snapshot_index: s.snapshot_index,
            transfer_target: s.transfer_target,
            read_mode: self.config.raft.read_mode,
            datagrams: self.datagrams.as_ref().map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            peers: self.peers().iter().map(|p| p.status()).collect(),
            membership: s.membership.clone(),
            membership_index: s.membership_index,
            removed: s.removed,
            stopped: s.stopped,
            failure: s.failure.clone(),
        }
    }

    /// The node's metrics in the Prometheus text format.
    pub(crate) fn metrics_text(&self) -> String {
        self.metrics.render(&self.status())
    }

    /// The last step of a shutdown: the node reports itself stopped and
    /// role watches end.
    pub(crate) fn finish(&self) {
        self.state().stopped = true;
        self.role.close();
    }

    /// Is `id` a peer this node knows (from its start-up configuration or a
    /// configuration in its log)?
    pub(crate) fn is_peer(&self, id: NodeId) -> bool {
        id != self.id() && self.peer_map().contains_key(&id)
    }
}

/// Opens the data directory, recovers the log and starts the engine with
/// its disk thread. Blocking: run it off the async executor.
pub(crate) fn open<S: StateMachine>(
    config: &NodeConfig,
    sm: S,
    metrics: &Arc<Metrics>,
    on_durable: impl FnMut(DiskResult) + Send + 'static,
) -> Result<(NodeEngine<S>, StdClock), StartError> {
    let meta = NodeMeta::new(config.raft.id, config.cluster_id);
    let (log, recovered) =
        DiskLog::open_with(&config.data_dir, meta, config.disk_log.clone()).map_err(StartError::Storage)?;
    let clock = StdClock::new();
    let sm = Timed::new(sm, metrics.clone());
    let timing = metrics.clone();
    let on_sync = move |took| timing.disk_sync(took);
    let engine = Engine::start_timed(config.raft.clone(), log, recovered, sm, clock.now(), on_durable, on_sync)
        .map_err(|e| match e {
            EngineStartError::Node(e) => StartError::Node(e),
            EngineStartError::DiskThread(e) => StartError::DiskThread(e),
            _ => StartError::Interrupted,
        })?;
    Ok((engine, clock))
}

/// The peers' queues, as the engine's transport.
struct Peers(Arc<Shared>);

impl Transport for Peers {
    fn send(&mut self, to: NodeId, message: Message) {
        if let Body::InstallSnapshot(chunk) = &message.body {
            self.0.metrics.snapshot_chunk_sent(chunk.offset == 0, chunk.data.len());
        }
        if let Some(q) = self.0.peer(to) {
            q.push(message);
        }
    }
}

/// The engine and everything the owning task keeps beside it.
pub(crate) struct Owner<S: StateMachine> {
    engine: NodeEngine<S>,
    clock: StdClock,
    peers: Peers,
    shared: Arc<Shared>,
    /// On the leader: its proposals' indexes and arrival times, oldest
    /// first, until they are seen committed (for the commit latency).
    proposed: VecDeque<(LogIndex, std::time::Instant)>,
    /// Whether peer progress was last reported as the leader's.
    reported_leader: bool,
    /// The caller waiting for the transfer in progress, and its target.
    transfer: Option<(NodeId, TransferReply)>,
    /// This node was a member of a configuration in effect during this
    /// lifetime: one without it then means it was removed.
    was_member: bool,
}

impl<S: StateMachine> fmt::Debug for Owner<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owner").field("engine", &self.engine).finish_non_exhaustive()
    }
}

impl<S: StateMachine> Owner<S> {
    pub(crate) fn new(engine: NodeEngine<S>, clock: StdClock, shared: Arc<Shared>) -> Owner<S> {
        let peers = Peers(shared.clone());
        shared.joining.store(engine.membership().voters.is_empty(), Ordering::Relaxed);
        let s = engine.status();
        shared.role.update(|v| {
            *v = RoleInfo { role: s.role, term: s.term, leader: s.leader };
            true
        });
        let was_member = engine.membership().contains(shared.id());
        {
            let mut st = shared.state();
            st.membership = engine.membership().clone();
            st.membership_index = engine.node().membership_index();
        }
        Owner {
            engine,
            clock,
            peers,
            shared,
            proposed: VecDeque::new(),
            reported_leader: false,
            transfer: None,
            was_member,
        }
    }

    /// Handles a request from a handle.
    /// Proposes `command` (forwards it, on a follower that may), or
    /// answers `reply` with why not.
    fn propose(&mut self, command: Bytes, reply: Reply<S::Output>) {
        let arrived = std::time::Instant::now();
        // `forward` is `propose` on the leader; a follower with
        // `Config::forward_proposals` hands the command to its leader.
        match self.engine.forward(self.clock.now(), command, Waiter::Propose(reply)) {
            Ok(ticket) => {
                if let Some(Waiter::Propose(reply)) = self.engine.waiter_mut(ticket) {
                    reply.in_log = true;
                }
                let node = self.engine.node();
                if node.role() == Role::Leader {
                    self.proposed.push_back((node.last_log_index(), arrived));
                }
            }
            Err((why, Waiter::Propose(reply))) => {
                let (error, outcome) = match why {
                    Refused::NotLeader { leader_hint } => {
                        (ProposeError::NotLeader { leader_hint }, ProposalOutcome::NotLeader)
                    }
                    Refused::TooLarge { size, max } => {
                        (ProposeError::TooLarge { size, max }, ProposalOutcome::TooLarge)
                    }
                    _ => (ProposeError::Shutdown, ProposalOutcome::Shutdown),
                };
                self.shared.metrics.proposal(outcome);
                reply.send(Err(error));
            }
            Err((_, _)) => unreachable!("a proposal's waiter"),
        }
    }

    pub(crate) fn command(&mut self, cmd: Command<S>) {
        match cmd {
            Command::Propose { command, reply } => self.propose(command, reply),
            Command::ProposeUnless { check, command, reply } => match check(&self.engine.state_machine().inner) {
                Some(output) => reply.send(Ok(output)),
                None => self.propose(command, reply),
            },
            Command::Read(f) => {
                if let Err((why, waiter)) = self.engine.read(self.clock.now(), Waiter::Read(f)) {
                    let leader_hint = self.engine.node().leader();
                    let error = read_error(why, leader_hint);
                    self.shared.metrics.read(read_outcome::<()>(&Err(error.clone())));
                    answer_read(waiter, Err(error), &self.engine.state_machine().inner);
                }
            }
            Command::LocalRead(f) => f(&self.engine.state_machine().inner),
            Command::Transfer { to, reply } => match self.engine.transfer_leadership(self.clock.now(), to) {
                // The core allows one transfer at a time, so no caller waits here.
                Ok(()) => self.transfer = Some((to, reply)),
                Err(e) => reply(Err(match e {
                    raft_core::TransferError::NotLeader { leader_hint } => TransferError::NotLeader { leader_hint },
                    raft_core::TransferError::NotAVoter(id) => TransferError::NotAVoter(id),
                    raft_core::TransferError::InProgress { to } => TransferError::InProgress { to },
                    _ => TransferError::NotLeader { leader_hint: self.engine.node().leader() },
                })),
            },
            Command::Change { change, reply } => {
                match self.engine.change_membership(self.clock.now(), change, Waiter::Change(reply)) {
                    Ok(ticket) => {
                        if let Some(Waiter::Change(reply)) = self.engine.change_waiter_mut(ticket) {
                            reply.in_log = true;
                        }
                    }
                    Err((why, Waiter::Change(reply))) => {
                        reply.send(Err(change_error(why, self.engine.node().leader())));
                    }
                    Err(_) => unreachable!("a change's waiter"),
                }
            }
        }
    }

    /// A message from an authenticated peer.
    pub(crate) fn message(&mut self, from: NodeId, msg: Message) {
        self.engine.handle_message(self.clock.now(), from, msg);
    }

    /// The disk thread's report.
    pub(crate) fn durable(&mut self, result: DiskResult) {
        self.engine.handle_durable(self.clock.now(), result);
    }

    /// When the core's timer is next due.
    pub(crate) fn deadline(&self) -> Option<std::time::Instant> {
        self.engine.deadline().map(|t| self.clock.to_std(t))
    }

    /// After one input woke the owning task, takes whatever else is ready
    /// (up to [`BATCH`] of each kind: disk reports, peer messages, handle
    /// requests), then fires the timer if due and drains the engine with
    /// [`Owner::flush`], whose answer it returns. One flush so covers a burst
    /// of proposals: one disk write, one AppendEntries.
    pub(crate) fn turn(
        &mut self,
        mut durable: impl FnMut() -> Option<DiskResult>,
        mut inbound: impl FnMut() -> Option<(NodeId, Message)>,
        mut cmds: impl FnMut() -> Option<Command<S>>,
    ) -> bool {
        for _ in 0..BATCH {
            let Some(r) = durable() else { break };
            self.durable(r);
        }
        for _ in 0..BATCH {
            let Some((from, msg)) = inbound() else { break };
            self.message(from, msg);
        }
        for _ in 0..BATCH {
            let Some(c) = cmds() else { break };
            self.command(c);
        }
        // Sleeps may wake early or late: the clock, not the wake-up, decides.
        self.engine.handle_timer(self.clock.now());
        self.flush()
    }

    /// Drains the engine after inputs: answers to proposers, role changes
    /// and indexes to the status. Returns false if the node failed and must stop.
    pub(crate) fn flush(&mut self) -> bool {
        let flushed = match self.engine.flush(self.clock.now(), &mut self.peers) {
            Ok(f) => f,
            Err(failure) => {
                self.shared.state().failure.get_or_insert(failure);
                return false;
            }
        };
        let leader_hint = self.engine.node().leader();
        let metrics = &self.shared.metrics;
        for d in flushed.done {
            let Waiter::Propose(reply) = d.waiter else { continue };
            let (result, outcome) = match d.outcome {
                Outcome::Applied(Some(output)) => (Ok(output), ProposalOutcome::Applied),
                Outcome::Superseded => (Err(ProposeError::Superseded { leader_hint }), ProposalOutcome::Superseded),
                // `Applied(None)` (a state machine that gave no output for a
                // command) and `Unknown` leave the caller without an answer.
                Outcome::Applied(None) | Outcome::Unknown => {
                    (Err(ProposeError::OutcomeUnknown), ProposalOutcome::Unknown)
                }
            };
            metrics.proposal(outcome);
            reply.send(result);
        }
        for r in flushed.reads {
            let result = r.result.map_err(|e| read_error(e, leader_hint));
            metrics.read(read_outcome(&result));
            answer_read(r.waiter, result, &self.engine.state_machine().inner);
        }
        for d in flushed.changes {
            if let Waiter::Change(reply) = d.waiter {
                reply.send(d.result.map_err(|e| change_error(e, leader_hint)));
            }
        }
        for e in flushed.events {
            match e {
                Event::RoleChanged { role, term, leader } => {
                    self.shared.role.update(|v| {
                        *v = RoleInfo { role, term, leader };
                        true
                    });
                }
                Event::TransferFinished { to, outcome } => {
                    if let Some((_, reply)) = self.transfer.take_if(|(target, _)| *target == to) {
                        reply(match outcome {
                            TransferOutcome::HandedOver => Ok(()),
                            TransferOutcome::TimedOut => Err(TransferError::TimedOut),
                            _ => Err(TransferError::LeadershipLost { leader_hint: self.engine.node().leader() }),
                        });
                    }
                }
                Event::MembershipChanged { membership } => self.membership_changed(&membership),
                _ => {}
            }
        }
        let st = self.engine.status();
        self.observe(&st);
        let mut s = self.shared.state();
        s.commit_index = st.commit_index;
        s.last_applied = st.last_applied;
        s.last_log_index = st.last_log_index;
        s.durable_index = st.durable_index;
        s.snapshot_index = st.snapshot_index;
        s.transfer_target = self.engine.node().transfer_target();
        s.membership_index = self.engine.node().membership_index();
        true
    }

    /// Records what this flush moved: commit latencies, the leader's view
    /// of its peers, snapshots taken.
    fn observe(&mut self, st: &raft_host::engine::EngineStatus) {
        let metrics = &self.shared.metrics;
        let now = std::time::Instant::now();
        while let Some(&(index, arrived)) = self.proposed.front() {
            if index > st.commit_index {
                break;
            }
            metrics.committed(now.duration_since(arrived));
            self.proposed.pop_front();
        }
        if st.role == Role::Leader {
            let node = self.engine.node();
            for p in self.shared.peers() {
                if let Some(matched) = node.match_index(p.id) {
                    metrics.peer_progress(p.id, matched, st.last_log_index);
                }
            }
            self.reported_leader = true;
        } else {
            // Proposals of a lost leadership: their commit is no longer ours to time.
            self.proposed.clear();
            if self.reported_leader {
                metrics.clear_peer_progress();
                self.reported_leader = false;
            }
        }
        metrics.snapshots_taken(self.engine.snapshots_taken());
    }

    /// A new configuration is in effect: every member it names becomes
    /// reachable at its address, and the status follows it.
    fn membership_changed(&mut self, m: &Membership) {
        for (&id, addr) in &m.addrs {
            if let Some(addr) = std::str::from_utf8(addr).ok().and_then(|a| a.parse::<SocketAddr>().ok()) {
                self.shared.add_peer(id, addr);
            }
        }
        self.shared.joining.store(m.voters.is_empty(), Ordering::Relaxed);
        let me = self.shared.id();
        self.was_member |= m.contains(me);
        let mut s = self.shared.state();
        s.removed = self.was_member && !m.contains(me);
        s.membership = m.clone();
    }

    /// Stops the engine: every proposer still waiting is told the outcome is
    /// unknown; the disk thread is returned to be shut down off the executor.
    pub(crate) fn stop(&mut self) -> Option<DiskThread> {
        let (waiting, disk) = self.engine.stop();
        drop(waiting); // each answers "unknown" as it drops
        disk
    }
}

/// Answers a read: runs it against the state machine, or reports why not.
fn answer_read<S: StateMachine>(waiter: Waiter<S>, result: Result<(), ProposeError>, sm: &S) {
    if let Waiter::Read(f) = waiter {
        f(result.map(|()| sm));
    }
}

/// How a read's answer is counted.
fn read_outcome<T>(result: &Result<T, ProposeError>) -> ReadOutcome {
    match result {
        Ok(_) => ReadOutcome::Served,
        Err(ProposeError::OutcomeUnknown) => ReadOutcome::Unknown,
        Err(_) => ReadOutcome::NotLeader,
    }
}

/// A failed read as the handle reports it. Nothing was read; none of these
/// changed anything.
fn read_error(e: ReadError, leader_hint: Option<NodeId>) -> ProposeError {
    match e {
        ReadError::NotLeader { leader_hint } => ProposeError::NotLeader { leader_hint },
        ReadError::Timeout => ProposeError::OutcomeUnknown,
        // LeaderChanged, DuplicateId (ids are the engine's own) and any later reason.
        _ => ProposeError::NotLeader { leader_hint },
    }
}

/// A failed membership change as the handle reports it.
fn change_error(e: ChangeFailed, leader_hint: Option<NodeId>) -> MembershipError {
    match e {
        ChangeFailed::Refused(e) => MembershipError::Refused(e),
        ChangeFailed::Superseded => MembershipError::Superseded { leader_hint },
        ChangeFailed::Stopped => MembershipError::Shutdown,
        _ => MembershipError::OutcomeUnknown,
    }
}
