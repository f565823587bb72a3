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
use std::fmt;
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

/// Every metric of one node, in one registry.
pub(crate) struct Metrics {
    registry: Registry,
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
            snapshot_taken_bytes: Counter::default(),
            snapshots_sent: Counter::default(),
            snapshot_sent_bytes: Counter::default(),
            registry: Registry::default(),
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
        registry.register("snapshot_taken_bytes", "Bytes of the snapshots taken", m.snapshot_taken_bytes.clone());
        registry.register("snapshots_sent", "Snapshots this node started sending to a peer", m.snapshots_sent.clone());
        registry.register(
            "snapshot_sent_bytes",
            "Snapshot bytes sent to peers (every chunk, resends included)",
            m.snapshot_sent_bytes.clone(),
        );
        Metrics { registry, ..m }
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
        let _ = encode(&mut text, &self.registry);
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
    pub(crate) fn snapshots_taken(&self, count: u64, bytes: u64) {
        set_counter(&self.snapshots_taken, count);
        set_counter(&self.snapshot_taken_bytes, bytes);
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
