//! raft-tokio: a replicated state machine on tokio.
//!
//! [`Node::start`] runs one member of a Raft cluster: the sans-IO core
//! ([`raft_core`]) and a [`StateMachine`] driven by
//! one task, a durable log ([`raft_host::DiskLog`]) written with group
//! commit on a dedicated thread, and authenticated TCP links to the other
//! members. The returned [`Handle`] proposes commands, reads, reports
//! [`Status`], follows role changes and shuts the node down.
//!
//! The API reads the same in `raft-smol`, and the two crates speak the same
//! frames, so a cluster may mix them.
//!
//! # Example: a one-node key-value store
//!
//! ```
//! use raft_core::{Config, NodeId};
//! use raft_host::kv::{KvCommand, KvOp, KvOutput, encode_command};
//! use raft_host::{ClusterKey, KvStore};
//! use raft_tokio::{Node, NodeConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let raft = Config::new(NodeId(1), [NodeId(1)]);
//! let key = ClusterKey::from_bytes([7; 32]);
//! let config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key);
//! let node = Node::start(config, KvStore::new()).await.unwrap();
//!
//! node.role_watch().wait_for(|r| r.leader.is_some()).await;
//! let put = KvCommand { client: 1, seq: 1, op: KvOp::put("x", "1") };
//! assert_eq!(node.propose(encode_command(&put)).await.unwrap(), Ok(KvOutput::Put));
//! let get = KvCommand { client: 1, seq: 2, op: KvOp::get("x") };
//! assert_eq!(node.read(encode_command(&get)).await.unwrap(), Ok(KvOutput::get(Some("1"))));
//!
//! let tasks = node.task_monitor();
//! node.shutdown().await;
//! assert_eq!(tasks.running(), 0);
//! # }
//! ```
//!
//! # Architecture
//!
//! * **One task owns the node** (the host [`Driver`](raft_host::Driver)).
//!   It waits for the first of: a command from a handle, a message from a
//!   peer, a durable-write report, the core's timer (from `poll_timeout`;
//!   a wake-up is checked against the clock before the timer fires) or the
//!   stop signal; takes whatever else is ready too (so one flush covers a
//!   burst of proposals: one disk write, one AppendEntries), then drains the
//!   driver: writes go to the disk thread, messages to the peers' queues,
//!   outcomes to the proposers.
//! * **Disk**: [`raft_host::DiskThread`] writes and fsyncs on its own thread
//!   with group commit and reports durable tokens back over a channel.
//! * **Transport**: each node dials every peer for its own outgoing
//!   direction, so each ordered pair of members has one connection that
//!   carries frames one way (the reverse direction uses the peer's
//!   connection). Frames are `len: u32 LE | sealed message`
//!   ([`raft_host::transport_frame`]), authenticated with HMAC-SHA256 under
//!   the cluster key; the sender is what the frame proves, not the address.
//!   A length above the limit closes the connection before any allocation.
//!   Each peer has a writer task with a bounded two-lane queue (control
//!   before bulk, drop-oldest, drops counted) so heartbeats never wait
//!   behind a backlog; a lost connection is re-established lazily, with
//!   capped exponential backoff and deterministic per-link jitter. An
//!   accept task spawns one reader task per inbound connection.
//! * **Shutdown** closes a stop signal every task watches, tells waiting
//!   proposers their outcome is unknown, flushes and joins the disk thread,
//!   and returns once every task has ended ([`TaskMonitor`] counts them).

#![warn(missing_docs)]

mod common;
mod net;

pub use common::api::{NodeConfig, PeerStatus, ProposeError, RoleInfo, RoleWatch, StartError, Status, TaskMonitor};
pub use raft_core;
pub use raft_host;

use common::engine::{self, Command, DiskResult, Engine, Shared};
use common::sync::{StopOnDrop, TaskCount, TaskGuard, Watch, all_stopped};
use raft_core::{Bytes, Message, NodeId};
use raft_host::StateMachine;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Requests a handle may queue before `propose` waits for room.
const COMMAND_QUEUE: usize = 4096;
/// Inbound messages queued for the owning task before readers wait.
const INBOUND_QUEUE: usize = 1024;
/// Most inputs of one kind taken per turn of the owning task.
const BATCH: usize = 256;

