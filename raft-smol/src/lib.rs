//! raft-smol: a replicated state machine on smol / async-io, with no tokio
//! anywhere in its dependency graph.
//!
//! [`Node::start`] runs one member of a Raft cluster: the sans-IO core
//! ([`raft_core`]) and a [`StateMachine`] driven by
//! one task, a durable log ([`raft_host::DiskLog`]) written with group
//! commit on a dedicated thread, and authenticated TCP links to the other
//! members. The returned [`Handle`] proposes commands, reads, reports
//! [`Status`], follows role changes and shuts the node down. Tasks run on
//! smol's global executor (`smol::spawn`; its thread count follows the
//! `SMOL_THREADS` environment variable).
//!
//! The API, behaviour and wire format are raft-tokio's: the
//! runtime-independent half of both crates is one source tree (raft-tokio's
//! `src/common`, compiled into this crate by path), and a cluster may mix
//! raft-tokio and raft-smol nodes.
//!
//! # Example: a one-node key-value store
//!
//! ```
//! use raft_core::{Config, NodeId};
//! use raft_host::kv::{KvCommand, KvOp, KvOutput, encode_command};
//! use raft_host::{ClusterKey, KvStore};
//! use raft_smol::{Node, NodeConfig};
//!
//! smol::block_on(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let raft = Config::new(NodeId(1), [NodeId(1)]);
//!     let key = ClusterKey::from_bytes([7; 32]);
//!     let config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key);
//!     let node = Node::start(config, KvStore::new()).await.unwrap();
//!
//!     node.role_watch().wait_for(|r| r.leader.is_some()).await;
//!     let put = KvCommand { client: 1, seq: 1, op: KvOp::put("x", "1") };
//!     assert_eq!(node.propose(encode_command(&put)).await.unwrap(), Ok(KvOutput::Put));
//!     let get = KvCommand { client: 1, seq: 2, op: KvOp::get("x") };
//!     assert_eq!(node.read(encode_command(&get)).await.unwrap(), Ok(KvOutput::get(Some("1"))));
//!
//!     let tasks = node.task_monitor();
//!     node.shutdown().await;
//!     assert_eq!(tasks.running(), 0);
//! });
//! ```
//!
//! # Architecture
//!
//! As in raft-tokio: one task owns the node and the timer (a wake-up is
//! checked against the clock before the core's timer fires); the disk
//! thread makes writes durable with group commit; each node dials every
//! peer for its own outgoing direction (one connection per ordered pair),
//! sending `len: u32 LE | sealed message` frames
//! ([`raft_host::transport_frame`]) from a per-peer writer with a bounded,
//! two-lane, drop-oldest queue, reconnecting with capped exponential backoff
//! and jitter; readers refuse an over-long frame before allocating.
//! Shutdown stops every task and joins the disk thread ([`TaskMonitor`]).

#![warn(missing_docs)]

#[path = "../../raft-tokio/src/common/mod.rs"]
mod common;
mod net;

pub use common::api::{NodeConfig, PeerStatus, ProposeError, RoleInfo, RoleWatch, StartError, Status, TaskMonitor};
pub use raft_core;
pub use raft_host;

use common::engine::{self, Command, DiskResult, Engine, Shared};
use common::sync::{StopOnDrop, TaskCount, TaskGuard, Watch, all_stopped};
use raft_core::{Bytes, Message, NodeId};
use raft_host::StateMachine;
use smol::channel::{self, Receiver, Sender};
use smol::future::{self, FutureExt};
use smol::net::TcpListener;
use smol::{Task, Timer};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests a handle may queue before `propose` waits for room.
const COMMAND_QUEUE: usize = 4096;
/// Inbound messages queued for the owning task before readers wait.
const INBOUND_QUEUE: usize = 1024;
/// Most inputs of one kind taken per turn of the owning task.
const BATCH: usize = 256;

/// `f`, or `None` after `d`.
pub(crate) async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            Timer::after(d).await;
            None
        })
        .await
}

/// `f`, or `None` once the node stops (checked first).
pub(crate) async fn or_stop<T>(shared: &Shared, f: impl Future<Output = T>) -> Option<T> {
    async {
        shared.stop.closed().await;
        None
    }
    .or(async { Some(f.await) })
    .await
}

/// Starts nodes. (A namespace: the running node is reached through its [`Handle`].)
#[derive(Debug)]
pub struct Node(());

impl Node {
    /// Starts a node: binds `config.listen`, opens and recovers
    /// `config.data_dir` (on smol's blocking pool), and spawns the node's
    /// tasks on smol's global executor.
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
        let (durable_tx, durable_rx) = channel::unbounded::<DiskResult>();
        let disk_guard = TaskGuard::new(&tasks);
        let on_durable = move |r: DiskResult| {
            let _counted = &disk_guard; // the disk thread counts as running until it drops this
            let _ = durable_tx.try_send(r);
        };
        let cfg = config.clone();
        let (driver, disk, clock) = smol::unblock(move || engine::open(&cfg, state_machine, on_durable)).await?;

