//! [`ClusterUnderTest`] for nodes that run in this process: raft-net nodes
//! on tokio or smol, over TCP or UDP (or a mix of runtimes), each member
//! reaching the others through a [`FaultProxy`].

use super::{ClusterUnderTest, Failure, FaultProxy, KvResult, NodeView};
use raft_core::{Config, Duration as CoreDuration, NodeId};
use raft_host::kv::{KvCommand, encode_command};
use raft_host::secure::{Incarnation, KeyFile};
use raft_host::{ClusterKey, KvStore};
use raft_net::{Handle, Node, NodeConfig, ProposeError, TransferError, UdpOptions};
use raft_smol::Smol;
use raft_tokio::Tokio;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What an adapter needs to start one member.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Raft configuration (id, members, test timing).
    pub raft: Config,
    /// The member's data directory.
    pub data_dir: PathBuf,
    /// Peers' addresses (proxy addresses).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The cluster key file.
    pub key: KeyFile,
    /// The node's proposal timeout.
    pub propose_timeout: Duration,
}

/// The async runtime an [`Adapter`] runs its nodes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// raft-tokio: one multi-threaded runtime (two workers) per adapter.
    Tokio,
    /// raft-smol: smol's global executor.
    Smol,
}

/// How an [`Adapter`]'s nodes reach their peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Authenticated, length-prefixed TCP frames.
    Tcp,
    /// Sealed, fragmented UDP datagrams.
    Udp,
}

/// Every combination the suite runs.
pub const ALL: [(RuntimeKind, TransportKind); 4] = [
    (RuntimeKind::Tokio, TransportKind::Tcp),
    (RuntimeKind::Smol, TransportKind::Tcp),
    (RuntimeKind::Tokio, TransportKind::Udp),
    (RuntimeKind::Smol, TransportKind::Udp),
];

/// Starts raft-net nodes on one runtime and transport.
pub struct Adapter {
    runtime: RuntimeKind,
    transport: TransportKind,
    tokio: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Adapter {
    /// An adapter (with a runtime of its own, for tokio).
    pub fn new(runtime: RuntimeKind, transport: TransportKind) -> Arc<Adapter> {
        let tokio = (runtime == RuntimeKind::Tokio).then(|| {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
        });
        Arc::new(Adapter { runtime, transport, tokio })
    }

    /// "tokio", "smol+udp"...
    pub fn name(&self) -> String {
        let rt = match self.runtime {
            RuntimeKind::Tokio => "tokio",
            RuntimeKind::Smol => "smol",
        };
        match self.transport {
            TransportKind::Tcp => rt.to_owned(),
            TransportKind::Udp => format!("{rt}+udp"),
        }
    }

    /// Its transport.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        match &self.tokio {
            Some(rt) => rt.block_on(f),
            None => smol::block_on(f),
        }
    }

    /// Starts a member on a fresh loopback port.
    fn start(self: &Arc<Self>, spec: NodeSpec) -> RunningNode {
        let listen = "127.0.0.1:0".parse().expect("addr");
        let mut config = NodeConfig::new(spec.raft, spec.data_dir, listen, spec.peers, spec.key);
        config.propose_timeout = spec.propose_timeout;
        let sm = KvStore::new();
        let handle = self
            .block_on(async {
                let udp = || UdpOptions::new(1400);
                match (self.runtime, self.transport) {
                    (RuntimeKind::Tokio, TransportKind::Tcp) => Node::start(Tokio::current(), config, sm).await,
                    (RuntimeKind::Smol, TransportKind::Tcp) => Node::start(Smol, config, sm).await,
                    (RuntimeKind::Tokio, TransportKind::Udp) => {
                        Node::start_udp(Tokio::current(), config, sm, udp()).await.map(|(h, _)| h)
                    }
                    (RuntimeKind::Smol, TransportKind::Udp) => {
                        Node::start_udp(Smol, config, sm, udp()).await.map(|(h, _)| h)
                    }
                }
            })
            .unwrap_or_else(|e| panic!("start a {} node: {e}", self.name()));
        RunningNode { adapter: self.clone(), handle }
    }

    /// Tasks alive in the runtime this adapter owns, if it can tell.
    fn runtime_tasks(&self) -> Option<usize> {
        self.tokio.as_ref().map(|rt| rt.metrics().num_alive_tasks())
    }
}

