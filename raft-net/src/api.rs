//! The public types both adapters share: configuration, errors, status and
//! the role watch.

use crate::sync::{TaskCount, Watch, all_stopped};
use raft_core::{ChangeError, Config, ConfigError, LogIndex, Membership, NewNodeError, NodeId, ReadMode, Role, Term};
use raft_host::StorageError;
use raft_host::secure::KeyFile;
use std::collections::BTreeMap;
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything needed to start a node.
///
/// Build it with [`NodeConfig::new`] and adjust the public fields. The raft
/// timing (heartbeat, election timeout), message and entry size limits live
/// in [`raft`](NodeConfig::raft); the fields here are about I/O.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The core's configuration: this node's id, every member, timing, limits.
    pub raft: Config,
    /// Stamped into the data directory at creation; a directory stamped
    /// with another cluster id is refused. Default 1.
    pub cluster_id: u64,
    /// Where the durable log, hard state and snapshot live (created if missing).
    pub data_dir: PathBuf,
    /// The address to accept peer connections on (port 0: any free port,
    /// see `Handle::local_addr`).
    pub listen: SocketAddr,
    /// The address of every other member. Must name exactly the members of
    /// `raft.members` other than `raft.id`; for a joining node (no
    /// members), any members to reach before its configuration arrives
    /// (over UDP none are needed: it answers whoever contacts it). Members
    /// not listed here are reached at the address their configuration
    /// entry carries; an address listed here wins (a route the operator chose).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The cluster key and incarnation (the key file every member shares):
    /// every peer frame travels in a transport v2 session set up under the
    /// key and bound to the incarnation (see [`raft_host::secure`]).
    pub keys: KeyFile,
    /// How long `propose` and `read` wait for an outcome before giving up
    /// with [`ProposeError::OutcomeUnknown`]. Default 5 s.
    pub propose_timeout: Duration,
    /// Messages held per peer and lane while a peer is slow or unreachable;
    /// the oldest is dropped on overflow. Default 1024.
    pub peer_queue_capacity: usize,
    /// First reconnect delay (before jitter). Default 20 ms.
    pub reconnect_min: Duration,
    /// Largest reconnect delay. Default 1 s.
    pub reconnect_max: Duration,
    /// Limit on connecting to a peer and on writing one batch to it; a
    /// connection that exceeds it is dropped and re-established. Default 2 s.
    pub io_timeout: Duration,
    /// An inbound connection must complete its handshake and deliver its
    /// first authentic frame within this time or it is closed. Default 5 s.
    pub handshake_timeout: Duration,
    /// An authenticated inbound connection that delivers no frame for this
    /// long is closed (the peer reconnects when it has something to send).
    /// Default 30 s.
    pub idle_timeout: Duration,
    /// Inbound connections served at once. When all are taken, a new
    /// connection replaces the oldest one that has not authenticated yet (or
    /// is closed if every one has). Each peer keeps at most one
    /// authenticated connection: a newer one replaces it. Default 64.
    pub max_inbound_connections: usize,
    /// Where to serve the node's metrics over HTTP (`GET /metrics`, the
    /// Prometheus text format), if anywhere (port 0: any free port, see
    /// `Handle::metrics_addr`). Default none; `Handle::metrics_text` renders
    /// them either way.
    pub metrics_listen: Option<SocketAddr>,
    /// How the disk log is opened (segment size, preallocation, when the
    /// synced watermark moves, whether snapshots stay on disk: see
    /// [`raft_host::DiskLogOptions`]). Default
    /// [`DiskLogOptions::default`](raft_host::DiskLogOptions::default) with
    /// [`stored_snapshots`](raft_host::DiskLogOptions::stored_snapshots) on:
    /// snapshots are streamed to and from disk, never held whole in memory.
    pub disk_log: raft_host::DiskLogOptions,
}

impl NodeConfig {
    /// A configuration with the defaults listed on each field.
    pub fn new(
        raft: Config,
        data_dir: impl Into<PathBuf>,
        listen: SocketAddr,
        peers: impl IntoIterator<Item = (NodeId, SocketAddr)>,
        keys: KeyFile,
    ) -> NodeConfig {
        NodeConfig {
            raft,
            cluster_id: 1,
            data_dir: data_dir.into(),
            listen,
            peers: peers.into_iter().collect(),
            keys,
            propose_timeout: Duration::from_secs(5),
            peer_queue_capacity: 1024,
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_secs(1),
            io_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_inbound_connections: 64,
            metrics_listen: None,
            disk_log: raft_host::DiskLogOptions::default().stored_snapshots(true),
        }
    }