        let shared = Arc::new(Shared::new(config, listen, tasks.clone()));
        let engine = Engine::new(driver, disk, clock, shared.clone());
        let (cmd_tx, cmd_rx) = channel::bounded(COMMAND_QUEUE);
        let (in_tx, in_rx) = channel::bounded(INBOUND_QUEUE);
        let mut children = Vec::new();
        for peer in &shared.peers {
            let guard = TaskGuard::new(&tasks);
            children.push(smol::spawn(net::write_loop(peer.clone(), shared.clone(), guard)));
        }
        let guard = TaskGuard::new(&tasks);
        children.push(smol::spawn(net::accept_loop(listener, shared.clone(), in_tx, guard)));
        let guard = TaskGuard::new(&tasks);
        smol::spawn(run(engine, cmd_rx, in_rx, durable_rx, shared.clone(), children, guard)).detach();
        Ok(Handle { cmds: cmd_tx, shared })
    }
}

enum Input<S: StateMachine> {
    Stop,
    Durable(DiskResult),
    Command(Option<Command<S>>),
    Message(NodeId, Message),
    Timer,
}

/// The owning task.
async fn run<S>(
    mut engine: Engine<S>,
    cmds: Receiver<Command<S>>,
    inbound: Receiver<(NodeId, Message)>,
    durable: Receiver<DiskResult>,
    shared: Arc<Shared>,
    children: Vec<Task<()>>,
    guard: TaskGuard,
) where
    S: StateMachine + Send + 'static,
    S::Output: Send + 'static,
{
    let stop_on_exit = StopOnDrop(shared.stop.clone());
    let mut timer = Timer::never();
    let mut armed: Option<Instant> = None;
    let mut running = engine.flush();
    while running {
        let deadline = engine.deadline();
        if deadline != armed {
            match deadline {
                Some(d) => timer.set_at(d),
                None => timer = Timer::never(),
            }
            armed = deadline;
        }
        let input = async {
            shared.stop.closed().await;
            Input::Stop
        }
        .or(async {
            match durable.recv().await {
                Ok(r) => Input::Durable(r),
                Err(_) => future::pending().await,
            }
        })
        .or(async { Input::Command(cmds.recv().await.ok()) })
        .or(async {
            match inbound.recv().await {
                Ok((from, msg)) => Input::Message(from, msg),
                Err(_) => future::pending().await,
            }
        })
        .or(async {
            (&mut timer).await;
            Input::Timer
        })
        .await;
        match input {
            Input::Stop | Input::Command(None) => break,
            Input::Durable(r) => engine.durable(r),
            Input::Command(Some(c)) => engine.command(c),
            Input::Message(from, msg) => engine.message(from, msg),
            // A fired timer must be re-armed even if the deadline is unchanged.
            Input::Timer => armed = None,
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
    inbound.close();
    cmds.close();
    // Queued commands never reached the node: dropping them (and their
    // reply senders) tells their proposers `Shutdown`.
    while cmds.try_recv().is_ok() {}
    drop(inbound);
    drop(cmds);
    if let Some(disk) = engine.stop() {
        smol::unblock(move || disk.shutdown()).await;
    }
    drop(durable);
    for child in children {
        child.await;
    }
    drop(engine);
    shared.finish();
    drop(stop_on_exit);
    drop(guard);
}

/// A running node. Cheap to clone; every clone reaches the same node. When
/// the last clone is dropped the node shuts down in the background.
pub struct Handle<S: StateMachine> {
    cmds: Sender<Command<S>>,
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
        let (tx, rx) = channel::bounded(1);
        let reply = Box::new(move |r| {
            let _ = tx.try_send(r);
        });
        let work = async {
            self.cmds.send(Command::Propose { command, reply }).await.map_err(|_| ProposeError::Shutdown)?;
            // A reply dropped unanswered means the command was still queued
            // when the node stopped: it never reached the log.
            rx.recv().await.unwrap_or(Err(ProposeError::Shutdown))
        };
        timeout(self.shared.config.propose_timeout, work).await.unwrap_or(Err(ProposeError::Timeout))
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
        let (tx, rx) = channel::bounded(1);
        let read = Box::new(move |s: &S| {
            let _ = tx.try_send(f(s));
        });
        self.cmds.send(Command::LocalRead(read)).await.map_err(|_| ProposeError::Shutdown)?;
        rx.recv().await.map_err(|_| ProposeError::Shutdown)
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