/// Starts nodes. (A namespace: the running node is reached through its [`Handle`].)
#[derive(Debug)]
pub struct Node(());

impl Node {
    /// Starts a node: binds `config.listen`, opens and recovers
    /// `config.data_dir`, and spawns the node's tasks on the current tokio
    /// runtime (which must have I/O and time enabled).
    ///
    /// `state_machine` must be in the state of its `last_applied()` index (a
    /// fresh in-memory one is rebuilt from the log and snapshot on disk).
    /// On error nothing is left running.
    pub async fn start<S>(config: NodeConfig, state_machine: S) -> Result<Handle<S>, StartError>
    where
        S: StateMachine + Send + 'static,
        S::Output: Send + 'static,
    {
        config.validate()?;
        let addr = config.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let listen = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;

        let tasks: TaskCount = Arc::new(Watch::new(0));
        let (durable_tx, durable_rx) = mpsc::unbounded_channel::<DiskResult>();
        let disk_guard = TaskGuard::new(&tasks);
        let on_durable = move |r: DiskResult| {
            let _counted = &disk_guard; // the disk thread counts as running until it drops this
            let _ = durable_tx.send(r);
        };
        let cfg = config.clone();
        let opened = tokio::task::spawn_blocking(move || engine::open(&cfg, state_machine, on_durable)).await;
        let (driver, disk, clock) = opened.map_err(|_| StartError::Interrupted)??;

        let shared = Arc::new(Shared::new(config, listen, tasks.clone()));
        let engine = Engine::new(driver, disk, clock, shared.clone());
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let mut children = Vec::new();
        for peer in &shared.peers {
            let guard = TaskGuard::new(&tasks);
            children.push(tokio::spawn(net::write_loop(peer.clone(), shared.clone(), guard)));
        }
        let guard = TaskGuard::new(&tasks);
        children.push(tokio::spawn(net::accept_loop(listener, shared.clone(), in_tx, guard)));
        let guard = TaskGuard::new(&tasks);
        tokio::spawn(run(engine, cmd_rx, in_rx, durable_rx, shared.clone(), children, guard));
        Ok(Handle { cmds: cmd_tx, shared })
    }
}

/// The owning task.
async fn run<S>(
    mut engine: Engine<S>,
    mut cmds: mpsc::Receiver<Command<S>>,
    mut inbound: mpsc::Receiver<(NodeId, Message)>,
    mut durable: mpsc::UnboundedReceiver<DiskResult>,
    shared: Arc<Shared>,
    children: Vec<JoinHandle<()>>,
    guard: TaskGuard,
) where
    S: StateMachine + Send + 'static,
    S::Output: Send + 'static,
{
    let stop_on_exit = StopOnDrop(shared.stop.clone());
    let idle = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let sleep = tokio::time::sleep_until(idle());
    tokio::pin!(sleep);
    let mut running = engine.flush();
    while running {
        let deadline = engine.deadline().map(tokio::time::Instant::from_std).unwrap_or_else(idle);
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        tokio::select! {
            biased;
            () = shared.stop.closed() => break,
            Some(r) = durable.recv() => engine.durable(r),
            cmd = cmds.recv() => match cmd {
                Some(c) => engine.command(c),
                None => break, // every handle is gone
            },
            Some((from, msg)) = inbound.recv() => engine.message(from, msg),
            () = &mut sleep => {}
        }
        for _ in 0..BATCH {
            let Ok(r) = durable.try_recv() else { break };
            engine.durable(r);
        }
        for _ in 0..BATCH {
            let Ok((from, msg)) = inbound.try_recv() else { break };
            engine.message(from, msg);
        }
        for _ in 0..BATCH {
            let Ok(c) = cmds.try_recv() else { break };
            engine.command(c);
        }
        engine.timer();
        running = engine.flush();
    }

    // Shutting down (asked to, every handle dropped, or failed).
    shared.stop.close();
    for p in &shared.peers {
        p.close();
    }
    drop(inbound);
    // Queued commands never reached the node: dropping them (and their
    // reply senders) tells their proposers `Shutdown`.
    cmds.close();
    while cmds.try_recv().is_ok() {}
    drop(cmds);
    if let Some(disk) = engine.stop() {
        let _ = tokio::task::spawn_blocking(move || disk.shutdown()).await;
    }
    drop(durable);
    for child in children {
        let _ = child.await;
    }
    drop(engine);
    shared.finish();
    drop(stop_on_exit);
    drop(guard);
}

