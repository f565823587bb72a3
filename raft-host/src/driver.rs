//! Executes a node's outputs in the contract's order, once for every adapter.
//!
//! [`Driver`] owns a [`Node`] and a [`StateMachine`]. After every input,
//! [`Driver::drain`] returns what the adapter must do — writes for the disk
//! (see [`DiskThread`](crate::disk_thread::DiskThread)), messages to send now —
//! and has already applied committed entries, restored snapshots, answered the
//! snapshot policy, and resolved the proposals whose outcome is now known.

use crate::snapshot_store::{SnapshotStore, Taking};
use crate::state_machine::StateMachine;
use crate::storage::fs::Fs;
use raft_core::{
    Bytes, ChangeError, Config, Duration, Event, ForwardError, Instant, LogIndex, MembershipChange, Message,
    NewNodeError, Node, NodeId, Outgoing, Output, Persist, PersistToken, ProposeError, ReadError, ReadId, Restored,
    Term, TransferError,
};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Identifies one proposal of the adapter's, to match it with its outcome.
pub type Ticket = u64;

/// How a proposal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<O> {
    /// Committed and applied; the state machine's output (None: it had none).
    Applied(Option<O>),
    /// Another leader's entry took its index: it was definitely not applied.
    Superseded,
    /// A snapshot covered its index before this node saw the entry: it may or
    /// may not have been applied. Clients must treat it like a timeout.
    Unknown,
}

/// A proposal whose outcome is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion<O> {
    /// The ticket given to [`Driver::propose`].
    pub ticket: Ticket,
    /// The log index it was given.
    pub index: LogIndex,
    /// How it ended.
    pub outcome: Outcome<O>,
}

/// What the adapter must do after an input. Everything in it is safe to do
/// at once and in any order relative to each other, except that `writes` go
/// to the disk in order.
#[derive(Debug)]
pub struct Actions<O> {
    /// Make durable in order, then report with [`Driver::handle_persisted`].
    pub writes: Vec<Persist>,
    /// Transmit now.
    pub sends: Vec<Outgoing>,
    /// Answer these proposers.
    pub completed: Vec<Completion<O>>,
    /// Role and leader changes, for status views and leader watches.
    pub events: Vec<Event>,
    /// Answers to `Node::read_index` calls: serve a read once the state
    /// machine has applied its index.
    pub reads: Vec<(ReadId, Result<LogIndex, ReadError>)>,
}

impl<O> Default for Actions<O> {
    fn default() -> Self {
        Actions { writes: Vec::new(), sends: Vec::new(), completed: Vec::new(), events: Vec::new(), reads: Vec::new() }
    }
}

impl<O> Actions<O> {
    /// True if there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.sends.is_empty()
            && self.completed.is_empty()
            && self.events.is_empty()
            && self.reads.is_empty()
    }
}

/// A snapshot from the leader that the state machine could not decode.
/// The node cannot continue safely; the adapter must stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreFailed {
    /// The snapshot's index.
    pub index: LogIndex,
    /// Why decoding failed.
    pub reason: String,
}

impl fmt::Display for RestoreFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "state machine cannot restore snapshot at {}: {}", self.index, self.reason)
    }
}

impl std::error::Error for RestoreFailed {}

/// A node and its state machine, driven together.
#[derive(Debug)]
pub struct Driver<S: StateMachine> {
    node: Node,
    sm: S,
    /// Proposals waiting for their index to be applied. An index can hold
    /// more than one: a proposal whose entry a later leader's log replaced
    /// keeps waiting beside the newer proposal this node made at the same
    /// index, and whichever entry is finally applied there decides both.
    pending: BTreeMap<LogIndex, Vec<(Term, Ticket)>>,
    snapshots: SnapshotsTaken,
    /// Set with [`Driver::with_stored_snapshots`].
    store: Option<SnapshotStore>,
    /// After a stored snapshot could not be taken: when to try again, and
    /// the wait before that try. The core asks once per trigger of its
    /// policy and not again until a snapshot compacts the log, so without
    /// this one failed write (a full disk) would stop snapshots for good and
    /// let the log grow without bound.
    retry_snapshot: Option<(Instant, Duration)>,
    /// A stored snapshot being written on a thread of its own.
    taking: Option<Taking>,
}

