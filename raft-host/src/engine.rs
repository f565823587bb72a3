//! The one synchronous host engine every adapter runs: the only std code that
//! drains the core.
//!
//! An [`Engine`] owns the node and its state machine (through the
//! [`Driver`], which executes the core's outputs in the contract's order),
//! the [`DiskThread`] that makes writes durable, and the proposals waiting
//! for their outcome, each held as the adapter's *waiter* `W` (a reply
//! channel, a client address...) under a [`Ticket`] the engine allocates.
//!
//! Inputs arrive as method calls that take `now`: messages from peers
//! ([`Engine::handle_message`]), the disk thread's reports
//! ([`Engine::handle_durable`]), the timer ([`Engine::handle_timer`]) and
//! proposals ([`Engine::propose`]). After a batch of inputs the adapter calls
//! [`Engine::flush`], which drains the core: writes go to the disk thread,
//! messages to the adapter's [`Transport`], and the waiters whose outcome is
//! now known come back with it. Nothing here waits or reads a clock, so an
//! async task, a thread or a test can run it alike.

use crate::disk_thread::DiskThread;
use crate::driver::{Driver, Outcome, RestoreFailed, Ticket};
use crate::state_machine::StateMachine;
use crate::storage::{DiskLog, Recovered, StorageError};
use raft_core::{
    Bytes, ChangeError, Config, Event, Instant, LogIndex, Membership, MembershipChange, Message, NewNodeError, Node,
    NodeId, PersistToken, ReadError, ReadId, Role, Term, TransferError,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// Where the engine sends messages to peers. Sending must not wait: queue
/// the message, or drop it (Raft retransmits what matters).
pub trait Transport {
    /// Sends `message` to peer `to`.
    fn send(&mut self, to: NodeId, message: Message);
}

/// What the disk thread reports: writes durable up to a token, or the error
/// that stopped it.
pub type DiskReport = Result<PersistToken, StorageError>;

/// Why an engine did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineStartError {
    /// The recovered state does not fit the configuration.
    Node(NewNodeError),
    /// The disk thread could not be started.
    DiskThread(std::io::Error),
}

impl fmt::Display for EngineStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineStartError::Node(e) => write!(f, "cannot start the node: {e}"),
            EngineStartError::DiskThread(e) => write!(f, "cannot start the disk thread: {e}"),
        }
    }
}

impl std::error::Error for EngineStartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineStartError::Node(e) => Some(e),
            EngineStartError::DiskThread(e) => Some(e),
        }
    }
}

/// Why a running engine stopped by itself. It cannot continue safely; the
/// adapter must shut it down.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// A write or sync failed.
    Disk(StorageError),
    /// The disk thread stopped (after an error already reported, or it died).
    DiskStopped,
    /// The state machine could not decode a snapshot from the leader.
    Restore(RestoreFailed),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Disk(e) => write!(f, "disk write failed: {e}"),
            Failure::DiskStopped => f.write_str("the disk thread has stopped"),
            Failure::Restore(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Failure {}

/// Why a proposal was refused. Nothing was appended: the command was not,
/// and never will be, applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// This node is not the leader; retry at `leader_hint`, if known.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// The command exceeds `Config::max_entry_bytes`.
    TooLarge {
        /// The command's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The engine failed and accepts nothing more.
    Stopped,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader; try node {l}"),
            Refused::NotLeader { leader_hint: None } => write!(f, "not the leader; leader unknown"),
            Refused::TooLarge { size, max } => write!(f, "command of {size} bytes exceeds the limit of {max}"),
            Refused::Stopped => f.write_str("the node has stopped"),
        }
    }
}

impl std::error::Error for Refused {}

/// Why a membership change did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeFailed {
    /// Refused at once (not the leader, a change in progress, an unknown
    /// node, a learner behind...): nothing was appended.
    Refused(ChangeError),
    /// This node lost leadership and another leader's entry took the
    /// configuration entry's place: the change was not made.
    Superseded,
    /// A snapshot covered the entry before this node saw it applied: the
    /// change may or may not have been made (look at the configuration).
    Unknown,
    /// The engine failed and accepts nothing more.
    Stopped,
}

impl fmt::Display for ChangeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeFailed::Refused(e) => e.fmt(f),
            ChangeFailed::Superseded => f.write_str("leadership changed and the change was not made"),
            ChangeFailed::Unknown => f.write_str("outcome unknown; the change may or may not have been made"),
            ChangeFailed::Stopped => f.write_str("the node has stopped"),
        }
    }
}

