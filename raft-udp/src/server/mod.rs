//! One Raft member serving peers and clients on one UDP socket.
//!
//! [`run`] opens the data directory, binds the socket and runs the node on a
//! single-threaded tokio runtime until SIGTERM or SIGINT. One task owns the
//! [`raft_host::Engine`] (the node and its key-value store) and waits on the
//! socket, the node's next deadline, and the durability reports of the
//! [`raft_host::DiskThread`], which writes and fsyncs off the runtime with
//! group commit. A client is answered only when its command is applied,
//! which the core allows only once it is durable on a majority and locally.

mod clients;
mod event_loop;

use crate::fragment::{Fragmenter, Limits, Reassembler};
use crate::keyfile::cluster_id;
use crate::packet::MAX_DATAGRAM;
use crate::random_u64;
use raft_core::{Config, Duration as CoreDuration, NodeId};
use raft_host::StdClock;
use raft_host::{ClusterKey, DiskLog, Engine, KvStore, NodeMeta};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Largest Raft message a node builds (`Config::max_message_bytes`): 256 KiB,
/// about 190 datagrams of 1400 bytes. Kept well below the core's 1 MiB
/// default so that a burst of fragments fits the socket buffers and a lost
/// fragment costs little.
pub const MAX_MESSAGE_BYTES: usize = 256 << 10;
/// Largest command a node accepts (`Config::max_entry_bytes`). A client
/// request travels in one datagram, so commands are bounded by that anyway.
pub const MAX_ENTRY_BYTES: usize = 64 << 10;
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
    /// The cluster key.
    pub key: ClusterKey,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeout range, `[min, max)`.
    pub election_timeout: (Duration, Duration),
    /// Largest datagram sent to a peer, seal included.
    pub max_datagram: usize,
    /// Take a snapshot every this many applied entries (`None`: the core's
    /// default, 10,000).
    pub snapshot_after_entries: Option<u64>,
}

/// Why a node stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// It could not start: bad configuration, a data directory of another
    /// node or cluster, a damaged log, an address it cannot bind. Exit status 2.
    Start(String),
    /// It failed while running (a disk error, an undecodable snapshot): it
    /// stops rather than continue unsafely. Exit status 1.
    Failed(String),
}

impl NodeError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::Start(_) => 2,
            NodeError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Start(why) | NodeError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for NodeError {}

/// The core's configuration for these options. Errors are one line.
pub fn config(opts: &NodeOptions) -> Result<Config, String> {
    if opts.peers.contains_key(&opts.id) {
        return Err(format!("--peer lists node {} itself; list only the other members", opts.id));
    }
    if !(crate::fragment::MIN_DATAGRAM..=MAX_DATAGRAM).contains(&opts.max_datagram) {
        return Err(format!(
            "--max-datagram {} is out of range {}..={MAX_DATAGRAM}",
            opts.max_datagram,
            crate::fragment::MIN_DATAGRAM
        ));
    }
    let members = std::iter::once(opts.id).chain(opts.peers.keys().copied()).map(NodeId);
    let mut config = Config::new(NodeId(opts.id), members);
    config.heartbeat_interval = CoreDuration::from(opts.heartbeat);
    config.election_timeout_min = CoreDuration::from(opts.election_timeout.0);
    config.election_timeout_max = CoreDuration::from(opts.election_timeout.1);
    config.seed ^= random_u64();
    config.max_message_bytes = MAX_MESSAGE_BYTES;
    config.max_entry_bytes = MAX_ENTRY_BYTES;
    config.max_inflight_bytes = 4 * MAX_MESSAGE_BYTES;
    if let Some(n) = opts.snapshot_after_entries {
        config.snapshot_after_entries = Some(n);
    }
    config.validate().map_err(|e| format!("invalid node settings: {e}"))?;
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
    let config = config(&opts).map_err(NodeError::Start)?;
    let meta = NodeMeta::new(NodeId(opts.id), cluster_id(&opts.key));
    let (log, recovered) = DiskLog::open(&opts.data_dir, meta).map_err(|e| NodeError::Start(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NodeError::Start(format!("cannot start the runtime: {e}")))?;
    let std_socket =
        bind(opts.listen).map_err(|e| NodeError::Start(format!("cannot listen on {}: {e}", opts.listen)))?;
    runtime.block_on(async move {
        let socket = tokio::net::UdpSocket::from_std(std_socket)
            .map_err(|e| NodeError::Start(format!("cannot listen on {}: {e}", opts.listen)))?;
        let (term, last) = (recovered.hard_state.term, recovered.entries.last().map(|e| e.index));
        let clock = StdClock::new();
        let snapshot_index = recovered.snapshot.as_ref().map_or(0, |s| s.meta.index.0);
        let (tx, durable) = tokio::sync::mpsc::unbounded_channel();
        let engine = Engine::start(config, log, recovered, KvStore::new(), clock.now(), move |r| {
            let _ = tx.send(r);
        })
        .map_err(|e| NodeError::Start(format!("cannot start from {}: {e}", opts.data_dir.display())))?;
        tracing::info!(
            id = opts.id,
            listen = %opts.listen,
            peers = ?opts.peers,
            data_dir = %opts.data_dir.display(),
            term = term.0,
            last_index = last.map_or(0, |i| i.0),
            snapshot_index,
            "node started"
        );
        let server = event_loop::Server {
            id: opts.id,
            key: opts.key,
            peers: opts.peers.into_iter().collect(),
            engine,
            clock,
            frag: Fragmenter::new(opts.max_datagram, random_u64()),
            reasm: Reassembler::new(Limits::for_messages(MAX_MESSAGE_BYTES)),
            clients: Default::default(),
            counters: Default::default(),
            outbox: Vec::new(),
            logged_drops: (0, None),
        };
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = termination() => {}
            }
        };
        event_loop::serve(server, socket, durable, stop).await
    })
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
