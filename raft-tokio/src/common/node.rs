//! [`Node::start`] and the node's owning task, written once against the
//! crate's `rt` module (channels, spawning, the blocking pool, timers).

use crate::common::api::{NodeConfig, StartError};
use crate::common::engine::{self, COMMAND_QUEUE, Command, DiskResult, INBOUND_QUEUE, Owner, Shared};
use crate::common::handle::Handle;
use crate::common::net;
use crate::common::sync::{StopOnDrop, TaskCount, TaskGuard, Watch, first};
use crate::rt::{self, Receiver, TcpListener};
use raft_core::{Message, NodeId};
use raft_host::StateMachine;
use std::future::pending;
use std::sync::Arc;

/// Starts nodes. (A namespace: the running node is reached through its [`Handle`].)
#[derive(Debug)]
pub struct Node(());

impl Node {
    /// Starts a node: binds `config.listen`, opens and recovers
    /// `config.data_dir` (on the runtime's blocking pool), and spawns the
    /// node's tasks on the runtime (see the crate documentation for which
    /// runtime, and what it must provide).
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
        let (durable_tx, durable_rx) = rt::unbounded::<DiskResult>();
        let disk_guard = TaskGuard::new(&tasks);
        let on_durable = move |r: DiskResult| {
            let _counted = &disk_guard; // the disk thread counts as running until it drops this
            rt::send_now(&durable_tx, r);
        };
        let cfg = config.clone();
        let opened = rt::unblock(move || engine::open(&cfg, state_machine, on_durable)).await;
        let (engine, clock) = opened.ok_or(StartError::Interrupted)??;

        let shared = Arc::new(Shared::new(config, listen, tasks.clone()));
        let engine = Owner::new(engine, clock, shared.clone());
        let (cmd_tx, cmd_rx) = rt::bounded(COMMAND_QUEUE);
        let (in_tx, in_rx) = rt::bounded(INBOUND_QUEUE);
        let mut children = Vec::new();
        for peer in &shared.peers {
            let guard = TaskGuard::new(&tasks);
            children.push(rt::spawn(net::write_loop(peer.clone(), shared.clone(), guard)));
        }
        let guard = TaskGuard::new(&tasks);
        children.push(rt::spawn(net::accept_loop(listener, shared.clone(), in_tx, guard)));
        let guard = TaskGuard::new(&tasks);
        rt::detach(run(engine, cmd_rx, in_rx, durable_rx, shared.clone(), children, guard));
        Ok(Handle::new(cmd_tx, shared))
    }
}

/// What woke the owning task.
enum Input<S: StateMachine> {
    Stop,
    Durable(DiskResult),
    Command(Option<Command<S>>),
    Message(NodeId, Message),
    Timer,
}

/// The owning task.
async fn run<S>(
    mut engine: Owner<S>,
    mut cmds: Receiver<Command<S>>,
    mut inbound: Receiver<(NodeId, Message)>,
    mut durable: rt::UnboundedReceiver<DiskResult>,
    shared: Arc<Shared>,
    children: Vec<rt::Task>,
    guard: TaskGuard,
) where
    S: StateMachine + Send + 'static,
    S::Output: Send + 'static,
{
    let stop_on_exit = StopOnDrop(shared.stop.clone());
    let mut alarm = rt::Alarm::new();
    let mut running = engine.flush();
    while running {
        let deadline = engine.deadline();
        // The first ready input, in this order of priority.
        let stop = async {
            shared.stop.closed().await;
            Input::Stop
        };
        let disk = async {
            match rt::recv_unbounded(&mut durable).await {
                Some(r) => Input::Durable(r),
                None => pending().await,
            }
        };
        let command = async { Input::Command(rt::recv(&mut cmds).await) };
        let message = async {
            match rt::recv(&mut inbound).await {
                Some((from, msg)) => Input::Message(from, msg),
                None => pending().await,
            }
        };
        let timer = async {
            alarm.wait(deadline).await;
            Input::Timer
        };
        match first(first(first(stop, disk), first(command, message)), timer).await {
            Input::Stop | Input::Command(None) => break, // asked to, or every handle is gone
            Input::Durable(r) => engine.durable(r),
            Input::Command(Some(c)) => engine.command(c),
            Input::Message(from, msg) => engine.message(from, msg),
            Input::Timer => {}
        }
        running = engine.turn(
            || rt::try_recv_unbounded(&mut durable),
            || rt::try_recv(&mut inbound),
            || rt::try_recv(&mut cmds),
        );
    }

    // Shutting down (asked to, every handle dropped, or failed).
    shared.stop.close();
    for p in &shared.peers {
        p.close();
    }
    drop(inbound);
    // Queued commands never reached the node: dropping them (and their
    // reply senders) tells their proposers `Shutdown`.
    rt::close(&mut cmds);
    while rt::try_recv(&mut cmds).is_some() {}
    drop(cmds);
    if let Some(disk) = engine.stop() {
        rt::unblock(move || disk.shutdown()).await;
    }
    drop(durable);
    for child in children {
        rt::join(child).await;
    }
    drop(engine);
    shared.finish();
    drop(stop_on_exit);
    drop(guard);
}