impl std::error::Error for ChangeFailed {}

/// A membership change whose outcome is known.
#[derive(Debug)]
pub struct ChangeDone<W> {
    /// The waiter given to [`Engine::change_membership`].
    pub waiter: W,
    /// The index of its configuration entry.
    pub index: LogIndex,
    /// The configuration in effect once the change committed (a voter
    /// change: once the final configuration after the joint one committed),
    /// or why it failed.
    pub result: Result<Membership, ChangeFailed>,
}

/// A proposal whose outcome is known.
#[derive(Debug)]
pub struct Done<W, O> {
    /// The waiter given to [`Engine::propose`].
    pub waiter: W,
    /// The ticket the engine gave it.
    pub ticket: Ticket,
    /// The log index it was given.
    pub index: LogIndex,
    /// How it ended.
    pub outcome: Outcome<O>,
}

/// A read whose turn has come: on `Ok`, serve it now from
/// [`Engine::state_machine`] (it has applied the read index, so the read is
/// linearizable); on `Err` the read failed and nothing happened.
#[derive(Debug)]
pub struct ReadDone<W> {
    /// The waiter given to [`Engine::read`].
    pub waiter: W,
    /// Serve it, or why not.
    pub result: Result<(), ReadError>,
}

/// What one [`Engine::flush`] produced besides the writes and messages it
/// already handed on.
#[derive(Debug)]
pub struct Flushed<W, O> {
    /// Proposals whose outcome is now known.
    pub done: Vec<Done<W, O>>,
    /// Reads to serve (or that failed), in the order they became ready.
    pub reads: Vec<ReadDone<W>>,
    /// Membership changes whose outcome is now known.
    pub changes: Vec<ChangeDone<W>>,
    /// Role and leader changes, in order.
    pub events: Vec<Event>,
}

/// Role, term, leader and indexes of an engine's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStatus {
    /// The node's role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader of that term, if known.
    pub leader: Option<NodeId>,
    /// The highest index known committed.
    pub commit_index: LogIndex,
    /// The highest index applied to the state machine.
    pub last_applied: LogIndex,
    /// The last index in the log (durable or not).
    pub last_log_index: LogIndex,
    /// The highest index known durable on this node.
    pub durable_index: LogIndex,
    /// The index the latest snapshot covers (0: none).
    pub snapshot_index: LogIndex,
}

/// A node, its state machine, its disk thread and its waiting proposals.
pub struct Engine<S: StateMachine, W> {
    driver: Driver<S>,
    disk: Option<DiskThread>,
    next_ticket: Ticket,
    waiting: HashMap<Ticket, W>,
    next_read: u64,
    /// Reads waiting for their index from the core.
    reads: HashMap<ReadId, W>,
    /// Reads whose index is known, waiting for it to be applied.
    ready: BTreeMap<LogIndex, Vec<W>>,
    /// Membership changes waiting for their configuration entry.
    changes: HashMap<Ticket, W>,
    /// Voter changes whose joint configuration is applied, waiting for the
    /// final configuration to be applied too.
    leaving: Vec<(LogIndex, W)>,
    failure: Option<Arc<Failure>>,
}

