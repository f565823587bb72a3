//! A node's metrics in the Prometheus (OpenMetrics) text format: a registry
//! of `prometheus-client` metrics that the owning task and the disk thread
//! update, and, when [`NodeConfig::metrics_listen`](crate::NodeConfig::metrics_listen)
//! is set, a small HTTP server (`tiny_http`, on a thread of its own, so it
//! names no async runtime) that serves it at `/metrics`.
//!
//! Gauges that mirror the node's [`Status`] (role, term, indexes, datagram
//! drops) are refreshed when the text is rendered; latencies and outcomes
//! are recorded where they happen.

use crate::api::Status;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use raft_core::{LogIndex, NodeId, Role};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The label of a per-peer metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: u64,
}

/// The label of an outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The label of a drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The label of the role gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

/// What a proposal came to, as counted in `raft_proposals_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProposalOutcome {
    Applied,
    NotLeader,
    Superseded,
    Unknown,
    TooLarge,
    Shutdown,
}

impl ProposalOutcome {
    fn label(self) -> &'static str {
        match self {
            ProposalOutcome::Applied => "applied",
            ProposalOutcome::NotLeader => "not_leader",
            ProposalOutcome::Superseded => "superseded",
            ProposalOutcome::Unknown => "unknown",
            ProposalOutcome::TooLarge => "too_large",
            ProposalOutcome::Shutdown => "shutdown",
        }
    }
}

/// What a linearizable read came to, as counted in `raft_reads_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    Served,
    NotLeader,
    Unknown,
}

impl ReadOutcome {
    fn label(self) -> &'static str {
        match self {
            ReadOutcome::Served => "served",
            ReadOutcome::NotLeader => "not_leader",
            ReadOutcome::Unknown => "unknown",
        }
    }
}

/// A gauge the application registered beside the node's own metrics
/// ([`Handle::app_gauge`](crate::Handle::app_gauge)), e.g. the size of a
/// table its state machine keeps. Cloning it gives another handle to the
/// same gauge.
#[derive(Clone, Debug, Default)]
pub struct AppGauge(Gauge);

impl AppGauge {
    /// Sets the value served from now on (saturating at `i64::MAX`).
    pub fn set(&self, value: u64) {
        self.0.set(gauge(value));
    }

    /// The value last set.
    pub fn get(&self) -> u64 {
        u64::try_from(self.0.get()).unwrap_or(0)
    }
}

/// Why [`Handle::app_gauge`](crate::Handle::app_gauge) refused a name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppGaugeError {
    /// A metric name is `[a-z_][a-z0-9_]*` (lower case, the Prometheus
    /// convention), 1 to 64 characters.
    BadName(&'static str),
    /// The node's own metrics use this name.
    Reserved(&'static str),
}

impl fmt::Display for AppGaugeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppGaugeError::BadName(n) => {
                write!(f, "bad metric name {n:?}: use 1 to 64 characters of a-z, 0-9 and _, not starting with a digit")
            }
            AppGaugeError::Reserved(n) => write!(f, "metric name {n:?} is one of the node's own metrics"),
        }
    }
}

impl std::error::Error for AppGaugeError {}