/// One running in-process member.
struct RunningNode {
    adapter: Arc<Adapter>,
    handle: Handle<KvStore>,
}

impl RunningNode {
    fn listen(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    fn status(&self) -> NodeView {
        let s = self.handle.status();
        NodeView {
            id: s.id.0,
            role: s.role.role,
            term: s.role.term.0,
            leader: s.role.leader.map(|l| l.0),
            commit_index: s.commit_index.0,
            last_applied: s.last_applied.0,
            last_log_index: s.last_log_index.0,
            datagrams_dropped: s.datagrams.map(|c| c.total()),
            transfer_target: s.transfer_target.map(|t| t.0),
        }
    }

    fn transfer_leadership(&self, to: u64) -> Result<(), Failure> {
        self.adapter.block_on(self.handle.transfer_leadership(NodeId(to))).map_err(|e| match e {
            TransferError::NotLeader { leader_hint } => Failure::NotLeader(leader_hint.map(|l| l.0)),
            TransferError::TimedOut => Failure::Unknown,
            TransferError::Shutdown => Failure::Down,
            other => Failure::Rejected(other.to_string()),
        })
    }

    fn propose(&self, command: Vec<u8>) -> Result<KvResult, Failure> {
        self.adapter.block_on(self.handle.propose_bytes(command)).map_err(|e| match e {
            ProposeError::NotLeader { leader_hint } | ProposeError::Superseded { leader_hint } => {
                Failure::NotLeader(leader_hint.map(|l| l.0))
            }
            ProposeError::OutcomeUnknown => Failure::Unknown,
            other => Failure::Rejected(other.to_string()),
        })
    }

    fn local_get(&self, key: &str) -> Option<String> {
        let key = key.to_owned();
        self.adapter.block_on(self.handle.local_read(move |s| s.get_local(&key).map(str::to_owned))).ok().flatten()
    }

    /// Stops it gracefully; returns tasks still running afterwards.
    fn shutdown(&self) -> usize {
        let monitor = self.handle.task_monitor();
        self.adapter.block_on(self.handle.clone().shutdown());
        monitor.running()
    }
}

/// The suite's raft configuration: quick elections, still well above the
/// heartbeat so that a loaded 2-core machine does not cause spurious ones,
/// and frequent snapshots so that scenarios exercise compaction, snapshot
/// transfer over the transport and restart from a snapshot.
pub fn test_config(id: u64, ids: &[u64]) -> Config {
    let mut c = Config::new(NodeId(id), ids.iter().map(|&i| NodeId(i)));
    c.heartbeat_interval = CoreDuration::from_millis(50);
    c.election_timeout_min = CoreDuration::from_millis(300);
    c.election_timeout_max = CoreDuration::from_millis(600);
    c.snapshot_after_entries = Some(100);
    c
}

struct Slot {
    adapter: Arc<Adapter>,
    node: Option<Arc<RunningNode>>,
}

/// In-process members, one adapter per member, through a [`FaultProxy`].
pub struct InProcessCluster {
    name: String,
    ids: Vec<u64>,
    slots: BTreeMap<u64, Mutex<Slot>>,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    key: KeyFile,
}

impl fmt::Debug for InProcessCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessCluster").field("name", &self.name).field("ids", &self.ids).finish()
    }
}

impl InProcessCluster {
    /// Members 1..=n, member `i` run by `adapters[i - 1]`. Nothing is started.
    ///
    /// # Panics
    ///
    /// If the adapters do not share one transport.
    pub fn new(adapters: Vec<Arc<Adapter>>) -> InProcessCluster {
        let transport = adapters[0].transport();
        assert!(adapters.iter().all(|a| a.transport() == transport), "one transport per cluster");
        let ids: Vec<u64> = (1..=adapters.len() as u64).collect();
        let names: Vec<String> = adapters.iter().map(|a| a.name()).collect();
        let name =
            if names.iter().all(|n| *n == names[0]) { names[0].clone() } else { format!("mixed[{}]", names.join(",")) };
        let slots =
            ids.iter().zip(adapters).map(|(&id, adapter)| (id, Mutex::new(Slot { adapter, node: None }))).collect();
        InProcessCluster {
            name,
            proxy: FaultProxy::new(&ids),
            ids,
            slots,
            dir: tempfile::tempdir().expect("tempdir"),
            key: KeyFile::new(
                ClusterKey::from_bytes(*b"conformance-suite-cluster-key-32"),
                Incarnation::from_bytes(*b"conformance-inc1"),
            ),
        }
    }