/// The wait before trying a failed snapshot again; it doubles with every
/// failure in a row, up to [`SNAPSHOT_RETRY_MAX`].
pub const SNAPSHOT_RETRY_FIRST: Duration = Duration::from_secs(1);
/// See [`SNAPSHOT_RETRY_FIRST`].
pub const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(60);

/// How many snapshots a [`Driver`] took of its state machine, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotsTaken {
    /// Snapshots taken (the policy asked for them).
    pub count: u64,
    /// Their serialized state, summed.
    pub bytes: u64,
    /// Attempts to write a stored snapshot that failed (each is tried again
    /// later: [`SNAPSHOT_RETRY_FIRST`]).
    pub failed: u64,
}

impl<S: StateMachine> Driver<S> {
    /// Starts a node from what the disk recovered. `sm` must be the state
    /// machine's state as of `sm.last_applied()` (a fresh one for in-memory
    /// state machines: the node then restores the snapshot and replays).
    pub fn new(config: Config, restored: Restored, sm: S, now: Instant) -> Result<Driver<S>, NewNodeError> {
        let last_applied = sm.last_applied();
        let node = Node::new(config, restored.with_last_applied(last_applied), now)?;
        let snapshots = SnapshotsTaken::default();
        Ok(Driver { node, sm, pending: BTreeMap::new(), snapshots, store: None, retry_snapshot: None, taking: None })
    }

    /// As [`new`](Self::new), for a node whose snapshots stay on disk and are
    /// never held whole in memory (see [`snapshot_store`](crate::snapshot_store)):
    /// `dir` is the [`DiskLog`](crate::DiskLog)'s directory, opened with
    /// [`DiskLogOptions::stored_snapshots`](crate::DiskLogOptions::stored_snapshots)
    /// on `fs`, and `restored` what it recovered. Sets
    /// `Config::host_stores_snapshots`. The state machine's
    /// [`write_snapshot`](StateMachine::write_snapshot) and
    /// [`restore_from`](StateMachine::restore_from) should stream for memory
    /// to stay bounded.
    pub fn with_stored_snapshots(
        mut config: Config,
        restored: Restored,
        sm: S,
        now: Instant,
        fs: Arc<dyn Fs>,
        dir: impl Into<PathBuf>,
    ) -> Result<Driver<S>, NewNodeError> {
        config.host_stores_snapshots = true;
        let in_place = restored.snapshot.as_ref().map(|s| s.meta);
        let mut driver = Driver::new(config, restored, sm, now)?;
        driver.store = Some(SnapshotStore::new(fs, dir.into(), in_place));
        Ok(driver)
    }

    /// The snapshots this driver took of its state machine so far.
    pub fn snapshots_taken(&self) -> SnapshotsTaken {
        self.snapshots
    }
    /// True while a snapshot is being written on a thread of its own (see
    /// [`StateMachine::snapshot_writer`]): the first [`drain`](Self::drain)
    /// after it ends hands it to the core.
    pub fn is_taking_snapshot(&self) -> bool {
        self.taking.is_some()
    }