    /// Checks the raft config and that `peers` names exactly the other members.
    pub(crate) fn validate(&self) -> Result<(), StartError> {
        self.raft.validate().map_err(StartError::Config)?;
        for m in &self.raft.members {
            if *m != self.raft.id && !self.peers.contains_key(m) {
                return Err(StartError::NoAddress { member: *m });
            }
        }
        // A joining node (no members) may be given addresses to reach first.
        for p in self.peers.keys() {
            if *p == self.raft.id || (!self.raft.members.contains(p) && !self.raft.members.is_empty()) {
                return Err(StartError::NotAPeer { peer: *p });
            }
        }
        if self.propose_timeout.is_zero()
            || self.io_timeout.is_zero()
            || self.handshake_timeout.is_zero()
            || self.idle_timeout.is_zero()
        {
            return Err(StartError::ZeroSetting("timeouts"));
        }
        if self.max_inbound_connections == 0 || self.peer_queue_capacity == 0 {
            return Err(StartError::ZeroSetting("queue and connection limits"));
        }
        Ok(())
    }
}

/// Why a node did not start. Nothing is left running after an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The raft configuration is invalid.
    Config(ConfigError),
    /// A member of the cluster has no address in `NodeConfig::peers`.
    NoAddress {
        /// The member.
        member: NodeId,
    },
    /// `NodeConfig::peers` names this node itself, or a node that is not a member.
    NotAPeer {
        /// The id.
        peer: NodeId,
    },
    /// These settings must be positive.
    ZeroSetting(&'static str),
    /// The data directory could not be opened or recovered.
    Storage(StorageError),
    /// The recovered state does not fit the configuration.
    Node(NewNodeError),
    /// The listen address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The disk thread could not be started.
    DiskThread(std::io::Error),
    /// Start-up was interrupted (the runtime shut down).
    Interrupted,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "invalid node configuration: {e}"),
            StartError::NoAddress { member } => write!(f, "invalid node configuration: no address for member {member}"),
            StartError::NotAPeer { peer } => {
                write!(f, "invalid node configuration: peer {peer} is not another member of the cluster")
            }
            StartError::ZeroSetting(what) => write!(f, "invalid node configuration: {what} must be positive"),
            StartError::Storage(e) => write!(f, "cannot open the data directory: {e}"),
            StartError::Node(e) => write!(f, "cannot start the node: {e}"),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::DiskThread(e) => write!(f, "cannot start the disk thread: {e}"),
            StartError::Interrupted => write!(f, "start-up was interrupted"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Storage(e) => Some(e),
            StartError::Node(e) => Some(e),
            StartError::Bind { source, .. } | StartError::DiskThread(source) => Some(source),
            _ => None,
        }
    }
}

/// Why a proposal or read returned no output. The type says what happened
/// to the command ([`ProposeError::outcome`]):
///
/// * **not applied**, and never will be: [`NotLeader`](ProposeError::NotLeader),
///   [`Superseded`](ProposeError::Superseded), [`TooLarge`](ProposeError::TooLarge),
///   [`Shutdown`](ProposeError::Shutdown);
/// * **unknown**: [`OutcomeUnknown`](ProposeError::OutcomeUnknown). Retry
///   with the same client session (e.g. the same `KvCommand { client, seq }`)
///   to learn it without applying the command twice.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProposeError {
    /// This node is not the leader; the command was not proposed. Retry at
    /// `leader_hint`, if known.
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The command was proposed, but this node lost leadership and another
    /// leader's entry took its place in the log: it was not applied. Retry
    /// at `leader_hint`, if known.
    Superseded {
        /// The leader this node knew of when it learned it.
        leader_hint: Option<NodeId>,
    },
    /// No outcome within `NodeConfig::propose_timeout`, or the node stopped
    /// or lost track of the command (a snapshot covered it) before learning
    /// it. The command may or may not have been applied.
    OutcomeUnknown,
    /// The node has stopped (or is stopping) and the command never reached it.
    Shutdown,
    /// The command exceeds `Config::max_entry_bytes`.
    TooLarge {
        /// The command's size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a membership change did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipError {
    /// Refused (this node does not lead, a change in progress, an unknown
    /// node, a learner behind...): nothing was appended.
    Refused(ChangeError),
    /// This node lost leadership before the change committed and another
    /// leader's entry replaced it: not made. Retry at `leader_hint`.
    Superseded {
        /// The leader this node knew of when it learned it.
        leader_hint: Option<NodeId>,
    },
    /// No outcome in time (or the node lost track): the change may or may
    /// not have been made; look at the configuration.
    OutcomeUnknown,
    /// The node has stopped and the change never reached it.
    Shutdown,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::Refused(e) => e.fmt(f),
            MembershipError::Superseded { .. } => f.write_str("leadership changed; the change was not made"),
            MembershipError::OutcomeUnknown => f.write_str("outcome unknown; the change may or may not have been made"),
            MembershipError::Shutdown => f.write_str("the node has stopped"),
        }
    }
}

