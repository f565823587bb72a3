//! The benchmark workload and the pieces of the loop that every implementation shares.
//!
//! Both runners (raft-rs in [`crate::raftrs`], our core later) use the same
//! [`Workload`], produce the same [`Report`], build their commands with [`command`], apply
//! committed entries through the same [`Applier`] state machine, time proposals with the
//! same [`LatencyTracker`] and check the outcome with [`verify`]. That keeps the work done
//! outside the Raft implementation identical on both sides, so the ratio between the two
//! reports is a ratio between the Raft implementations.

use std::time::{Duration, Instant};

/// What to run: `proposals` commands of `payload_bytes` bytes each, proposed `batch` at a
/// time on the leader of a 3-node cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Total number of commands proposed (and then applied on every node).
    pub proposals: usize,
    /// Commands proposed on the leader per round of the loop.
    pub batch: usize,
    /// Size of each command's payload in bytes (at least [`Workload::MIN_PAYLOAD`]).
    pub payload_bytes: usize,
}

impl Workload {
    /// Each command starts with its 8-byte little-endian sequence number.
    pub const MIN_PAYLOAD: usize = 8;

    /// The throughput-bound variant: large batches.
    pub const THROUGHPUT: Self = Self { proposals: 200_000, batch: 256, payload_bytes: 128 };

    /// The latency-bound variant: one command per round.
    pub const LATENCY: Self = Self { proposals: 20_000, batch: 1, payload_bytes: 128 };

    /// Checks that the workload can be run.
    pub fn validate(&self) -> Result<(), String> {
        if self.proposals == 0 {
            return Err("proposals must be at least 1".into());
        }
        if self.batch == 0 {
            return Err("batch must be at least 1".into());
        }
        if self.payload_bytes < Self::MIN_PAYLOAD {
            return Err(format!(
                "payload must be at least {} bytes (it carries the command's sequence number)",
                Self::MIN_PAYLOAD
            ));
        }
        Ok(())
    }

    /// Number of rounds in which the leader proposes (the last batch may be short).
    pub fn batches(&self) -> usize {
        self.proposals.div_ceil(self.batch)
    }

    /// The sequence numbers proposed in batch number `batch_no`.
    pub fn batch_range(&self, batch_no: usize) -> std::ops::Range<u64> {
        let start = batch_no * self.batch;
        let end = (start + self.batch).min(self.proposals);
        start as u64..end as u64
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Which implementation ran (e.g. `"raft-rs"`).
    pub name: &'static str,
    /// Commands proposed, each applied on all three nodes.
    pub proposals: usize,
    /// Wall time from the first proposal until every command was applied on every node.
    pub elapsed: Duration,
    /// `proposals / elapsed`.
    pub committed_per_sec: f64,
    /// Entries applied, summed over the three nodes (commands plus the leader's no-op
    /// entries; about three times `proposals`).
    pub applied_entries_all_nodes: u64,
    /// Mean time from proposing a command on the leader to applying it on the leader,
    /// in microseconds.
    pub mean_latency_us: Option<f64>,
}

impl Report {
    /// Builds a report; `committed_per_sec` is derived from `proposals` and `elapsed`.
    pub fn new(
        name: &'static str,
        proposals: usize,
        elapsed: Duration,
        applied_entries_all_nodes: u64,
        mean_latency_us: Option<f64>,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let committed_per_sec = if secs > 0.0 { proposals as f64 / secs } else { f64::INFINITY };
        Self { name, proposals, elapsed, committed_per_sec, applied_entries_all_nodes, mean_latency_us }
    }
}

/// The command with sequence number `seq`: `payload_bytes` bytes, the first eight of which
/// are `seq` in little-endian order, the rest a fixed filler.
pub fn command(seq: u64, payload_bytes: usize) -> Vec<u8> {
    let mut data = vec![0xA5; payload_bytes.max(Workload::MIN_PAYLOAD)];
    data[..8].copy_from_slice(&seq.to_le_bytes());
    data
}

/// The replicated state machine of one node.
///
/// Applying checks that entries arrive with contiguous indexes, that commands arrive in
/// proposal order with the right size, and folds every entry into a digest that must be
/// the same on all nodes at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applier {
    /// Log index of the last applied entry.
    pub last_index: u64,
    /// Entries applied (commands and no-op/empty entries).
    pub applied_entries: u64,
    /// Commands applied; also the sequence number the next command must carry.
    pub applied_commands: u64,
    /// Order-sensitive digest of everything applied.
    pub digest: u64,
}

impl Applier {
    fn step_index(&mut self, index: u64) {
        assert_eq!(index, self.last_index + 1, "entries must be applied in log order without gaps");
        self.last_index = index;
        self.applied_entries += 1;
    }

    fn fold(&mut self, value: u64) {
        self.digest = (self.digest.rotate_left(5) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    /// Applies an entry that carries no command (a new leader's empty entry).
    pub fn apply_empty(&mut self, index: u64) {
        self.step_index(index);
        self.fold(index);
    }

    /// Applies a command entry and returns its sequence number.
    pub fn apply_command(&mut self, index: u64, data: &[u8], payload_bytes: usize) -> u64 {
        self.step_index(index);
        assert_eq!(data.len(), payload_bytes, "command has the wrong size");
        let mut seq = [0; 8];
        seq.copy_from_slice(&data[..8]);
        let seq = u64::from_le_bytes(seq);
        assert_eq!(seq, self.applied_commands, "commands must be applied in proposal order, once each");
        self.applied_commands += 1;
        self.fold(index);
        self.fold(seq);
        seq
    }
}

/// Time from proposing a command on the leader to applying it on the leader.
///
/// One timestamp per proposed batch and one per apply call, so the tracking cost does not
/// grow with the batch size.
#[derive(Debug, Clone)]
pub struct LatencyTracker {
    batch: usize,
    proposed_at: Vec<Instant>,
    total: Duration,
    samples: u64,
}

impl LatencyTracker {
    /// A tracker for `workload`.
    pub fn new(workload: &Workload) -> Self {
        Self {
            batch: workload.batch,
            proposed_at: Vec::with_capacity(workload.batches()),
            total: Duration::ZERO,
            samples: 0,
        }
    }

    /// Records that the next batch was proposed at `now`.
    pub fn proposed(&mut self, now: Instant) {
        self.proposed_at.push(now);
    }

    /// Records that the command with sequence number `seq` was applied on the leader at `now`.
    pub fn applied(&mut self, seq: u64, now: Instant) {
        let proposed = self.proposed_at[seq as usize / self.batch];
        self.total += now.saturating_duration_since(proposed);
        self.samples += 1;
    }

    /// Mean latency in microseconds, if any command was applied.
    pub fn mean_us(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.total.as_secs_f64() * 1e6 / self.samples as f64)
    }
}

/// Checks that the run did the real work: every node applied every command, and all nodes
/// applied the same entries. Panics otherwise. Returns the number of entries applied,
/// summed over the nodes.
pub fn verify(name: &str, workload: &Workload, nodes: &[Applier]) -> u64 {
    let first = &nodes[0];
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            node.applied_commands,
            workload.proposals as u64,
            "{name}: node {} applied {} of {} commands",
            i + 1,
            node.applied_commands,
            workload.proposals
        );
        assert_eq!(node, first, "{name}: node {} applied something different from node 1", i + 1);
    }
    nodes.iter().map(|n| n.applied_entries).sum()
}
