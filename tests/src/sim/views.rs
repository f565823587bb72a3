//! Read-only views of a [`Cluster`] and its observation hooks.

use super::cluster::Cluster;
use super::disk::{DiskConfig, DurableState};
use super::invariants::Violation;
use super::network::NetConfig;
use super::trace::{TraceKind, TraceObserver, fmt_instant};
use super::{ApplyHook, Election, NodeStats, Stats};
use raft_core::{Entry, Instant, LogIndex, Node, NodeId, Role, Term};
use std::fmt;

impl Cluster {
    // ---- identity and read-only views ----

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every node id, `n1..=nN`.
    pub fn ids(&self) -> Vec<NodeId> {
        self.slots.iter().map(|s| s.id).collect()
    }

    pub(super) fn idx(&self, id: NodeId) -> usize {
        match usize::try_from(id.0) {
            Ok(k) if (1..=self.slots.len()).contains(&k) => k - 1,
            _ => panic!("seed {}: no node {id} in a {}-node cluster", self.seed, self.slots.len()),
        }
    }

    /// The node, if it is up (read-only: drive it through the cluster).
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.slots[self.idx(id)].node.as_ref()
    }

    /// True unless the node is crashed.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// The node's MIT-style connected flag (independent of crashes and partitions).
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.net.is_connected(self.idx(id))
    }

    /// How many times the node was restarted (0 in its first lifetime).
    pub fn lifetime(&self, id: NodeId) -> u32 {
        self.slots[self.idx(id)].lifetime
    }

    /// Entries the node applied in its current lifetime (its last one while
    /// crashed), in index order: from index 1 without gaps, except that a
    /// restored snapshot skips the indexes it covers.
    pub fn applied(&self, id: NodeId) -> &[Entry] {
        &self.slots[self.idx(id)].applied
    }

    /// The entry the node applied at `index` in its current (or last) lifetime.
    pub fn applied_entry(&self, id: NodeId, index: LogIndex) -> Option<&Entry> {
        self.slots[self.idx(id)].applied_at(index)
    }

    /// What the node's disk holds durably.
    pub fn durable(&self, id: NodeId) -> &DurableState {
        self.slots[self.idx(id)].disk.durable()
    }

    /// Live, connected nodes that believe they lead, with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, _)| self.net.is_connected(*i))
            .filter_map(|(_, s)| s.node.as_ref())
            .filter(|n| n.role() == Role::Leader)
            .map(|n| (n.id(), n.term()))
            .collect()
    }

    /// Every election seen so far, in order.
    pub fn elections(&self) -> &[Election] {
        &self.elections
    }

    /// The leader of each term that had one, sorted by term (whole run).
    pub fn leaders_by_term(&self) -> Vec<(Term, NodeId)> {
        self.checker.leaders_by_term()
    }

    /// The entry committed at `index`, as first applied by any node in any lifetime.
    pub fn committed_entry(&self, index: LogIndex) -> Option<(Term, &raft_core::Payload)> {
        self.checker.applied_at(index)
    }

    /// Highest index applied anywhere.
    pub fn max_applied(&self) -> LogIndex {
        self.checker.max_applied()
    }

    /// All counters.
    pub fn stats(&self) -> Stats {
        let msgs = self.net.stats();
        Stats {
            nodes: self
                .slots
                .iter()
                .zip(msgs)
                .map(|(s, m)| NodeStats {
                    id: s.id,
                    msgs: m.clone(),
                    disk: s.disk.stats().clone(),
                    restarts: s.lifetime,
                })
                .collect(),
        }
    }

    /// Steps (inputs to nodes) executed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The newest trace events, one per line (as many as a failure report shows).
    pub fn trace_tail(&self) -> String {
        self.trace.tail_text(self.report_lines)
    }

    /// The newest `n` trace events, one per line.
    pub fn trace_lines(&self, n: usize) -> String {
        self.trace.tail_text(n)
    }

    /// A hash of every event traced so far: equal for equal runs.
    pub fn trace_digest(&self) -> u64 {
        self.trace.digest()
    }

    /// Adds a free-text line to the trace.
    pub fn note(&mut self, text: impl Into<String>) {
        self.trace.push(self.now, TraceKind::Note(text.into()));
    }

    /// Installs a callback that sees every trace event as it happens.
    pub fn set_trace_observer(&mut self, observer: Option<TraceObserver>) {
        self.trace.set_observer(observer);
    }

    /// Installs a callback that sees every applied batch.
    pub fn set_apply_hook(&mut self, hook: Option<ApplyHook>) {
        self.apply_hook = hook;
    }

    /// The network's fault settings, to change for the rest of the run.
    pub fn net_config_mut(&mut self) -> &mut NetConfig {
        self.net.config_mut()
    }

    /// The disks' timing, to change for the rest of the run.
    pub fn disk_config_mut(&mut self) -> &mut DiskConfig {
        &mut self.disk_cfg
    }

    /// Panics with `what`, the seed, the time and the trace tail.
    pub fn fail(&self, what: impl fmt::Display) -> ! {
        panic!(
            "simulation failed (seed {}, t={}): {what}\n--- last {} trace events ---\n{}",
            self.seed,
            fmt_instant(self.now),
            self.report_lines,
            self.trace_tail()
        )
    }

    pub(super) fn check(&self, r: Result<(), Violation>) {
        let Err(v) = r else { return };
        let mut recorded = self.violations.borrow_mut();
        match recorded.as_mut() {
            Some(list) => list.push(v),
            None => {
                drop(recorded);
                self.fail(format_args!("invariant violated: {v}"));
            }
        }
    }
}
