//! The peer baseline: the benchmark workload on tikv's `raft` crate (raft-rs 0.7).
//!
//! # The loop (our core runs the same one)
//!
//! A 3-node cluster (ids 1, 2, 3) lives in one thread. Each node has an inbox, a
//! `VecDeque` of messages; sending a message pushes the message value onto the receiver's
//! inbox (no encoding, no copying of the payload). Storage is "durable at once": a node
//! appends a `Ready`'s entries and hard state to its `MemStorage` while handling that
//! `Ready` and then advances, so a write is persisted as soon as it is handed over. Nobody
//! calls `tick`: logical time stands still, so there are no heartbeats or elections while
//! the clock runs.
//!
//! 1. Untimed set-up: node 1 campaigns, then rounds (step 3 below, without proposals) run
//!    until node 1 is leader and the cluster is quiet (no message in flight, no pending
//!    `Ready`), i.e. the new leader's empty entry is applied everywhere.
//! 2. Timed: the clock starts just before the first proposal.
//! 3. A *round* is:
//!    a. if commands remain, the leader proposes the next batch of `batch` commands, one
//!    `propose` call per command (the batch's time of proposal is taken here);
//!    b. each node in id order (1, 2, 3) steps every message in its inbox, then, if it has a
//!    `Ready`, handles that one `Ready`: sends its messages, applies its committed entries,
//!    persists its entries and hard state, sends its after-persist messages, advances, and
//!    handles what the advance returns (commit index, messages, committed entries).
//!
//!    Messages that node *i* sends reach nodes handled after it in the same round and the
//!    others in the next round. So a new batch is proposed every round without waiting for
//!    the previous one: batches are pipelined, one new batch per round, and Raft's own flow
//!    control (`max_inflight_msgs`, `max_size_per_msg`) decides how much goes on the wire.
//! 4. Rounds repeat until every node has applied every command; the clock stops there.
//!    A round in which nothing happens before that is a bug and panics.
//! 5. [`verify`] checks that every node applied every command in order and that all nodes
//!    applied the same entries.
//!
//! The latency-bound variant is the same loop with `batch = 1`: one command per round, so
//! the per-message and per-`Ready` costs dominate. For every command the time from its
//! batch's proposal to its apply on the leader is measured ([`LatencyTracker`]) in both
//! variants.
//!
//! # Configuration
//!
//! What a production user of raft-rs would set: `max_inflight_msgs = 256`,
//! `max_size_per_msg = 1 MiB` (TiKV's default; a 256 x 128 B batch fits in one message),
//! `batch_append = true` (merges appends to the same follower produced before the messages
//! are taken), `pre_vote` and `check_quorum` on (inert without ticks), commit broadcast on
//! (`skip_bcast_commit = false`: with no heartbeats the followers would otherwise never learn
//! the last commit index). Logging goes to a discard logger.

use std::collections::VecDeque;
use std::time::Instant;

use raft::eraftpb::{Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};
use slog::{Discard, Logger, o};

use crate::workload::{Applier, LatencyTracker, Report, Workload, command, verify};

/// Name used in reports.
pub const NAME: &str = "raft-rs";

const NODES: u64 = 3;
const LEADER: u64 = 1;

struct Node {
    raw: RawNode<MemStorage>,
    sm: Applier,
}

struct Cluster {
    nodes: Vec<Node>,
    /// `inboxes[i]` holds the messages for node `i + 1`.
    inboxes: Vec<VecDeque<Message>>,
    payload_bytes: usize,
}

fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 3,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        batch_append: true,
        pre_vote: true,
        check_quorum: true,
        skip_bcast_commit: false,
        ..Config::default()
    }
}

fn send(inboxes: &mut [VecDeque<Message>], msgs: Vec<Message>) {
    for m in msgs {
        inboxes[(m.to - 1) as usize].push_back(m);
    }
}

/// Applies committed entries to the node's state machine; on the leader, also records the
/// commands' latency.
fn apply(sm: &mut Applier, entries: Vec<Entry>, payload_bytes: usize, latency: Option<&mut LatencyTracker>) {
    if entries.is_empty() {
        return;
    }
    let mut latency = latency.map(|l| (l, Instant::now()));
    for e in entries {
        assert_eq!(e.get_entry_type(), EntryType::EntryNormal);
        if e.data.is_empty() {
            sm.apply_empty(e.index);
        } else {
            let seq = sm.apply_command(e.index, &e.data, payload_bytes);
            if let Some((tracker, now)) = latency.as_mut() {
                tracker.applied(seq, *now);
            }
        }
    }
}