impl<S: StateMachine, W> fmt::Debug for Engine<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.driver.node().id())
            .field("waiting", &self.waiting.len())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl<S: StateMachine, W> Engine<S, W> {
    /// Starts a node from what `log` recovered and the disk thread that
    /// writes to `log` (with snapshots kept on disk, see
    /// [`Driver::with_stored_snapshots`], if `log` was opened with
    /// [`DiskLogOptions::stored_snapshots`](crate::DiskLogOptions::stored_snapshots)); `on_durable` runs on that thread after every durable
    /// batch (send the report to whoever calls [`Engine::handle_durable`]).
    /// `sm` must be in the state of its `last_applied()` index. The
    /// operating system's randomness is mixed into `config.seed`.
    pub fn start(
        config: Config,
        log: DiskLog,
        recovered: Recovered,
        sm: S,
        now: Instant,
        on_durable: impl FnMut(DiskReport) + Send + 'static,
    ) -> Result<Engine<S, W>, EngineStartError> {
        Engine::start_timed(config, log, recovered, sm, now, on_durable, |_| {})
    }

    /// [`Engine::start`], with `on_sync` told the duration of each durable
    /// sync of the disk thread (see [`DiskThread::spawn_timed`]).
    pub fn start_timed(
        config: Config,
        log: DiskLog,
        recovered: Recovered,
        sm: S,
        now: Instant,
        on_durable: impl FnMut(DiskReport) + Send + 'static,
        on_sync: impl FnMut(std::time::Duration) + Send + 'static,
    ) -> Result<Engine<S, W>, EngineStartError> {
        // A fresh seed at every start (see `Config::seed`): the ids of this
        // lifetime's requests to the leader must not repeat a previous one's.
        let mut config = config;
        let mut fresh = [0u8; 8];
        if getrandom::fill(&mut fresh).is_ok() {
            config.seed ^= u64::from_le_bytes(fresh);
        }
        // A log that leaves snapshots on disk gets a driver that streams them.
        let restored = recovered.into_restored();
        let driver = match log.snapshot_files() {
            Some((fs, dir)) => Driver::with_stored_snapshots(config, restored, sm, now, fs, dir),
            None => Driver::new(config, restored, sm, now),
        }
        .map_err(EngineStartError::Node)?;
        let disk = DiskThread::spawn_timed(log, on_durable, on_sync).map_err(EngineStartError::DiskThread)?;
        Ok(Engine::from_parts(driver, disk))
    }

    /// An engine around a driver and the disk thread that writes its log.
    pub fn from_parts(driver: Driver<S>, disk: DiskThread) -> Engine<S, W> {
        Engine {
            driver,
            disk: Some(disk),
            next_ticket: 0,
            waiting: HashMap::new(),
            next_read: 0,
            reads: HashMap::new(),
            ready: BTreeMap::new(),
            changes: HashMap::new(),
            leaving: Vec::new(),
            failure: None,
        }
    }

    /// The node (read-only).
    pub fn node(&self) -> &Node {
        self.driver.node()
    }

    /// The state machine (read-only).
    pub fn state_machine(&self) -> &S {
        self.driver.state_machine()
    }

    /// Why the engine stopped by itself, if it did.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_deref()
    }

    /// The snapshots taken of the state machine so far.
    pub fn snapshots_taken(&self) -> crate::SnapshotsTaken {
        self.driver.snapshots_taken()
    }

    /// Role, term, leader and indexes.
    pub fn status(&self) -> EngineStatus {
        let node = self.driver.node();
        EngineStatus {
            role: node.role(),
            term: node.term(),
            leader: node.leader(),
            commit_index: node.commit_index(),
            last_applied: node.last_applied(),
            last_log_index: node.last_log_index(),
            durable_index: node.durable_index(),
            snapshot_index: node.snapshot_index(),
        }
    }

    /// Proposes `command`; `waiter` comes back from a later
    /// [`Engine::flush`] with the outcome. On refusal it is returned at once.
    pub fn propose(&mut self, now: Instant, command: impl Into<Bytes>, waiter: W) -> Result<Ticket, (Refused, W)> {
        if self.failure.is_some() {
            return Err((Refused::Stopped, waiter));
        }
        let ticket = self.next_ticket;
        match self.driver.propose(now, command, ticket) {
            Ok(_) => {
                self.next_ticket += 1;
                self.waiting.insert(ticket, waiter);
                Ok(ticket)
            }
            Err(e) => Err((self.refused(e), waiter)),
        }
    }

    /// Proposes `command` wherever the leader is (`Node::forward`): the
    /// leader appends it at once; a follower with
    /// `Config::forward_proposals` that knows the leader hands it over. Like
    /// [`Engine::propose`], `waiter` comes back from a later
    /// [`Engine::flush`] with the outcome (a forwarded command the leader
    /// refused is [`Outcome::Superseded`]: not applied; one it never
    /// answered is [`Outcome::Unknown`]). On refusal it is returned at once.
    pub fn forward(&mut self, now: Instant, command: impl Into<Bytes>, waiter: W) -> Result<Ticket, (Refused, W)> {
        if self.failure.is_some() {
            return Err((Refused::Stopped, waiter));
        }
        let ticket = self.next_ticket;
        match self.driver.forward(now, command, ticket) {
            Ok(()) => {
                self.next_ticket += 1;
                self.waiting.insert(ticket, waiter);
                Ok(ticket)
            }
            Err(e) => Err((self.refused(e), waiter)),
        }
    }

    /// A proposal refused by the core, as the engine reports it.
    fn refused(&self, e: raft_core::ProposeError) -> Refused {
        match e {
            raft_core::ProposeError::TooLarge { size, max } => Refused::TooLarge { size, max },
            raft_core::ProposeError::NotLeader { leader_hint } => Refused::NotLeader { leader_hint },
            // A leadership transfer holds proposals back; nothing was appended.
            raft_core::ProposeError::TransferInProgress { .. } => {
                Refused::NotLeader { leader_hint: self.driver.node().leader() }
            }
        }
    }

    /// Hands leadership to `to` (see `Node::transfer_leadership`). The
    /// outcome comes from a later [`Engine::flush`] as
    /// `Event::TransferFinished` in [`Flushed::events`]; meanwhile this node
    /// refuses proposals. An `Err` means no transfer started.
    pub fn transfer_leadership(&mut self, now: Instant, to: NodeId) -> Result<(), TransferError> {
        if self.failure.is_some() {
            return Err(TransferError::NotLeader { leader_hint: None });
        }
        self.driver.transfer_leadership(now, to)
    }

    /// Asks for a linearizable read; `waiter` comes back from a later
    /// [`Engine::flush`] in [`Flushed::reads`], when the state machine can
    /// serve it. On refusal (no leader known) it is returned at once.
    pub fn read(&mut self, now: Instant, waiter: W) -> Result<(), (ReadError, W)> {
        if self.failure.is_some() {
            let leader_hint = self.driver.node().leader();
            return Err((ReadError::NotLeader { leader_hint }, waiter));
        }
        let id = ReadId(self.next_read);
        match self.driver.read_index(now, id) {
            Ok(()) => {
                self.next_read += 1;
                self.reads.insert(id, waiter);
                Ok(())
            }
            Err(e) => Err((e, waiter)),
        }
    }

    /// Asks for a configuration change (see `MembershipChange`); `waiter`
    /// comes back from a later [`Engine::flush`] in [`Flushed::changes`] once
    /// the change has committed and been applied here (for a voter change:
    /// the joint configuration and the final one after it), or failed. On
    /// refusal it is returned at once.
    pub fn change_membership(
        &mut self,
        now: Instant,
        change: MembershipChange,
        waiter: W,
    ) -> Result<Ticket, (ChangeFailed, W)> {
        if self.failure.is_some() {
            return Err((ChangeFailed::Stopped, waiter));
        }
        let ticket = self.next_ticket;
        match self.driver.change_membership(now, change, ticket) {
            Ok(_) => {
                self.next_ticket += 1;
                self.changes.insert(ticket, waiter);
                Ok(ticket)
            }
            Err(e) => Err((ChangeFailed::Refused(e), waiter)),
        }
    }

    /// The configuration in effect on this node (the newest in its log,
    /// committed or not).
    pub fn membership(&self) -> &Membership {
        self.driver.node().membership()
    }

    /// The waiter of a proposal still waiting, to update it (e.g. where to answer).
    pub fn waiter_mut(&mut self, ticket: Ticket) -> Option<&mut W> {
        self.waiting.get_mut(&ticket)
    }

    /// The waiter of a membership change still waiting for its entry.
    pub fn change_waiter_mut(&mut self, ticket: Ticket) -> Option<&mut W> {
        self.changes.get_mut(&ticket)
    }

    /// Stops waiting for a proposal (its outcome will be ignored) and returns its waiter.
    pub fn forget(&mut self, ticket: Ticket) -> Option<W> {
        self.waiting.remove(&ticket)
    }

    /// Proposals still waiting.
    pub fn waiting(&self) -> impl ExactSizeIterator<Item = (Ticket, &W)> {
        self.waiting.iter().map(|(t, w)| (*t, w))
    }

    /// A message from an authenticated peer.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        self.driver.handle_message(now, from, msg);
    }

    /// The disk thread's report.
    pub fn handle_durable(&mut self, now: Instant, report: DiskReport) {
        match report {
            Ok(token) => self.driver.handle_persisted(now, token),
            Err(e) => self.fail(Failure::Disk(e)),
        }
    }

    /// Fires the core's timer if it is due at `now`. Call it whenever a
    /// wake-up may be due: the clock, not the wake-up, decides.
    pub fn handle_timer(&mut self, now: Instant) {
        if self.driver.poll_timeout().is_some_and(|deadline| deadline <= now) {
            self.driver.handle_timeout(now);
        }
    }

    /// When [`Engine::handle_timer`] is next due.
    pub fn deadline(&self) -> Option<Instant> {
        self.driver.poll_timeout()
    }

    /// Drains the core after inputs: applies committed entries, hands writes
    /// to the disk thread and messages to `transport`, and returns the
    /// proposals whose outcome is known and the events. Once the engine has
    /// failed it does nothing and returns the failure.
    pub fn flush(
        &mut self,
        now: Instant,
        transport: &mut impl Transport,
    ) -> Result<Flushed<W, S::Output>, Arc<Failure>> {
        match self.try_flush(now, transport) {
            Some(flushed) => Ok(flushed),
            None => Err(Arc::clone(self.failure.as_ref().expect("set when try_flush gives up"))),
        }
    }

    /// [`Engine::flush`]; `None` once the engine has failed.
    fn try_flush(&mut self, now: Instant, transport: &mut impl Transport) -> Option<Flushed<W, S::Output>> {
        if self.failure.is_some() {
            return None;
        }
        let actions = match self.driver.drain(now) {
            Ok(a) => a,
            Err(e) => {
                self.fail(Failure::Restore(e));
                return None;
            }
        };
        for w in actions.writes {
            if !self.disk.as_ref().is_some_and(|d| d.submit(w)) {
                self.fail(Failure::DiskStopped);
                return None;
            }
        }
        for s in actions.sends {
            transport.send(s.to, s.message);
        }
        let mut done = Vec::new();
        let mut changes = Vec::new();
        for c in actions.completed {
            if let Some(waiter) = self.waiting.remove(&c.ticket) {
                done.push(Done { waiter, ticket: c.ticket, index: c.index, outcome: c.outcome });
            } else if let Some(waiter) = self.changes.remove(&c.ticket) {
                let index = c.index;
                match c.outcome {
                    Outcome::Applied(_) => self.leaving.push((index, waiter)),
                    Outcome::Superseded => {
                        changes.push(ChangeDone { waiter, index, result: Err(ChangeFailed::Superseded) })
                    }
                    Outcome::Unknown => changes.push(ChangeDone { waiter, index, result: Err(ChangeFailed::Unknown) }),
                }
            }
        }
        // A change is done once the configuration in effect is not joint and
        // applied: the final configuration follows a committed joint one on
        // its own (any leader appends it).
        let node = self.driver.node();
        if !self.leaving.is_empty() && !node.membership().is_joint() && node.membership_index() <= node.last_applied() {
            let m = node.membership().clone();
            changes.extend(self.leaving.drain(..).map(|(index, waiter)| ChangeDone {
                waiter,
                index,
                result: Ok(m.clone()),
            }));
        }
        let mut reads = Vec::new();
        for (id, result) in actions.reads {
            let Some(waiter) = self.reads.remove(&id) else { continue };
            match result {
                Ok(index) => self.ready.entry(index).or_default().push(waiter),
                Err(e) => reads.push(ReadDone { waiter, result: Err(e) }),
            }
        }
        let applied = self.driver.state_machine().last_applied();
        while let Some(entry) = self.ready.first_entry() {
            if *entry.key() > applied {
                break;
            }
            reads.extend(entry.remove().into_iter().map(|waiter| ReadDone { waiter, result: Ok(()) }));
        }
        Some(Flushed { done, reads, changes, events: actions.events })
    }

    fn fail(&mut self, failure: Failure) {
        self.failure.get_or_insert(Arc::new(failure));
    }

    /// Stops the engine: returns every waiter still waiting (proposals,
    /// whose outcome is unknown, then reads, which were not served, then
    /// membership changes, whose outcome is unknown) and the
    /// disk thread, to be shut down (it blocks until the queued writes are
    /// durable, so do it off an async executor).
    pub fn stop(&mut self) -> (Vec<W>, Option<DiskThread>) {
        let mut left: Vec<W> = self.waiting.drain().map(|(_, w)| w).collect();
        left.extend(self.reads.drain().map(|(_, w)| w));
        left.extend(std::mem::take(&mut self.ready).into_values().flatten());
        left.extend(self.changes.drain().map(|(_, w)| w));
        left.extend(self.leaving.drain(..).map(|(_, w)| w));
        (left, self.disk.take())
    }
}
