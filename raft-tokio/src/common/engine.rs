//! The node as the owning task sees it: the host [`Driver`] plus proposal
//! tickets, the disk thread, the peers' queues and the published status.
//! Every method is synchronous and quick; the runtime-specific loop feeds it
//! inputs and calls [`Engine::flush`] after each batch of them.

use crate::common::api::{NodeConfig, ProposeError, RoleInfo, StartError, Status};
use crate::common::queue::PeerQueue;
use crate::common::sync::{Stop, TaskCount, Watch};
use raft_core::{Bytes, Event, LogIndex, Message, NodeId, PersistToken};
use raft_host::StdClock;
use raft_host::driver::{Outcome, Ticket};
use raft_host::transport_frame::max_frame_len;
use raft_host::{DiskLog, DiskThread, Driver, NodeMeta, StateMachine, StorageError};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Answers one proposer.
pub(crate) type Reply<O> = Box<dyn FnOnce(Result<O, ProposeError>) + Send>;
/// Runs against the state machine inside the owning task.
pub(crate) type LocalRead<S> = Box<dyn FnOnce(&S) + Send>;
/// Requests a handle may queue before `propose` waits for room.
pub(crate) const COMMAND_QUEUE: usize = 4096;
/// Inbound messages queued for the owning task before readers wait.
pub(crate) const INBOUND_QUEUE: usize = 1024;
/// Most inputs of one kind taken per turn of the owning task.
pub(crate) const BATCH: usize = 256;

/// What the disk thread reports.
pub(crate) type DiskResult = Result<PersistToken, StorageError>;

/// A request from a handle to the owning task.
pub(crate) enum Command<S: StateMachine> {
    Propose { command: Bytes, reply: Reply<S::Output> },
    LocalRead(LocalRead<S>),
}

impl<S: StateMachine> fmt::Debug for Command<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Propose { command, .. } => write!(f, "Propose({} bytes)", command.len()),
            Command::LocalRead(_) => f.write_str("LocalRead"),
        }
    }
}

#[derive(Debug, Default)]
struct CoreState {
    commit_index: LogIndex,
    last_applied: LogIndex,
    last_log_index: LogIndex,
    durable_index: LogIndex,
    stopped: bool,
    failure: Option<String>,
}

/// What the handles and every task of one node share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    /// The bound listen address.
    pub(crate) listen: SocketAddr,
    /// Largest frame accepted or sent (without its length prefix).
    pub(crate) max_frame: usize,
    pub(crate) role: Arc<Watch<RoleInfo>>,
    pub(crate) peers: Vec<Arc<PeerQueue>>,
    pub(crate) tasks: TaskCount,
    pub(crate) stop: Stop,
    state: Mutex<CoreState>,
}

impl Shared {
    pub(crate) fn new(config: NodeConfig, listen: SocketAddr, tasks: TaskCount) -> Shared {
        let peers = config
            .peers
            .iter()
            .map(|(&id, &addr)| Arc::new(PeerQueue::new(id, addr, config.peer_queue_capacity)))
            .collect();
        let role = RoleInfo { role: raft_core::Role::Follower, term: raft_core::Term(0), leader: None };
        Shared {
            max_frame: max_frame_len(config.raft.max_message_bytes),
            config,
            listen,
            role: Arc::new(Watch::new(role)),
            peers,
            tasks,
            stop: Arc::new(Watch::new(())),
            state: Mutex::default(),
        }
    }

    pub(crate) fn id(&self) -> NodeId {
        self.config.raft.id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CoreState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
            peers: self.peers.iter().map(|p| p.status()).collect(),
            stopped: s.stopped,
            failure: s.failure.clone(),
        }
    }

    /// The last step of a shutdown: the node reports itself stopped and
    /// role watches end.
    pub(crate) fn finish(&self) {
        self.state().stopped = true;
        self.role.close();
    }

    /// Is `id` another member of the cluster?
    pub(crate) fn is_peer(&self, id: NodeId) -> bool {
        id != self.id() && self.config.raft.members.contains(&id)
    }
}

/// Opens the data directory, recovers the log and starts the disk thread.
/// Blocking: run it off the async executor.
pub(crate) fn open<S: StateMachine>(
    config: &NodeConfig,
    sm: S,
    on_durable: impl FnMut(DiskResult) + Send + 'static,
) -> Result<(Driver<S>, DiskThread, StdClock), StartError> {
    let meta = NodeMeta::new(config.raft.id, config.cluster_id);
    let (log, recovered) = DiskLog::open(&config.data_dir, meta).map_err(StartError::Storage)?;
    let clock = StdClock::new();
    let driver =
        Driver::new(config.raft.clone(), recovered.into_restored(), sm, clock.now()).map_err(StartError::Node)?;
    let disk = DiskThread::spawn(log, on_durable);
    Ok((driver, disk, clock))
}

/// The driver and everything the owning task keeps beside it.
pub(crate) struct Engine<S: StateMachine> {
    driver: Driver<S>,
    clock: StdClock,
    disk: Option<DiskThread>,
    next_ticket: Ticket,
    waiting: HashMap<Ticket, Reply<S::Output>>,
    peers: BTreeMap<NodeId, Arc<PeerQueue>>,
    shared: Arc<Shared>,
    failure: Option<String>,
}