impl Cluster {
    fn new(payload_bytes: usize) -> Self {
        let logger = Logger::root(Discard, o!());
        let voters: Vec<u64> = (1..=NODES).collect();
        let nodes = (1..=NODES)
            .map(|id| {
                let storage = MemStorage::new_with_conf_state((voters.clone(), Vec::<u64>::new()));
                let raw = RawNode::new(&config(id), storage, &logger).expect("raft-rs rejected the configuration");
                Node { raw, sm: Applier::default() }
            })
            .collect();
        Self { nodes, inboxes: (1..=NODES).map(|_| VecDeque::new()).collect(), payload_bytes }
    }

    fn leader(&mut self) -> &mut RawNode<MemStorage> {
        &mut self.nodes[(LEADER - 1) as usize].raw
    }

    /// One round of step 3b for every node. Returns whether anything happened.
    fn round(&mut self, mut latency: Option<&mut LatencyTracker>) -> bool {
        let mut busy = false;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            while let Some(m) = self.inboxes[i].pop_front() {
                node.raw.step(m).expect("raft-rs refused a message");
                busy = true;
            }
            if !node.raw.has_ready() {
                continue;
            }
            busy = true;
            let is_leader = node.raw.raft.id == LEADER;
            let lat = if is_leader { latency.as_deref_mut() } else { None };
            Self::handle_ready(node, &mut self.inboxes, self.payload_bytes, lat);
        }
        busy
    }

    fn handle_ready(
        node: &mut Node,
        inboxes: &mut [VecDeque<Message>],
        payload_bytes: usize,
        mut latency: Option<&mut LatencyTracker>,
    ) {
        let mut rd = node.raw.ready();
        // A leader may send before persisting (raft thesis 10.2.1).
        send(inboxes, rd.take_messages());
        assert!(rd.snapshot().is_empty(), "no snapshots are expected in this workload");
        apply(&mut node.sm, rd.take_committed_entries(), payload_bytes, latency.as_deref_mut());
        // Durable at once: persist entries and hard state now.
        {
            let store = node.raw.mut_store();
            let mut core = store.wl();
            if !rd.entries().is_empty() {
                core.append(rd.entries()).expect("MemStorage append");
            }
            if let Some(hs) = rd.hs() {
                core.set_hardstate(hs.clone());
            }
        }
        send(inboxes, rd.take_persisted_messages());
        let mut light = node.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            node.raw.mut_store().wl().mut_hard_state().commit = commit;
        }
        send(inboxes, light.take_messages());
        apply(&mut node.sm, light.take_committed_entries(), payload_bytes, latency);
        node.raw.advance_apply();
    }

    /// Step 1: elect node 1 and let the cluster settle.
    fn elect(&mut self) {
        self.leader().campaign().expect("campaign");
        let mut rounds = 0;
        while self.round(None) {
            rounds += 1;
            assert!(rounds < 1_000, "election did not settle");
        }
        assert_eq!(self.leader().raft.state, StateRole::Leader, "node {LEADER} did not become leader");
    }

    fn all_applied(&self, proposals: u64) -> bool {
        self.nodes.iter().all(|n| n.sm.applied_commands == proposals)
    }
}

/// Runs `workload` on a 3-node raft-rs cluster with the loop described in the module docs.
///
/// # Panics
///
/// If the workload is invalid, or if raft-rs fails to apply every command on every node.
pub fn run_raftrs(workload: &Workload) -> Report {
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
            for seq in workload.batch_range(next_batch) {
                cluster
                    .leader()
                    .propose(vec![], command(seq, workload.payload_bytes))
                    .expect("the leader dropped a proposal");
            }
            next_batch += 1;
        }
        let busy = cluster.round(Some(&mut latency));
        if cluster.all_applied(target) {
            break;
        }
        assert!(busy || next_batch < batches, "raft-rs stalled before applying every command");
    }
    let elapsed = start.elapsed();

    assert_eq!(cluster.leader().raft.state, StateRole::Leader);
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
        let report = run_raftrs(&workload);
        assert_eq!(report.proposals, 1_000);
        // Every command plus the leader's empty entry, on each of the 3 nodes.
        assert_eq!(report.applied_entries_all_nodes, 3 * 1_001);
        assert!(report.mean_latency_us.is_some());
    }

    #[test]
    fn batch_of_one_and_oversized_batch() {
        for batch in [1, 5_000] {
            let workload = Workload { proposals: 300, batch, payload_bytes: 8 };
            assert_eq!(run_raftrs(&workload).applied_entries_all_nodes, 3 * 301);
        }
    }
}