impl std::error::Error for MembershipError {}

/// What a failed proposal tells about its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// The command was not applied and never will be.
    NotApplied,
    /// The command may or may not have been applied.
    Unknown,
}

impl ProposeError {
    /// Whether the command was (definitely) not applied, or may have been.
    pub fn outcome(&self) -> CommandOutcome {
        match self {
            ProposeError::OutcomeUnknown => CommandOutcome::Unknown,
            ProposeError::NotLeader { .. }
            | ProposeError::Superseded { .. }
            | ProposeError::Shutdown
            | ProposeError::TooLarge { .. } => CommandOutcome::NotApplied,
        }
    }

    /// True if the command may have been applied (only [`ProposeError::OutcomeUnknown`]).
    pub fn outcome_unknown(&self) -> bool {
        self.outcome() == CommandOutcome::Unknown
    }

    /// The leader to retry at, for [`NotLeader`](ProposeError::NotLeader)
    /// and [`Superseded`](ProposeError::Superseded).
    pub fn leader_hint(&self) -> Option<NodeId> {
        match self {
            ProposeError::NotLeader { leader_hint } | ProposeError::Superseded { leader_hint } => *leader_hint,
            _ => None,
        }
    }
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader; try node {l}"),
            ProposeError::NotLeader { leader_hint: None } => write!(f, "not the leader; leader unknown"),
            ProposeError::Superseded { .. } => write!(f, "another leader's entry replaced the command; not applied"),
            ProposeError::OutcomeUnknown => write!(f, "outcome unknown; the command may or may not have been applied"),
            ProposeError::Shutdown => write!(f, "the node has stopped"),
            ProposeError::TooLarge { size, max } => write!(f, "command of {size} bytes exceeds the limit of {max}"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// Why [`Handle::transfer_leadership`](crate::Handle::transfer_leadership)
/// did not hand leadership over. Only
/// [`TimedOut`](TransferError::TimedOut) leaves a transfer behind that ran
/// and ended: this node then leads on and accepts proposals again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// This node is not the leader; only the leader can hand leadership over.
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The target is not another voting member of the cluster.
    NotAVoter(NodeId),
    /// A transfer (to `to`) is already in progress; nothing new started.
    InProgress {
        /// The target of the transfer in progress.
        to: NodeId,
    },
    /// The target did not take over within an election timeout (it is down,
    /// cut off, or too far behind); this node still leads.
    TimedOut,
    /// This node stopped leading for another reason before the target took over.
    LeadershipLost {
        /// The leader this node knows of now, if any.
        leader_hint: Option<NodeId>,
    },
    /// The node has stopped (or is stopping).
    Shutdown,
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader; node {l} leads"),
            TransferError::NotLeader { leader_hint: None } => write!(f, "not the leader; leader unknown"),
            TransferError::NotAVoter(id) => write!(f, "node {id} is not another voting member"),
            TransferError::InProgress { to } => write!(f, "a transfer to node {to} is already in progress"),
            TransferError::TimedOut => write!(f, "the target did not take over in time; this node still leads"),
            TransferError::LeadershipLost { .. } => write!(f, "this node lost leadership before the target took over"),
            TransferError::Shutdown => write!(f, "the node has stopped"),
        }
    }
}

