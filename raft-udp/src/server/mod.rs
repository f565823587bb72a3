//! One Raft member serving peers and clients on one UDP socket.
//!
//! [`run`] binds the socket and runs the node on a single-threaded tokio
//! runtime until SIGTERM or SIGINT: raft-net's node task (the
//! [`raft_host::Engine`] with the key-value store, the disk thread, and
//! raft-net's UDP transport on this socket), and this module's service,
//! which turns client datagrams into proposals through the node's
//! [`raft_net::Handle`] (a follower forwards them to its leader) and
//! answers status and leadership-transfer requests. A client is answered
//! only when its command is applied, which the core allows only once it is
//! durable on a majority and locally.

mod clients;
mod members;
mod registrations;
mod sessions;
mod transfer;

pub use clients::ServiceLimits;

use crate::keyfile::cluster_id;
use crate::packet::MAX_DATAGRAM;
use crate::random_u64;
use raft_core::{Config, ConfigError, Duration as CoreDuration, NodeId};
use raft_host::KvStore;
use raft_host::engine::Failure;
use raft_host::secure::KeyFile;
use raft_host::{DiskLog, NodeMeta, Repaired, StorageError};
use raft_net::{NodeConfig, RoleInfo, StartError, UdpOptions};
use raft_tokio::Tokio;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the drop counts are looked at.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Drop counts are logged at most this often (when they changed).
const LOG_DROPS_EVERY: Duration = Duration::from_secs(10);
/// A proposal whose outcome has not come after this long is given up.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Largest Raft message a node builds (`Config::max_message_bytes`): 256 KiB,
/// about 190 datagrams of 1400 bytes. Kept well below the core's 1 MiB
/// default so that a burst of fragments fits the socket buffers and a lost
/// fragment costs little.
pub const MAX_MESSAGE_BYTES: usize = 256 << 10;
/// Largest command a node accepts (`Config::max_entry_bytes`). A client
/// request travels in one datagram, and its entry is smaller than the
/// request, so commands are bounded by that anyway; values are bounded
/// further by [`crate::packet::MAX_VALUE_BYTES`], so that a get can return them.
pub const MAX_ENTRY_BYTES: usize = 64 << 10;
/// Entries applied between two snapshots, unless told otherwise. A
/// snapshot serializes the whole store on the node's task and is written
/// and fsynced on the disk thread ahead of the log's next sync, so every one
/// stalls writes: at 10,000 (the core's default) a node under 64 clients
/// took one every ~2 s and its worst write waited 0.4-1 s; at 100,000 (as
/// etcd's default snapshot count) the worst was under 0.1 s in the same
/// back-to-back runs. The in-memory log stays bounded by the core's
/// `snapshot_after_log_bytes` (64 MiB) either way.
pub const SNAPSHOT_AFTER_ENTRIES: u64 = 100_000;
/// Requested size of the socket's kernel buffers (the kernel may cap it at
/// `net.core.rmem_max` / `wmem_max`).
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Everything `raft-udp node` is told on its command line.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This node's id.
    pub id: u64,
    /// The address to bind, for peers and clients.
    pub listen: SocketAddr,
    /// Every other member: id and address.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Where the log, hard state and snapshot live.
    pub data_dir: PathBuf,
    /// The cluster key file (key and incarnation).
    pub key: KeyFile,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeout range, `[min, max)`.
    pub election_timeout: (Duration, Duration),
    /// Largest datagram sent to a peer, seal included.
    pub max_datagram: usize,
    /// Not yet a member: no bootstrap configuration (`peers` must be empty).
    pub join: bool,
    /// Take a snapshot every this many applied entries (`None`:
    /// [`SNAPSHOT_AFTER_ENTRIES`]).
    pub snapshot_after_entries: Option<u64>,
    /// Repair damaged log segments before starting ([`repair`]).
    pub repair: bool,
    /// Where to serve Prometheus metrics over HTTP (`GET /metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// When the disk log moves its synced watermark ([`raft_host::Watermark`]).
    pub watermark: raft_host::Watermark,
    /// How the leader confirms its leadership for a get (`Config::read_mode`).
    pub read_mode: raft_core::ReadMode,
    /// Client sessions and the leader's uncommitted bytes.
    pub limits: ServiceLimits,
}

/// Why a node stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// The options make no sense. Exit status 2.
    Options(OptionsError),
    /// The async runtime could not start. Exit status 2.
    Runtime(std::io::Error),
    /// The listen address cannot be bound. Exit status 2.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The node could not start from its data directory: one of another
    /// node or cluster, a damaged log, an unusable snapshot. Exit status 2.
    Start {
        /// The data directory.
        data_dir: PathBuf,
        /// Why.
        source: StartError,
    },
    /// `--repair` could not repair the data directory (damage outside the
    /// log segments, or an I/O error). Exit status 2.
    Repair {
        /// The data directory.
        data_dir: PathBuf,
        /// Why.
        source: StorageError,
    },
    /// It failed while running (a disk error, an undecodable snapshot): it
    /// stopped rather than continue unsafely. Exit status 1.
    Failed(Arc<Failure>),
    /// It stopped by itself without a recorded failure. Exit status 1.
    Stopped,
}