    /// The node (read-only: role, term, leader, indexes).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The state machine (read-only).
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// Feeds a message from a peer.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        self.node.handle_message(now, from, msg);
    }

    /// Fires due timers (a no-op before `poll_timeout`).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
    }

    /// Reports writes up to `token` durable.
    pub fn handle_persisted(&mut self, now: Instant, token: PersistToken) {
        self.node.handle_persisted(now, token);
    }

    /// When to call [`Driver::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    /// Asks for a linearizable read (`Node::read_index`); on `Ok` its answer
    /// arrives in [`Actions::reads`].
    pub fn read_index(&mut self, now: Instant, id: ReadId) -> Result<(), ReadError> {
        self.node.read_index(now, id)
    }

    /// Hands leadership to `to` (`Node::transfer_leadership`); the outcome
    /// arrives later as an `Event::TransferFinished` in [`Actions::events`].
    pub fn transfer_leadership(&mut self, now: Instant, to: NodeId) -> Result<(), TransferError> {
        self.node.transfer_leadership(now, to)
    }

    /// Proposes a command wherever the leader is (see `Node::forward`): on a
    /// follower with `Config::forward_proposals`, the leader appends it. Its
    /// outcome arrives later as a [`Completion`] with `ticket`.
    pub fn forward(&mut self, now: Instant, command: impl Into<Bytes>, ticket: Ticket) -> Result<(), ProposeError> {
        self.node.forward(now, raft_core::ProposalId(ticket), command)
    }

    /// Proposes a command; its outcome arrives later as a [`Completion`] with `ticket`.
    pub fn propose(
        &mut self,
        now: Instant,
        command: impl Into<Bytes>,
        ticket: Ticket,
    ) -> Result<LogIndex, ProposeError> {
        let index = self.node.propose(now, command)?;
        // An older proposal at the same index (from an earlier term, whose
        // entry this node's log no longer holds) stays: the entry finally
        // applied at `index` tells which of them, if any, was applied.
        self.pending.entry(index).or_default().push((self.node.term(), ticket));
        Ok(index)
    }

    /// Asks the leader for a configuration change (`Node::change_membership`);
    /// the outcome of its configuration entry arrives later as a
    /// [`Completion`] with `ticket` (`Applied` once it is committed and
    /// applied: for a voter change that is the joint configuration, after
    /// which the final one follows on its own).
    pub fn change_membership(
        &mut self,
        now: Instant,
        change: MembershipChange,
        ticket: Ticket,
    ) -> Result<LogIndex, ChangeError> {
        let index = self.node.change_membership(now, change)?;
        self.pending.entry(index).or_default().push((self.node.term(), ticket));
        Ok(index)
    }

    /// Drains the node: applies committed entries, restores snapshots, takes
    /// the snapshots the policy asks for, and returns the rest for the adapter.
    pub fn drain(&mut self, now: Instant) -> Result<Actions<S::Output>, RestoreFailed> {
        let mut actions = Actions::default();
        self.finish_taking(now);
        if self.retry_snapshot.is_some_and(|(at, _)| now >= at) {
            self.take_stored(now);
        }
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Persist(p) => {
                    if let (Some(store), Some(s), Some(digest)) =
                        (self.store.as_mut(), &p.write.snapshot, p.write.snapshot_digest)
                    {
                        // A received snapshot goes in place before its record.
                        let index = s.meta.index;
                        store
                            .install(s.meta, Some(digest))
                            .map_err(|e| RestoreFailed { index, reason: e.to_string() })?;
                    }
                    actions.writes.push(p)
                }
                Output::Send(m) => actions.sends.push(m),
                Output::SendSnapshotChunk { mut outgoing, len } => {
                    if self.store.as_mut().is_some_and(|s| s.fill_chunk(&mut outgoing.message, len)) {
                        actions.sends.push(outgoing);
                    }
                }
                Output::SaveSnapshotChunk { chunk, .. } => {
                    let index = chunk.index;
                    let failed = |reason: String| RestoreFailed { index, reason };
                    let store = self.store.as_mut().ok_or_else(|| failed("no snapshot store".into()))?;
                    store.save_chunk(&chunk).map_err(|e| failed(e.to_string()))?;
                }
                Output::Apply(entries) => {
                    for entry in entries {
                        let out = self.sm.apply_entry(&entry);
                        self.resolve_below(entry.index, &mut actions);
                        let waiting = self.pending.remove(&entry.index).unwrap_or_default();
                        let mut out = Some(out);
                        for (term, ticket) in waiting {
                            // At most one proposal per term and index: only one can match.
                            let outcome = match out.take_if(|_| term == entry.term) {
                                Some(out) => Outcome::Applied(out),
                                None => Outcome::Superseded,
                            };
                            actions.completed.push(Completion { ticket, index: entry.index, outcome });
                        }
                    }
                }
                Output::RestoreSnapshot(snapshot) => {
                    let index = snapshot.meta.index;
                    match self.store.as_mut() {
                        Some(store) => store.restore(&mut self.sm, snapshot.meta),
                        None => self.sm.restore(&snapshot.data).map_err(|e| e.to_string()),
                    }
                    .map_err(|reason| RestoreFailed { index, reason })?;
                    self.resolve_below(LogIndex(snapshot.meta.index.0.saturating_add(1)), &mut actions);
                }
                Output::Event(Event::SnapshotWanted { .. }) if self.store.is_some() => self.take_stored(now),
                Output::Event(Event::SnapshotWanted { .. }) => {
                    let data = self.sm.snapshot();
                    self.snapshots.count += 1;
                    self.snapshots.bytes += data.len() as u64;
                    // The state machine is exactly at last_applied: every Apply was applied above.
                    let _ = self.node.compact(now, self.sm.last_applied(), data);
                }
                Output::Event(e) => actions.events.push(e),
                Output::Read { id, result } => actions.reads.push((id, result)),
                Output::Forwarded { id, result } => {
                    let ticket = id.0;
                    match result {
                        // Already applied before the leader's answer came: this
                        // node no longer knows which entry was there.
                        Ok((index, _)) if index <= self.sm.last_applied() => {
                            actions.completed.push(Completion { ticket, index, outcome: Outcome::Unknown });
                        }
                        Ok((index, term)) => self.pending.entry(index).or_default().push((term, ticket)),
                        Err(ForwardError::Refused(_)) => {
                            let index = LogIndex(0);
                            actions.completed.push(Completion { ticket, index, outcome: Outcome::Superseded });
                        }
                        Err(_) => {
                            let index = LogIndex(0);
                            actions.completed.push(Completion { ticket, index, outcome: Outcome::Unknown });
                        }
                    }
                }
            }
        }
        Ok(actions)
    }

    /// Takes a snapshot into the snapshot file and hands its digest to the
    /// core: on a thread of its own if the state machine can copy its state
    /// ([`StateMachine::snapshot_writer`]; the core gets the digest in a
    /// later [`drain`](Self::drain), once the file is in place), else here.
    /// While one is being written no other starts. A failure leaves the log
    /// uncompacted, counts in [`SnapshotsTaken::failed`], and is tried again
    /// later (the first `drain` [`SNAPSHOT_RETRY_FIRST`] on, doubling).
    fn take_stored(&mut self, now: Instant) {
        if self.taking.is_some() {
            return;
        }
        let index = self.sm.last_applied();
        let (Some(store), Some(term)) = (self.store.as_mut(), self.node.log_term(index)) else {
            return;
        };
        if index <= self.node.snapshot_index() {
            return;
        }
        let meta = raft_core::SnapshotMeta { index, term };
        let membership = self.node.membership_at(index);
        let taken = match self.sm.snapshot_writer() {
            Some(writer) => store.start_take(writer, meta, &membership).map(|t| {
                self.taking = Some(t);
                None
            }),
            None => store.take(&self.sm, meta, &membership).map(Some),
        };
        match taken {
            // Checked above: applied, and newer than the current snapshot.
            Ok(Some(digest)) => self.took(now, index, digest),
            Ok(None) => {}
            Err(_) => self.take_failed(now),
        }
    }

    /// Ends the snapshot being written on its own thread, if it is done: in
    /// place and handed to the core if it is still newer than the node's
    /// snapshot (one may have been received meanwhile), removed if not.
    fn finish_taking(&mut self, now: Instant) {
        let (Some(taking), Some(store)) = (self.taking.as_mut(), self.store.as_mut()) else {
            return;
        };
        let Some(written) = taking.poll() else {
            return;
        };
        let index = taking.meta().index;
        self.taking = None;
        let newer = index > self.node.snapshot_index();
        let placed = written.and_then(|(sealed, digest)| match newer {
            true => store.finish_take(sealed).map(|placed| placed.then_some(digest)),
            false => sealed.discard().map(|()| None),
        });
        match placed {
            Ok(Some(digest)) => self.took(now, index, digest),
            Ok(None) => {}
            Err(_) => self.take_failed(now),
        }
    }

    fn took(&mut self, now: Instant, index: LogIndex, digest: raft_core::SnapshotDigest) {
        self.snapshots.count += 1;
        self.snapshots.bytes += digest.len;
        self.retry_snapshot = None;
        let _ = self.node.compact_stored(now, index, digest);
    }

    fn take_failed(&mut self, now: Instant) {
        self.snapshots.failed += 1;
        let wait = self.retry_snapshot.map_or(SNAPSHOT_RETRY_FIRST, |(_, w)| (w + w).min(SNAPSHOT_RETRY_MAX));
        self.retry_snapshot = Some((now + wait, wait));
    }

    /// Proposals below `index` that were never seen applied (a snapshot
    /// jumped over them) have an unknown outcome.
    fn resolve_below(&mut self, index: LogIndex, actions: &mut Actions<S::Output>) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= index {
                break;
            }
            let (i, waiting) = entry.remove_entry();
            for (_, ticket) in waiting {
                actions.completed.push(Completion { ticket, index: i, outcome: Outcome::Unknown });
            }
        }
    }
}
