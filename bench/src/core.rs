//! Our core (`raft-core`) on the benchmark workload, with the loop of [`crate::raftrs`].
//!
//! # The loop (the one raft-rs runs, step for step)
//!
//! A 3-node cluster (ids 1, 2, 3) lives in one thread. Each node has an inbox, a `VecDeque`
//! of `(sender, message)` pairs; sending pushes the [`Message`] value onto the receiver's
//! inbox (no encoding, no copying of the payload: entries carry reference-counted bytes).
//! Storage is "durable at once": every [`Output::Persist`] is stored into the node's
//! in-memory, `Vec`-based log and reported with [`Node::handle_persisted`] right away,
//! inside the same drain. Logical time stands still while the clock runs, so no timer fires.
//!
//! 1. Untimed set-up: every node starts as a follower with a randomized election timeout;
//!    node 1 alone is told that its timeout expired (`handle_timeout(poll_timeout())`), then
//!    rounds (step 3b, without proposals) run until the cluster is quiet and the leader's
//!    empty entry is applied everywhere. Every later input uses that same `now`.
//! 2. Timed: the clock starts just before the first proposal.
//! 3. A *round* is:
//!    a. if commands remain, the leader proposes the next batch of `batch` commands, one
//!    [`Node::propose`] call per command (the batch's time of proposal is taken here);
//!    b. each node in id order (1, 2, 3) handles every message in its inbox, then, if it has
//!    output, drains [`Node::poll_output`] until `None`: sends go to the inboxes, persists
//!    are stored and reported durable at once, applies go to the state machine.
//!
//!    This is raft-rs's "step everything, then handle one `Ready`": stepping all pending
//!    messages before draining lets the core gather them into one write per node and
//!    round, as a `Ready` does, and reporting each write durable before draining further
//!    is raft-rs's persist-then-`advance` (the acknowledgements the core held back for that
//!    write, raft-rs's "persisted messages", and the entries it lets commit come out of the
//!    same drain, as from raft-rs's `LightReady`). Messages that node *i* sends reach nodes
//!    handled after it in the same round and the others in the next round, so batches are
//!    pipelined, one new batch per round, under the core's own flow control.
//! 4. Rounds repeat until every node has applied every command; the clock stops there.
//! 5. [`verify`] checks that every node applied every command in order and that all nodes
//!    applied the same entries.
//!
//! # Commit propagation
//!
//! raft-rs (with `skip_bcast_commit = false`) sends followers an AppendEntries as soon as
//! its commit index moves. Our core tells a follower once that follower's window of
//! in-flight messages has drained, so the last batch reaches every state machine without
//! any timer. A round with nothing to do before every node applied every command is a
//! stall and panics.
//!
//! # Configuration
//!
//! [`Config::new`] defaults, with the knobs raft-rs sets in [`crate::raftrs`] matched:
//! `max_inflight_messages = 256` (raft-rs `max_inflight_msgs`), `max_message_bytes = 1 MiB`
//! (raft-rs `max_size_per_msg`; already the default). The in-flight byte window stays at its
//! 8 MiB default, far above what this loop keeps in flight. raft-rs's `batch_append` has no
//! knob here: the core always sends one AppendEntries per follower per drain with everything
//! new (up to `max_message_bytes`). The snapshot policy is off (`snapshot_after_entries` and
//! `snapshot_after_log_bytes` are `None`): raft-rs's run never compacts its `MemStorage`, so
//! neither side takes snapshots and both keep the whole log in memory.

use std::collections::VecDeque;
use std::time::Instant;

use raft_core::{
    Config, Entry, HardState, Instant as CoreInstant, LogIndex, Message, Node, NodeId, Output, Payload, Restored, Role,
    Write,
};

use crate::workload::{Applier, LatencyTracker, Report, Workload, command, verify};

/// Name used in reports.
pub const NAME: &str = "raft-core";

const NODES: u64 = 3;
const LEADER: NodeId = NodeId(1);

/// The node's durable state: what a real host would fsync, kept in memory.
#[derive(Debug, Default)]
struct Storage {
    hard_state: HardState,
    /// The log from index 1.
    entries: Vec<Entry>,
}