impl NodeError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::Options(_)
            | NodeError::Runtime(_)
            | NodeError::Bind { .. }
            | NodeError::Start { .. }
            | NodeError::Repair { .. } => 2,
            NodeError::Failed(_) | NodeError::Stopped => 1,
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Options(e) => e.fmt(f),
            NodeError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
            NodeError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            // A storage error names its file already.
            NodeError::Start { source: StartError::Storage(e), .. } => e.fmt(f),
            NodeError::Start { data_dir, source } => write!(f, "cannot start from {}: {source}", data_dir.display()),
            NodeError::Repair { data_dir, source } => write!(f, "--repair of {} failed: {source}", data_dir.display()),
            NodeError::Failed(e) => e.fmt(f),
            NodeError::Stopped => f.write_str("the node stopped"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NodeError::Options(e) => Some(e),
            NodeError::Runtime(e) | NodeError::Bind { source: e, .. } => Some(e),
            NodeError::Start { source, .. } => Some(source),
            NodeError::Repair { source, .. } => Some(source),
            NodeError::Failed(e) => Some(&**e),
            NodeError::Stopped => None,
        }
    }
}

/// Node options that make no sense.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// `--peer` lists the node itself.
    PeerIsSelf(u64),
    /// `--max-datagram` is out of range.
    MaxDatagram {
        /// The value given.
        value: usize,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed.
        max: usize,
    },
    /// `--join` with `--peer` flags: a joining node learns its peers.
    JoinWithPeers,
    /// The core refuses the resulting settings.
    Invalid(ConfigError),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::PeerIsSelf(id) => write!(f, "--peer lists node {id} itself; list only the other members"),
            OptionsError::MaxDatagram { value, min, max } => {
                write!(f, "--max-datagram {value} is out of range {min}..={max}")
            }
            OptionsError::JoinWithPeers => {
                f.write_str("--join takes no --peer: a joining node learns its peers from the cluster")
            }
            OptionsError::Invalid(e) => write!(f, "invalid node settings: {e}"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// The core's configuration for these options. Errors are one line.
pub fn config(opts: &NodeOptions) -> Result<Config, OptionsError> {
    if opts.peers.contains_key(&opts.id) {
        return Err(OptionsError::PeerIsSelf(opts.id));
    }
    let (min, max) = (crate::fragment::MIN_DATAGRAM, MAX_DATAGRAM);
    if !(min..=max).contains(&opts.max_datagram) {
        return Err(OptionsError::MaxDatagram { value: opts.max_datagram, min, max });
    }
    if opts.join && !opts.peers.is_empty() {
        return Err(OptionsError::JoinWithPeers);
    }
    let members: Vec<NodeId> = if opts.join {
        Vec::new()
    } else {
        std::iter::once(opts.id).chain(opts.peers.keys().copied()).map(NodeId).collect()
    };
    let mut config = Config::new(NodeId(opts.id), members);
    config.heartbeat_interval = CoreDuration::from(opts.heartbeat);
    config.election_timeout_min = CoreDuration::from(opts.election_timeout.0);
    config.election_timeout_max = CoreDuration::from(opts.election_timeout.1);
    config.seed ^= random_u64();
    config.max_message_bytes = MAX_MESSAGE_BYTES;
    config.max_entry_bytes = MAX_ENTRY_BYTES;
    config.max_inflight_bytes = 4 * MAX_MESSAGE_BYTES;
    config.snapshot_after_entries = Some(opts.snapshot_after_entries.unwrap_or(SNAPSHOT_AFTER_ENTRIES));
    // A client reaching any live follower is served: its command goes to the leader.
    config.forward_proposals = true;
    config.read_mode = opts.read_mode;
    config.validate().map_err(OptionsError::Invalid)?;
    Ok(config)
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at its configured maximum.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Runs a node until `stop` completes or SIGTERM/SIGINT arrives, then
/// finishes the queued disk writes and returns `Ok`.
pub fn run(opts: NodeOptions, stop: impl Future<Output = ()>) -> Result<(), NodeError> {
    let config = config(&opts).map_err(NodeError::Options)?;
    if opts.repair {
        repair(&opts)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(NodeError::Runtime)?;
    let std_socket = bind(opts.listen).map_err(|source| NodeError::Bind { addr: opts.listen, source })?;
    runtime.block_on(async move {
        let peers: BTreeMap<NodeId, SocketAddr> = opts.peers.iter().map(|(id, a)| (NodeId(*id), *a)).collect();
        let mut node = NodeConfig::new(config, &opts.data_dir, opts.listen, peers, opts.key.clone());
        node.cluster_id = cluster_id(&opts.key);
        // A client is answered when its command is applied; one that waits
        // longer than this has long given up (a retry settles the outcome).
        node.propose_timeout = FORGET_AFTER;
        node.metrics_listen = opts.metrics_listen;
        node.disk_log = node.disk_log.clone().watermark(opts.watermark);
        let udp = UdpOptions::new(opts.max_datagram).with_socket(std_socket);
        let (handle, app) = match raft_net::Node::start_udp(Tokio::current(), node, KvStore::new(), udp).await {
            Ok(started) => started,
            Err(source) => return Err(NodeError::Start { data_dir: opts.data_dir.clone(), source }),
        };
        let status = handle.status();
        tracing::info!(
            id = opts.id,
            listen = %opts.listen,
            peers = ?opts.peers,
            data_dir = %opts.data_dir.display(),
            term = status.role.term.0,
            last_index = status.last_log_index.0,
            snapshot_index = status.snapshot_index.0,
            metrics = ?handle.metrics_addr(),
            "node started"
        );
        if status.membership_index.0 > 0 && (!opts.peers.is_empty() || opts.join) {
            tracing::info!(
                voters = ?status.membership.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
                learners = ?status.membership.learners.iter().map(|v| v.0).collect::<Vec<_>>(),
                "the data directory holds a configuration: it governs membership (--peer/--join flags ignored; \
                 a --peer address still routes to its member)"
            );
        } else if opts.join {
            tracing::info!("joining: waiting for a leader to add this node");
        }
        let service = clients::Service::new(
            handle.clone(),
            app,
            opts.peers.into_iter().collect(),
            opts.limits,
            opts.election_timeout.1,
        );
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = termination() => {}
            }
        };
        let result = serve(service, stop).await;
        let tasks = handle.task_monitor();
        handle.shutdown().await;
        tasks.stopped().await;
        tracing::info!("stopped; disk writes flushed");
        result
    })
}

/// `--repair`: [`DiskLog::repair`] on the data directory (what
/// `DiskLogOptions::repair(true)` does on open), logging each damage cut
/// away, or that the log was sound. The hard state is then marked
/// `catching_up`: the node neither votes nor campaigns until it has caught
/// up from a leader.
pub fn repair(opts: &NodeOptions) -> Result<Repaired, NodeError> {
    let meta = NodeMeta::new(NodeId(opts.id), cluster_id(&opts.key));
    let dir = opts.data_dir.display();
    let repaired = DiskLog::repair(&opts.data_dir, meta)
        .map_err(|source| NodeError::Repair { data_dir: opts.data_dir.clone(), source })?;
    if repaired.is_clean() {
        tracing::info!(data_dir = %dir, "--repair: the log is sound; nothing discarded");
    }
    for d in &repaired.damage {
        tracing::warn!(
            file = %d.file.display(),
            offset = d.offset,
            reason = %d.reason,
            "--repair: damaged log cut here (this record and everything after it discarded); \
             the node neither votes nor campaigns until it has caught up from the leader"
        );
    }
    Ok(repaired)
}

/// Serves clients until `stop` completes (`Ok`) or the node fails.
async fn serve(
    (mut service, mut done_rx): (clients::Service, tokio::sync::mpsc::UnboundedReceiver<clients::Finished>),
    stop: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    tokio::pin!(stop);
    let mut roles = service.handle.role_watch();
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    let mut logged_drops: (u64, Option<Instant>) = (0, None);
    let mut logged_removed = false;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            // Rare events before the client traffic, which can be ready
            // on every turn under load (it would starve them).
            r = roles.changed() => match r {
                Some(RoleInfo { role, term, leader }) => {
                    tracing::info!(?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
                }
                None => break,
            },
            _ = housekeeping.tick() => {
                service.refresh_session_gauges();
                service.forget_leader_addr();
                if !logged_removed && service.handle.status().removed {
                    logged_removed = true;
                    tracing::warn!("this node was removed from the cluster: it no longer campaigns; stop it");
                }
                let now = Instant::now();
                let total = service.handle.status().datagrams.map_or(0, |c| c.total());
                let due = logged_drops.1.is_none_or(|t| now.saturating_duration_since(t) >= LOG_DROPS_EVERY);
                if total != logged_drops.0 && due {
                    logged_drops = (total, Some(now));
                    let counters = service.handle.status().datagrams.unwrap_or_default();
                    tracing::warn!(%counters, "dropped datagrams so far");
                }
            }
            Some(done) = done_rx.recv() => service.finished(done),
            d = service.app.recv() => {
                let Some(d) = d else { break };
                service.datagram(d);
            }
        }
    }
    // The node stopped by itself.
    Err(service.handle.status().failure.map_or(NodeError::Stopped, NodeError::Failed))
}

/// Completes on SIGTERM or SIGINT (never, if the handlers cannot be installed).
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}
