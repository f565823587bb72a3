//! [`Node::start`] and the node's owning task, written once against
//! [`Runtime`] (spawning, the blocking pool, timers, sockets).

use crate::api::{NodeConfig, StartError};
use crate::engine::{self, COMMAND_QUEUE, Command, DiskResult, INBOUND_QUEUE, Owner, Shared};
use crate::handle::Handle;
use crate::metrics::Metrics;
use crate::metrics_http::MetricsServer;
use crate::net;
use crate::runtime::Runtime;
use crate::sync::{Joinable, StopOnDrop, TaskCount, TaskGuard, Watch, first, spawn};
use crate::udp::{self, UdpApp, UdpOptions};
use async_channel::Receiver;
use raft_core::{Message, NodeId};
use raft_host::StateMachine;
use std::future::pending;
use std::sync::Arc;
use std::time::Instant;

/// Starts nodes. (A namespace: the running node is reached through its [`Handle`].)
#[derive(Debug)]
pub struct Node(());

impl Node {
    /// Starts a node on `rt` whose peers talk over TCP: binds
    /// `config.listen`, opens and recovers `config.data_dir` (on the
    /// runtime's blocking pool), and spawns the node's tasks on the runtime.
    ///
    /// `state_machine` must be in the state of its `last_applied()` index (a
    /// fresh in-memory one is rebuilt from the log and snapshot on disk).
    /// On error nothing is left running.
    pub async fn start<R, S>(rt: R, config: NodeConfig, state_machine: S) -> Result<Handle<S>, StartError>
    where
        R: Runtime,
        S: StateMachine + Send + 'static,
        S::Output: Send + 'static,
    {
        config.validate()?;
        let addr = config.listen;
        let listener = rt.tcp_bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let listen = R::tcp_local_addr(&listener).map_err(|source| StartError::Bind { addr, source })?;
        let links = |shared: &Arc<Shared>, inbound| {
            let mut children = Vec::new();
            for peer in shared.peers() {
                let guard = TaskGuard::new(&shared.tasks);
                children.push(spawn(&rt, net::write_loop(rt.clone(), peer, shared.clone(), guard)));
            }
            let late = rt.clone();
            shared.set_spawn_peer(Box::new(move |shared, peer| {
                let guard = TaskGuard::new(&shared.tasks);
                spawn(&late, net::write_loop(late.clone(), peer, shared.clone(), guard))
            }));
            let guard = TaskGuard::new(&shared.tasks);
            children.push(spawn(&rt, net::accept_loop(rt.clone(), listener, shared.clone(), inbound, guard)));
            children
        };
        launch(&rt, config, listen, None, state_machine, links).await
    }

    /// Starts a node on `rt` whose peers talk over UDP (see [`crate::udp`]):
    /// as [`Node::start`], with `udp.socket` (or a socket bound to
    /// `config.listen`) carrying sealed, fragmented peer messages. The
    /// socket may carry the application's own datagrams too: they arrive at
    /// the returned [`UdpApp`], which also sends on the socket.
    pub async fn start_udp<R, S>(
        rt: R,
        config: NodeConfig,
        state_machine: S,
        udp: UdpOptions,
    ) -> Result<(Handle<S>, UdpApp), StartError>
    where
        R: Runtime,
        S: StateMachine + Send + 'static,
        S::Output: Send + 'static,
    {
        config.validate()?;
        let addr = config.listen;
        let bind = |e| StartError::Bind { addr, source: e };
        let socket = match udp.socket {
            Some(s) => s,
            None => {
                let s = std::net::UdpSocket::bind(addr).map_err(bind)?;
                s.set_nonblocking(true).map_err(bind)?;
                s
            }
        };
        let listen = socket.local_addr().map_err(bind)?;
        let socket = Arc::new(rt.udp_from_std(socket).map_err(bind)?);
        let counters = Arc::new(std::sync::Mutex::new(udp::Counters::default()));
        let (app_tx, app_rx) = async_channel::bounded(udp::APP_QUEUE);
        let (out_tx, out_rx) = async_channel::bounded(udp::APP_QUEUE);
        let app = UdpApp::new(app_rx, out_tx, config.key.clone(), config.raft.id, counters.clone());
        let links = |shared: &Arc<Shared>, inbound| {
            udp::spawn_links(&rt, socket, shared, inbound, app_tx, out_rx, udp.max_datagram)
        };
        let handle = launch(&rt, config, listen, Some(counters), state_machine, links).await?;
        Ok((handle, app))
    }
}