impl Storage {
    /// Performs `write` with the ordering rule of [`raft_core::Persist`].
    fn write(&mut self, write: Write) {
        if let Some(hs) = write.hard_state {
            self.hard_state = hs;
        }
        assert!(write.snapshot.is_none(), "no snapshots are expected in this workload");
        if let Some(LogIndex(from)) = write.truncate_from {
            self.entries.truncate(from.saturating_sub(1) as usize);
        }
        if let Some(first) = write.entries.first() {
            assert_eq!(first.index.0, self.entries.len() as u64 + 1, "a write must continue the stored log");
        }
        self.entries.extend(write.entries);
    }
}

struct Member {
    core: Node,
    store: Storage,
    sm: Applier,
}

struct Cluster {
    nodes: Vec<Member>,
    /// `inboxes[i]` holds the messages for node `i + 1`, with their sender.
    inboxes: Vec<VecDeque<(NodeId, Message)>>,
    payload_bytes: usize,
    /// Logical time: the election deadline, then never moves.
    now: CoreInstant,
}

fn config(id: NodeId) -> Config {
    let mut config = Config::new(id, (1..=NODES).map(NodeId));
    config.max_inflight_messages = 256;
    config.max_message_bytes = 1024 * 1024;
    // raft-rs's MemStorage is never compacted in its run: no snapshot policy here either.
    config.snapshot_after_entries = None;
    config.snapshot_after_log_bytes = None;
    config
}

fn index(id: NodeId) -> usize {
    (id.0 - 1) as usize
}

/// Applies committed entries to the node's state machine; on the leader, also records the
/// commands' latency.
fn apply(sm: &mut Applier, entries: Vec<Entry>, payload_bytes: usize, latency: Option<&mut LatencyTracker>) {
    if entries.is_empty() {
        return;
    }
    let mut latency = latency.map(|l| (l, Instant::now()));
    for e in entries {
        match &e.payload {
            Payload::Noop | Payload::Membership(_) => sm.apply_empty(e.index.0),
            Payload::Command(data) => {
                let seq = sm.apply_command(e.index.0, data, payload_bytes);
                if let Some((tracker, now)) = latency.as_mut() {
                    tracker.applied(seq, *now);
                }
            }
            other => panic!("unexpected entry payload {other:?}"),
        }
    }
}

impl Cluster {
    fn new(payload_bytes: usize) -> Self {
        let now = CoreInstant::ZERO;
        let nodes = (1..=NODES)
            .map(|id| Member {
                core: Node::new(config(NodeId(id)), Restored::fresh(), now)
                    .expect("raft-core rejected the configuration"),
                store: Storage::default(),
                sm: Applier::default(),
            })
            .collect();
        Self { nodes, inboxes: (1..=NODES).map(|_| VecDeque::new()).collect(), payload_bytes, now }
    }

    fn leader(&mut self) -> &mut Node {
        &mut self.nodes[index(LEADER)].core
    }

    /// One round of step 3b for every node. Returns whether anything happened.
    fn round(&mut self, mut latency: Option<&mut LatencyTracker>) -> bool {
        let now = self.now;
        let mut busy = false;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            while let Some((from, m)) = self.inboxes[i].pop_front() {
                node.core.handle_message(now, from, m);
                busy = true;
            }
            let lat = if node.core.id() == LEADER { latency.as_deref_mut() } else { None };
            busy |= Self::drain(node, &mut self.inboxes, self.payload_bytes, now, lat);
        }
        busy
    }

    /// Drains the node's outputs. Returns whether there were any.
    fn drain(
        node: &mut Member,
        inboxes: &mut [VecDeque<(NodeId, Message)>],
        payload_bytes: usize,
        now: CoreInstant,
        mut latency: Option<&mut LatencyTracker>,
    ) -> bool {
        let me = node.core.id();
        let mut any = false;
        while let Some(out) = node.core.poll_output() {
            any = true;
            match out {
                Output::Persist(p) => {
                    // Durable at once.
                    node.store.write(p.write);
                    node.core.handle_persisted(now, p.token);
                }
                Output::Send(o) => inboxes[index(o.to)].push_back((me, o.message)),
                Output::Apply(entries) => {
                    apply(&mut node.sm, entries, payload_bytes, latency.as_deref_mut());
                }
                Output::Event(_) => {}
                other => panic!("unexpected output {other:?}"),
            }
        }
        any
    }

    /// Every node applied everything the leader has committed, which is its whole log.
    fn settled(&self) -> bool {
        let leader = &self.nodes[index(LEADER)].core;
        let commit = leader.commit_index();
        commit == leader.last_log_index() && self.nodes.iter().all(|n| n.sm.last_index == commit.0)
    }

    /// Step 1: elect node 1 and let the cluster settle.
    fn elect(&mut self) {
        let deadline = self.leader().poll_timeout().expect("a follower always has an election deadline");
        self.now = deadline;
        self.leader().handle_timeout(deadline);
        let mut rounds = 0;
        while self.round(None) {
            rounds += 1;
            assert!(rounds < 1_000, "election did not settle");
        }
        assert_eq!(self.leader().role(), Role::Leader, "node {LEADER} did not become leader");
        assert!(self.settled(), "election did not settle");
    }

    fn all_applied(&self, proposals: u64) -> bool {
        self.nodes.iter().all(|n| n.sm.applied_commands == proposals)
    }
}