impl<S: StateMachine> fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.shared.id())
            .field("waiting", &self.waiting.len())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl<S: StateMachine> Engine<S> {
    pub(crate) fn new(driver: Driver<S>, disk: DiskThread, clock: StdClock, shared: Arc<Shared>) -> Engine<S> {
        let peers = shared.peers.iter().map(|p| (p.id, p.clone())).collect();
        let node = driver.node();
        let role = RoleInfo { role: node.role(), term: node.term(), leader: node.leader() };
        shared.role.update(|v| {
            *v = role;
            true
        });
        Engine {
            driver,
            clock,
            disk: Some(disk),
            next_ticket: 0,
            waiting: HashMap::new(),
            peers,
            shared,
            failure: None,
        }
    }

    /// Handles a request from a handle.
    pub(crate) fn command(&mut self, cmd: Command<S>) {
        match cmd {
            Command::Propose { command, reply } => {
                if self.failure.is_some() {
                    return reply(Err(ProposeError::Shutdown));
                }
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                match self.driver.propose(self.clock.now(), command, ticket) {
                    Ok(_) => {
                        self.waiting.insert(ticket, reply);
                    }
                    Err(raft_core::ProposeError::TooLarge { size, max }) => {
                        reply(Err(ProposeError::TooLarge { size, max }));
                    }
                    Err(raft_core::ProposeError::NotLeader { leader_hint }) => {
                        reply(Err(ProposeError::NotLeader { leader_hint }));
                    }
                    // Any future refusal also appends nothing: definitely not applied.
                    Err(_) => reply(Err(ProposeError::NotLeader { leader_hint: self.driver.node().leader() })),
                }
            }
            Command::LocalRead(f) => f(self.driver.state_machine()),
        }
    }

    /// A message from an authenticated peer.
    pub(crate) fn message(&mut self, from: NodeId, msg: Message) {
        self.driver.handle_message(self.clock.now(), from, msg);
    }

    /// The disk thread's report.
    pub(crate) fn durable(&mut self, result: DiskResult) {
        match result {
            Ok(token) => self.driver.handle_persisted(self.clock.now(), token),
            Err(e) => self.fail(format!("disk write failed: {e}")),
        }
    }

    /// Fires the core's timer if, by the clock, it is due. Sleeps may wake
    /// early or late: the clock, not the wake-up, decides.
    pub(crate) fn timer(&mut self) {
        let now = self.clock.now();
        if self.driver.poll_timeout().is_some_and(|deadline| deadline <= now) {
            self.driver.handle_timeout(now);
        }
    }

    /// When the core's timer is next due.
    pub(crate) fn deadline(&self) -> Option<std::time::Instant> {
        self.driver.poll_timeout().map(|t| self.clock.to_std(t))
    }

    /// After one input woke the owning task, takes whatever else is ready
    /// (up to [`BATCH`] of each kind: disk reports, peer messages, handle
    /// requests), then fires the timer if due and drains the driver with
    /// [`Engine::flush`], whose answer it returns. One flush so covers a burst
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
        self.timer();
        self.flush()
    }

    /// Drains the driver after inputs: writes to the disk thread, messages
    /// to the peers' queues, answers to proposers, role changes and indexes
    /// to the status. Returns false if the node failed and must stop.
    pub(crate) fn flush(&mut self) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let actions = match self.driver.drain(self.clock.now()) {
            Ok(a) => a,
            Err(e) => {
                self.fail(e.to_string());
                return false;
            }
        };
        for w in actions.writes {
            if !self.disk.as_ref().is_some_and(|d| d.submit(w)) {
                self.fail("the disk thread has stopped".into());
                return false;
            }
        }
        for s in actions.sends {
            if let Some(q) = self.peers.get(&s.to) {
                q.push(s.message);
            }
        }
        for c in actions.completed {
            let Some(reply) = self.waiting.remove(&c.ticket) else { continue };
            reply(match c.outcome {
                Outcome::Applied(Some(output)) => Ok(output),
                Outcome::Superseded => Err(ProposeError::NotLeader { leader_hint: self.driver.node().leader() }),
                // `Applied(None)` (a state machine that gave no output for a
                // command) and `Unknown` leave the caller without an answer.
                _ => Err(ProposeError::Timeout),
            });
        }
        for e in actions.events {
            if let Event::RoleChanged { role, term, leader } = e {
                self.shared.role.update(|v| {
                    *v = RoleInfo { role, term, leader };
                    true
                });
            }
        }
        let node = self.driver.node();
        let mut s = self.shared.state();
        s.commit_index = node.commit_index();
        s.last_applied = node.last_applied();
        s.last_log_index = node.last_log_index();
        s.durable_index = node.durable_index();
        true
    }

    fn fail(&mut self, reason: String) {
        self.shared.state().failure = Some(reason.clone());
        self.failure.get_or_insert(reason);
    }

    /// Stops the engine: every proposer still waiting is told the outcome is
    /// unknown; the disk thread is returned to be shut down off the executor.
    pub(crate) fn stop(&mut self) -> Option<DiskThread> {
        self.abandon_waiting();
        self.disk.take()
    }

    fn abandon_waiting(&mut self) {
        for (_, reply) in self.waiting.drain() {
            reply(Err(ProposeError::Timeout));
        }
    }
}

impl<S: StateMachine> Drop for Engine<S> {
    /// Even if the owning task dies (a panic), no proposer whose command
    /// reached the log is told it was not applied.
    fn drop(&mut self) {
        self.abandon_waiting();
    }
}