/// Opens the node's engine, then spawns its links (`links` gets the shared
/// state and the owning task's inbound channel) and its owning task.
async fn launch<R, S>(
    rt: &R,
    config: NodeConfig,
    listen: std::net::SocketAddr,
    datagrams: Option<Arc<std::sync::Mutex<udp::Counters>>>,
    state_machine: S,
    links: impl FnOnce(&Arc<Shared>, async_channel::Sender<(NodeId, Message)>) -> Vec<Joinable>,
) -> Result<Handle<S>, StartError>
where
    R: Runtime,
    S: StateMachine + Send + 'static,
    S::Output: Send + 'static,
{
    let metrics_server = match config.metrics_listen {
        Some(addr) => Some(MetricsServer::bind(addr).map_err(|source| StartError::Bind { addr, source })?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let mut config = config;
    // The bootstrap configuration entry carries every member's address, so
    // that a node added later can reach them all.
    if config.raft.member_addrs.is_empty() && !config.raft.members.is_empty() {
        let addrs = config.peers.iter().map(|(&id, a)| (id, *a)).chain([(config.raft.id, listen)]);
        config.raft.member_addrs = addrs.map(|(id, a)| (id, raft_core::Bytes::from(a.to_string().as_str()))).collect();
    }
    let tasks: TaskCount = Arc::new(Watch::new(0));
    let (durable_tx, durable_rx) = async_channel::unbounded::<DiskResult>();
    let disk_guard = TaskGuard::new(&tasks);
    let on_durable = move |r: DiskResult| {
        let _counted = &disk_guard; // the disk thread counts as running until it drops this
        let _ = durable_tx.try_send(r);
    };
    let cfg = config.clone();
    let opened_metrics = metrics.clone();
    let opened = rt.unblock(move || engine::open(&cfg, state_machine, &opened_metrics, on_durable)).await;
    let (engine, clock) = opened.ok_or(StartError::Interrupted)??;

    let metrics_addr = metrics_server.as_ref().map(MetricsServer::addr);
    let sleeper = Box::new(rt.clone());
    let shared = Arc::new(Shared::new(config, listen, tasks.clone(), sleeper, datagrams, metrics, metrics_addr));
    let engine = Owner::new(engine, clock, shared.clone());
    let (cmd_tx, cmd_rx) = async_channel::bounded(COMMAND_QUEUE);
    let (in_tx, in_rx) = async_channel::bounded(INBOUND_QUEUE);
    let mut children = links(&shared, in_tx);
    if let Some(server) = metrics_server {
        // A thread the system refuses leaves the node without its metrics
        // endpoint; that is no reason to stop the node that now runs.
        if let Ok(unblock) = server.serve(shared.clone(), TaskGuard::new(&tasks)) {
            children.push(spawn(rt, unblock));
        }
    }
    let guard = TaskGuard::new(&tasks);
    rt.spawn(run(rt.clone(), engine, cmd_rx, in_rx, durable_rx, shared.clone(), children, guard));
    Ok(Handle::new(cmd_tx, shared))
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
#[allow(clippy::too_many_arguments)] // one call site: the parts of a node
async fn run<R, S>(
    rt: R,
    mut engine: Owner<S>,
    cmds: Receiver<Command<S>>,
    inbound: Receiver<(NodeId, Message)>,
    durable: Receiver<DiskResult>,
    shared: Arc<Shared>,
    children: Vec<Joinable>,
    guard: TaskGuard,
) where
    R: Runtime,
    S: StateMachine + Send + 'static,
    S::Output: Send + 'static,
{
    let stop_on_exit = StopOnDrop(shared.stop.clone());
    let mut alarm = Alarm::<R>::new(&rt);
    let mut running = engine.flush();
    while running {
        let deadline = engine.deadline();
        // The first ready input, in this order of priority.
        let stop = async {
            shared.stop.closed().await;
            Input::Stop
        };
        let disk = async {
            match durable.recv().await.ok() {
                Some(r) => Input::Durable(r),
                None => pending().await,
            }
        };
        let command = async { Input::Command(cmds.recv().await.ok()) };
        let message = async {
            match inbound.recv().await.ok() {
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
        running = engine.turn(|| durable.try_recv().ok(), || inbound.try_recv().ok(), || cmds.try_recv().ok());
    }

    // Shutting down (asked to, every handle dropped, or failed).
    shared.stop.close();
    for p in shared.peers() {
        p.close();
    }
    drop(inbound);
    // Queued commands never reached the node: dropping them (and their
    // reply senders) tells their proposers `Shutdown`.
    cmds.close();
    while cmds.try_recv().is_ok() {}
    drop(cmds);
    if let Some(disk) = engine.stop() {
        rt.unblock(move || disk.shutdown()).await;
    }
    drop(durable);
    for child in children {
        child.join().await;
    }
    // Writers of peers added while running (none can be added now: the
    // receivers have ended and the stop signal is closed).
    let late = std::mem::take(&mut *shared.late_children.lock().unwrap_or_else(|e| e.into_inner()));
    for child in late {
        child.join().await;
    }
    drop(engine);
    shared.finish();
    drop(stop_on_exit);
    drop(guard);
}

/// The owning task's timer: one runtime timer, moved only when the deadline
/// moves or after it fired.
struct Alarm<R: Runtime> {
    timer: Option<R::Timer>,
    armed: Option<Instant>,
    rt: R,
}

impl<R: Runtime> Alarm<R> {
    fn new(rt: &R) -> Alarm<R> {
        Alarm { timer: None, armed: None, rt: rt.clone() }
    }

    /// Ready at `deadline`; never if there is none.
    async fn wait(&mut self, deadline: Option<Instant>) {
        let Some(at) = deadline else { return pending().await };
        if self.armed != Some(at) {
            match &mut self.timer {
                Some(t) => R::reset_timer(t, at),
                None => self.timer = Some(self.rt.timer(at)),
            }
            self.armed = Some(at);
        }
        if let Some(t) = &mut self.timer {
            t.await;
        }
        // A fired timer must be set again even if the deadline is unchanged.
        self.armed = None;
    }
}