impl std::error::Error for TransferError {}

/// Role, term and leader: what a role watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleInfo {
    /// The node's role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader of that term, if known.
    pub leader: Option<NodeId>,
}

/// A snapshot of a node's state, from `Handle::status`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// The address it accepts peers on.
    pub listen: SocketAddr,
    /// Role, term and leader.
    pub role: RoleInfo,
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
    /// Datagrams the UDP transport dropped, by reason (`None` over TCP).
    pub datagrams: Option<crate::udp::Counters>,
    /// The target of the leadership transfer in progress, if any (only
    /// ever set on the leader, which refuses proposals meanwhile).
    pub transfer_target: Option<NodeId>,
    /// How linearizable reads confirm leadership (`Config::read_mode`).
    pub read_mode: ReadMode,
    /// One entry per peer, in id order.
    pub peers: Vec<PeerStatus>,
    /// The configuration in effect (the newest in the log, committed or
    /// not): voters, learners, in a joint configuration the outgoing
    /// voters, and each member's address.
    pub membership: Membership,
    /// The index of that configuration's entry (0: the bootstrap
    /// configuration from `Config::members`, not yet logged).
    pub membership_index: LogIndex,
    /// True once a configuration without this node took effect after one
    /// with it (during this run): it was removed, and never campaigns.
    pub removed: bool,
    /// True once the node has stopped (after `shutdown` or a failure).
    pub stopped: bool,
    /// Why the node stopped by itself (a disk error, an unusable snapshot).
    pub failure: Option<Arc<raft_host::engine::Failure>>,
}

/// The link to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStatus {
    /// The peer.
    pub id: NodeId,
    /// Where this node connects to reach it.
    pub addr: SocketAddr,
    /// True while an outgoing connection is established.
    pub connected: bool,
    /// Frames written to the peer.
    pub frames_sent: u64,
    /// Messages dropped: queue overflow, or lost with a failed connection.
    pub dropped: u64,
    /// Connections established (1 + reconnects).
    pub connects: u64,
    /// Messages waiting in the queue.
    pub queued: usize,
}

/// Follows a node's role, term and leader.
///
/// [`changed`](RoleWatch::changed) reports the latest value after every
/// change (changes in quick succession may be coalesced into the last one),
/// and `None` once the node has stopped.
#[derive(Debug, Clone)]
pub struct RoleWatch {
    watch: Arc<Watch<RoleInfo>>,
    seen: u64,
}

impl RoleWatch {
    pub(crate) fn new(watch: Arc<Watch<RoleInfo>>) -> RoleWatch {
        let seen = watch.version();
        RoleWatch { watch, seen }
    }

    /// The current value.
    pub fn current(&self) -> RoleInfo {
        self.watch.with(|v| *v)
    }

    /// Waits for a change after the last one this watch reported (or after
    /// its creation), and returns the value then; `None` once the node stopped.
    pub async fn changed(&mut self) -> Option<RoleInfo> {
        let seen = self.seen;
        let mut waiting = self.watch.waiting();
        let r = poll_fn(|cx| {
            waiting.poll_check(cx, |v, version, closed| {
                if version > seen {
                    Some(Some((*v, version)))
                } else if closed {
                    Some(None)
                } else {
                    None
                }
            })
        })
        .await;
        r.map(|(v, version)| {
            self.seen = version;
            v
        })
    }

    /// Waits until `pred` holds for the current value (checked at once, then
    /// after every change); `None` if the node stops first.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&RoleInfo) -> bool) -> Option<RoleInfo> {
        let now = self.current();
        if pred(&now) {
            return Some(now);
        }
        loop {
            let v = self.changed().await?;
            if pred(&v) {
                return Some(v);
            }
        }
    }
}

/// Counts the tasks and threads a node started that are still running.
/// After `Handle::shutdown` returns, [`running`](TaskMonitor::running) is 0.
#[derive(Debug, Clone)]
pub struct TaskMonitor(pub(crate) TaskCount);

impl TaskMonitor {
    /// Tasks (and the disk thread) still running.
    pub fn running(&self) -> usize {
        self.0.with(|n| *n)
    }

    /// Waits until none is running.
    pub async fn stopped(&self) {
        all_stopped(&self.0).await
    }
}