/// A running node. Cheap to clone; every clone reaches the same node. When
/// the last clone is dropped the node shuts down in the background.
pub struct Handle<S: StateMachine> {
    cmds: mpsc::Sender<Command<S>>,
    shared: Arc<Shared>,
}

impl<S: StateMachine> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle { cmds: self.cmds.clone(), shared: self.shared.clone() }
    }
}

impl<S: StateMachine> fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("id", &self.shared.id()).field("listen", &self.shared.listen).finish()
    }
}

impl<S> Handle<S>
where
    S: StateMachine + Send + 'static,
    S::Output: Send + 'static,
{
    /// Proposes `command` and waits until it is committed and applied on
    /// this node, returning the state machine's output.
    ///
    /// Only the leader accepts proposals: elsewhere the answer is
    /// [`ProposeError::NotLeader`] with the leader this node knows of. See
    /// [`ProposeError`] for which errors promise the command was not applied.
    pub async fn propose(&self, command: impl Into<Bytes>) -> Result<S::Output, ProposeError> {
        let command: Bytes = command.into();
        let max = self.shared.config.raft.max_entry_bytes;
        if command.len() > max {
            return Err(ProposeError::TooLarge { size: command.len(), max });
        }
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let work = async {
            self.cmds.send(Command::Propose { command, reply }).await.map_err(|_| ProposeError::Shutdown)?;
            // A reply dropped unanswered means the command was still queued
            // when the node stopped: it never reached the log.
            rx.await.unwrap_or(Err(ProposeError::Shutdown))
        };
        tokio::time::timeout(self.shared.config.propose_timeout, work).await.unwrap_or(Err(ProposeError::Timeout))
    }

    /// A linearizable read: `query` is a command that reads (for the
    /// key-value store, a `KvOp::Get`), and it goes through the log like any
    /// proposal, so its answer reflects every write acknowledged before the
    /// call. Same errors as [`Handle::propose`].
    pub async fn read(&self, query: impl Into<Bytes>) -> Result<S::Output, ProposeError> {
        self.propose(query).await
    }

    /// Runs `f` on this node's state machine as it is now, without going
    /// through the log: fast but possibly stale (a follower, or a deposed
    /// leader). Fails only with [`ProposeError::Shutdown`].
    pub async fn local_read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&S) -> R + Send + 'static,
    ) -> Result<R, ProposeError> {
        let (tx, rx) = oneshot::channel();
        let read = Box::new(move |s: &S| {
            let _ = tx.send(f(s));
        });
        self.cmds.send(Command::LocalRead(read)).await.map_err(|_| ProposeError::Shutdown)?;
        rx.await.map_err(|_| ProposeError::Shutdown)
    }

    /// Stops the node: waiting proposers are told their outcome is unknown,
    /// queued writes are made durable, connections are closed, and every
    /// task and thread the node started has ended when this returns. Other
    /// clones of the handle then get [`ProposeError::Shutdown`].
    pub async fn shutdown(self) {
        self.shared.stop.close();
        all_stopped(&self.shared.tasks).await;
    }
}

impl<S: StateMachine> Handle<S> {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id()
    }

    /// The address the node accepts peers on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// A snapshot of the node's role, indexes and links. Never waits.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Follows role, term and leader changes.
    pub fn role_watch(&self) -> RoleWatch {
        RoleWatch::new(self.shared.role.clone())
    }

    /// Counts the node's running tasks; still usable after `shutdown`.
    pub fn task_monitor(&self) -> TaskMonitor {
        TaskMonitor(self.shared.tasks.clone())
    }
}