/// Names the node registers itself (without the `raft_` prefix).
const OWN_NAMES: &[&str] = &[
    "role",
    "term",
    "commit_index",
    "applied_index",
    "last_log_index",
    "durable_index",
    "snapshot_index",
    "peer_match_index",
    "peer_lag_entries",
    "peer_queue_dropped",
    "proposals",
    "reads",
    "disk_sync_seconds",
    "commit_latency_seconds",
    "apply_latency_seconds",
    "datagrams_dropped",
    "snapshots_taken",
    "snapshot_taken_bytes",
    "snapshot_failures",
    "snapshots_sent",
    "snapshot_sent_bytes",
];

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=64).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Every metric of one node, in one registry.
pub(crate) struct Metrics {
    /// Locked to render, and to register an application's gauge.
    registry: Mutex<Registry>,
    /// The application's gauges by name, so that asking twice for one name
    /// gives the same gauge.
    app_gauges: Mutex<BTreeMap<&'static str, AppGauge>>,
    role: Family<RoleLabel, Gauge>,
    term: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    last_log_index: Gauge,
    durable_index: Gauge,
    snapshot_index: Gauge,
    peer_match: Family<PeerLabel, Gauge>,
    peer_lag: Family<PeerLabel, Gauge>,
    peer_queue_dropped: Family<PeerLabel, Counter>,
    proposals: Family<OutcomeLabel, Counter>,
    reads: Family<OutcomeLabel, Counter>,
    disk_sync: Histogram,
    commit_latency: Histogram,
    apply_latency: Histogram,
    datagrams_dropped: Family<KindLabel, Counter>,
    snapshots_taken: Counter,
    snapshot_failures: Counter,
    snapshot_taken_bytes: Counter,
    snapshots_sent: Counter,
    snapshot_sent_bytes: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latency buckets from 10 µs to about 6 s, each 1.5 times the last (fine
/// enough to tell one fdatasync from two).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_01, 1.5, 34)
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("raft");
        let m = Metrics {
            role: Family::default(),
            term: Gauge::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            last_log_index: Gauge::default(),
            durable_index: Gauge::default(),
            snapshot_index: Gauge::default(),
            peer_match: Family::default(),
            peer_lag: Family::default(),
            peer_queue_dropped: Family::default(),
            proposals: Family::default(),
            reads: Family::default(),
            disk_sync: Histogram::new(latency_buckets()),
            commit_latency: Histogram::new(latency_buckets()),
            apply_latency: Histogram::new(latency_buckets()),
            datagrams_dropped: Family::default(),
            snapshots_taken: Counter::default(),
            snapshot_failures: Counter::default(),
            snapshot_taken_bytes: Counter::default(),
            snapshots_sent: Counter::default(),
            snapshot_sent_bytes: Counter::default(),
            registry: Mutex::new(Registry::default()),
            app_gauges: Mutex::new(BTreeMap::new()),
        };
        registry.register(
            "role",
            "1 for the node's current role (follower, pre_candidate, candidate, leader)",
            m.role.clone(),
        );
        registry.register("term", "The node's current term", m.term.clone());
        registry.register("commit_index", "The highest log index known committed", m.commit_index.clone());
        registry.register(
            "applied_index",
            "The highest log index applied to the state machine",
            m.applied_index.clone(),
        );
        registry.register("last_log_index", "The last index in the log, durable or not", m.last_log_index.clone());
        registry.register("durable_index", "The highest log index durable on this node", m.durable_index.clone());
        registry.register("snapshot_index", "The index the latest snapshot covers", m.snapshot_index.clone());
        registry.register(
            "peer_match_index",
            "On the leader: the highest index known durable on each peer",
            m.peer_match.clone(),
        );
        registry.register(
            "peer_lag_entries",
            "On the leader: entries each peer lacks (last log index - match index)",
            m.peer_lag.clone(),
        );
        registry.register(
            "peer_queue_dropped",
            "Messages to each peer dropped: queue overflow or a failed link",
            m.peer_queue_dropped.clone(),
        );
        registry.register("proposals", "Proposals handled, by outcome", m.proposals.clone());
        registry.register("reads", "Linearizable reads handled, by outcome", m.reads.clone());
        registry.register(
            "disk_sync_seconds",
            "One group commit made durable by the disk thread (records' fdatasync, then the watermark's)",
            m.disk_sync.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "On the leader: from a proposal reaching the node to the node learning it committed",
            m.commit_latency.clone(),
        );
        registry.register(
            "apply_latency_seconds",
            "Applying one committed entry to the state machine",
            m.apply_latency.clone(),
        );
        registry.register(
            "datagrams_dropped",
            "Datagrams the UDP transport dropped, by kind",
            m.datagrams_dropped.clone(),
        );
        registry.register("snapshots_taken", "Snapshots taken of the state machine", m.snapshots_taken.clone());
        registry.register(
            "snapshot_failures",
            "Snapshots of the state machine that could not be written (each is tried again later)",
            m.snapshot_failures.clone(),
        );
        registry.register("snapshot_taken_bytes", "Bytes of the snapshots taken", m.snapshot_taken_bytes.clone());
        registry.register("snapshots_sent", "Snapshots this node started sending to a peer", m.snapshots_sent.clone());
        registry.register(
            "snapshot_sent_bytes",
            "Snapshot bytes sent to peers (every chunk, resends included)",
            m.snapshot_sent_bytes.clone(),
        );
        Metrics { registry: Mutex::new(registry), ..m }
    }