    fn slot(&self, id: u64) -> MutexGuard<'_, Slot> {
        self.slots[&id].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a running member, without holding its slot's lock (so
    /// that concurrent clients, kills and restarts do not wait on each other).
    fn with_node<T>(&self, id: u64, f: impl FnOnce(&RunningNode) -> T) -> Option<T> {
        let node = self.slot(id).node.clone();
        node.as_deref().map(f)
    }

    /// The proxy between the members.
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }
}

impl ClusterUnderTest for InProcessCluster {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn ids(&self) -> Vec<u64> {
        self.ids.clone()
    }

    fn start(&self, id: u64) {
        let mut slot = self.slot(id);
        assert!(slot.node.is_none(), "node {id} is already running");
        let spec = NodeSpec {
            raft: test_config(id, &self.ids),
            data_dir: self.dir.path().join(id.to_string()),
            peers: self.ids.iter().filter(|&&p| p != id).map(|&p| (NodeId(p), self.proxy.addr(id, p))).collect(),
            key: self.key.clone(),
            propose_timeout: Duration::from_secs(2),
        };
        let node = slot.adapter.start(spec);
        self.proxy.set_target(id, node.listen());
        slot.node = Some(Arc::new(node));
    }

    fn kill(&self, id: u64) {
        // In process, the most abrupt stop is a shutdown: the peers only see
        // connections close, as with a crash; the disk keeps what was synced.
        let left = self.shutdown(id);
        assert_eq!(left, 0, "node {id} left tasks running");
    }

    fn shutdown(&self, id: u64) -> usize {
        let node = self.slot(id).node.take();
        node.map_or(0, |n| n.shutdown())
    }

    fn runtime_tasks(&self) -> Option<usize> {
        let mut seen: Vec<*const ()> = Vec::new();
        let mut total = None;
        for id in &self.ids {
            let adapter = self.slot(*id).adapter.clone();
            let ptr = Arc::as_ptr(&adapter) as *const ();
            if seen.contains(&ptr) {
                continue;
            }
            seen.push(ptr);
            if let Some(n) = adapter.runtime_tasks() {
                total = Some(total.unwrap_or(0) + n);
            }
        }
        total
    }

    fn is_running(&self, id: u64) -> bool {
        self.slot(id).node.is_some()
    }

    fn status(&self, id: u64) -> Option<NodeView> {
        self.with_node(id, |n| n.status())
    }

    fn propose(&self, id: u64, cmd: &KvCommand) -> Result<KvResult, Failure> {
        let bytes = encode_command(cmd);
        self.with_node(id, |n| n.propose(bytes)).unwrap_or(Err(Failure::Down))
    }

    fn transfer_leadership(&self, id: u64, to: u64) -> Result<(), Failure> {
        self.with_node(id, |n| n.transfer_leadership(to)).unwrap_or(Err(Failure::Down))
    }

    fn local_get(&self, id: u64, key: &str) -> Option<Option<String>> {
        self.with_node(id, |n| n.local_get(key))
    }

    fn set_link(&self, from: u64, to: u64, up: bool) {
        self.proxy.set_link(from, to, up);
    }

    fn direct_addr(&self, id: u64) -> Option<SocketAddr> {
        self.with_node(id, |n| n.listen())
    }

    fn start_capture(&self) {
        self.proxy.start_recording();
    }

    fn take_capture(&self) -> Vec<((u64, u64), Vec<u8>)> {
        self.proxy.take_recorded()
    }

    fn cluster_key(&self) -> KeyFile {
        self.key.clone()
    }

    fn transport(&self) -> TransportKind {
        self.slot(self.ids[0]).adapter.transport()
    }
}

impl Drop for InProcessCluster {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            let _ = self.shutdown(id);
        }
    }
}