/// Runs `workload` on a 3-node raft-core cluster with the loop described in the module docs.
///
/// # Panics
///
/// If the workload is invalid, or if the core fails to apply every command on every node.
pub fn run_core(workload: &Workload) -> Report {
    if let Err(e) = workload.validate() {
        panic!("invalid workload: {e}");
    }
    let mut cluster = Cluster::new(workload.payload_bytes);
    cluster.elect();

    let mut latency = LatencyTracker::new(workload);
    let batches = workload.batches();
    let target = workload.proposals as u64;
    let start = Instant::now();
    let mut next_batch = 0;
    loop {
        if next_batch < batches {
            latency.proposed(Instant::now());
            let now = cluster.now;
            for seq in workload.batch_range(next_batch) {
                cluster
                    .leader()
                    .propose(now, command(seq, workload.payload_bytes))
                    .expect("the leader dropped a proposal");
            }
            next_batch += 1;
        }
        let busy = cluster.round(Some(&mut latency));
        if cluster.all_applied(target) {
            break;
        }
        assert!(busy || next_batch < batches, "raft-core stalled before applying every command");
    }
    let elapsed = start.elapsed();

    assert_eq!(cluster.leader().role(), Role::Leader);
    for node in &cluster.nodes {
        assert_eq!(
            node.store.entries.len() as u64,
            node.core.last_log_index().0,
            "{NAME}: node {} stored a different log than it holds",
            node.core.id()
        );
    }
    let appliers: Vec<Applier> = cluster.nodes.iter().map(|n| n.sm.clone()).collect();
    let applied = verify(NAME, workload, &appliers);
    Report::new(NAME, workload.proposals, elapsed, applied, latency.mean_us())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_batched_run_applies_everything_everywhere() {
        let workload = Workload { proposals: 1_000, batch: 7, payload_bytes: 16 };
        let report = run_core(&workload);
        assert_eq!(report.name, NAME);
        assert_eq!(report.proposals, 1_000);
        // Every command plus the leader's empty entry, on each of the 3 nodes.
        assert_eq!(report.applied_entries_all_nodes, 3 * 1_001);
        assert!(report.mean_latency_us.is_some());
    }

    #[test]
    fn batch_of_one_and_oversized_batch() {
        for batch in [1, 5_000] {
            let workload = Workload { proposals: 300, batch, payload_bytes: 8 };
            assert_eq!(run_core(&workload).applied_entries_all_nodes, 3 * 301);
        }
    }

    #[test]
    fn same_work_as_raft_rs() {
        let workload = Workload { proposals: 2_000, batch: 64, payload_bytes: 32 };
        let core = run_core(&workload);
        let raftrs = crate::raftrs::run_raftrs(&workload);
        assert_eq!(core.applied_entries_all_nodes, raftrs.applied_entries_all_nodes);
    }

    #[test]
    fn storage_follows_the_write_ordering_rule() {
        let entry = |i| Entry { term: raft_core::Term(1), index: LogIndex(i), payload: Payload::Noop };
        let mut s = Storage::default();
        let mut w = Write::default();
        w.entries = (1..=3).map(entry).collect();
        s.write(w);
        let mut w = Write::default();
        w.truncate_from = Some(LogIndex(2));
        w.entries = vec![entry(2)];
        s.write(w);
        assert_eq!(s.entries.len(), 2);
    }
}