    /// The application's gauge `raft_<name>`, registered at the first call
    /// for `name`.
    pub(crate) fn app_gauge(&self, name: &'static str, help: &'static str) -> Result<AppGauge, AppGaugeError> {
        if !valid_name(name) {
            return Err(AppGaugeError::BadName(name));
        }
        if OWN_NAMES.contains(&name) {
            return Err(AppGaugeError::Reserved(name));
        }
        let mut gauges = self.app_gauges.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(g) = gauges.get(name) {
            return Ok(g.clone());
        }
        let g = AppGauge::default();
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner).register(name, help, g.0.clone());
        gauges.insert(name, g.clone());
        Ok(g)
    }

    /// Renders every metric, with the status-mirroring gauges taken from `status`.
    pub(crate) fn render(&self, status: &Status) -> String {
        for (role, label) in [
            (Role::Follower, "follower"),
            (Role::PreCandidate, "pre_candidate"),
            (Role::Candidate, "candidate"),
            (Role::Leader, "leader"),
        ] {
            self.role.get_or_create(&RoleLabel { role: label }).set(i64::from(status.role.role == role));
        }
        self.term.set(gauge(status.role.term.0));
        self.commit_index.set(index(status.commit_index));
        self.applied_index.set(index(status.last_applied));
        self.last_log_index.set(index(status.last_log_index));
        self.durable_index.set(index(status.durable_index));
        self.snapshot_index.set(index(status.snapshot_index));
        for p in &status.peers {
            set_counter(&self.peer_queue_dropped.get_or_create(&PeerLabel { peer: p.id.0 }), p.dropped);
        }
        if let Some(d) = &status.datagrams {
            for (kind, n) in [
                ("bad_frame", d.bad_frame),
                ("replayed", d.replayed),
                ("stale_session", d.stale_session),
                ("malformed", d.malformed),
                ("oversize", d.oversize),
                ("unknown_peer", d.unknown_peer),
                ("unexpected", d.unexpected),
                ("incomplete", d.incomplete),
            ] {
                set_counter(&self.datagrams_dropped.get_or_create(&KindLabel { kind }), n);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        text
    }

    /// The leader's view of `peer`: its match index and how far behind it is.
    pub(crate) fn peer_progress(&self, peer: NodeId, matched: LogIndex, last: LogIndex) {
        let label = PeerLabel { peer: peer.0 };
        self.peer_match.get_or_create(&label).set(index(matched));
        self.peer_lag.get_or_create(&label).set(gauge(last.0.saturating_sub(matched.0)));
    }

    /// Not the leader (any more): no peer progress to report.
    pub(crate) fn clear_peer_progress(&self) {
        self.peer_match.clear();
        self.peer_lag.clear();
    }

    pub(crate) fn proposal(&self, outcome: ProposalOutcome) {
        self.proposals.get_or_create(&OutcomeLabel { outcome: outcome.label() }).inc();
    }

    pub(crate) fn read(&self, outcome: ReadOutcome) {
        self.reads.get_or_create(&OutcomeLabel { outcome: outcome.label() }).inc();
    }

    pub(crate) fn disk_sync(&self, took: Duration) {
        self.disk_sync.observe(took.as_secs_f64());
    }

    pub(crate) fn committed(&self, took: Duration) {
        self.commit_latency.observe(took.as_secs_f64());
    }

    pub(crate) fn applied(&self, took: Duration) {
        self.apply_latency.observe(took.as_secs_f64());
    }

    /// The totals of the snapshots the state machine gave so far.
    pub(crate) fn snapshots_taken(&self, taken: raft_host::SnapshotsTaken) {
        set_counter(&self.snapshots_taken, taken.count);
        set_counter(&self.snapshot_taken_bytes, taken.bytes);
        set_counter(&self.snapshot_failures, taken.failed);
    }

    /// One snapshot chunk went to a peer (`first`: the chunk at offset 0).
    pub(crate) fn snapshot_chunk_sent(&self, first: bool, bytes: usize) {
        if first {
            self.snapshots_sent.inc();
        }
        self.snapshot_sent_bytes.inc_by(bytes as u64);
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn index(i: LogIndex) -> i64 {
    gauge(i.0)
}

/// Counters mirrored from a total kept elsewhere (never decreasing).
fn set_counter(c: &Counter, total: u64) {
    c.inner().fetch_max(total, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RoleInfo;
    use raft_core::{Membership, ReadMode, Term};

    fn status() -> Status {
        Status {
            id: NodeId(1),
            listen: "127.0.0.1:1".parse().unwrap(),
            role: RoleInfo { role: Role::Follower, term: Term(0), leader: None },
            commit_index: LogIndex(0),
            last_applied: LogIndex(0),
            last_log_index: LogIndex(0),
            durable_index: LogIndex(0),
            snapshot_index: LogIndex(0),
            datagrams: None,
            transfer_target: None,
            read_mode: ReadMode::Safe,
            peers: Vec::new(),
            membership: Membership::default(),
            membership_index: LogIndex(0),
            removed: false,
            stopped: false,
            failure: None,
        }
    }

    /// The `# TYPE` names in a rendering, without the `raft_` prefix.
    fn typed_names(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE raft_"))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn own_names_list_exactly_the_registered_metrics() {
        let m = Metrics::new();
        // Families show up once they have a member.
        m.peer_progress(NodeId(2), LogIndex(1), LogIndex(2));
        m.peer_queue_dropped.get_or_create(&PeerLabel { peer: 2 }).inc();
        m.proposal(ProposalOutcome::Applied);
        m.read(ReadOutcome::Served);
        m.datagrams_dropped.get_or_create(&KindLabel { kind: "replayed" }).inc();
        let mut names = typed_names(&m.render(&status()));
        names.sort();
        let mut own: Vec<String> = OWN_NAMES.iter().map(|n| n.to_string()).collect();
        own.sort();
        assert_eq!(names, own);
    }

    #[test]
    fn an_app_gauge_is_served_and_shared_by_name() {
        let m = Metrics::new();
        let g = m.app_gauge("kv_sessions", "Client sessions").unwrap();
        g.set(7);
        let again = m.app_gauge("kv_sessions", "ignored").unwrap();
        assert_eq!(again.get(), 7);
        again.set(9);
        let text = m.render(&status());
        assert!(text.contains("# HELP raft_kv_sessions Client sessions.\n"), "{text}");
        assert!(text.lines().any(|l| l == "raft_kv_sessions 9"), "{text}");
        assert_eq!(typed_names(&text).iter().filter(|n| *n == "kv_sessions").count(), 1);
    }

    #[test]
    fn bad_and_reserved_names_are_refused() {
        let m = Metrics::new();
        for bad in ["", "9lives", "Sessions", "kv-sessions", "kv sessions", &"x".repeat(65)] {
            let bad: &'static str = Box::leak(bad.to_string().into_boxed_str());
            assert_eq!(m.app_gauge(bad, "h").unwrap_err(), AppGaugeError::BadName(bad));
        }
        assert_eq!(m.app_gauge("term", "h").unwrap_err(), AppGaugeError::Reserved("term"));
        assert!(m.app_gauge("_x9", "h").is_ok());
    }
}
