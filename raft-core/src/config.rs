//! Node configuration and its validation.

use crate::time::Duration;
use crate::types::{Bytes, ENTRY_OVERHEAD_BYTES, NodeId};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

/// Bytes of an AppendEntries message besides its entries (bincode varint bound).
pub const APPEND_OVERHEAD_BYTES: usize = 64;

/// Everything a node needs to know before it starts. Build with [`Config::new`],
/// adjust the public fields, then [`Config::validate`] (also done by `Node::new`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// The voters of a new cluster, this node included (the bootstrap
    /// configuration). Once the log or a snapshot holds a configuration, that
    /// one governs and this list is ignored. Empty: this node joins an
    /// existing cluster; it waits for a leader to contact it and never
    /// campaigns before it is a voter.
    pub members: Vec<NodeId>,
    /// The bootstrap members' addresses (opaque to the core, the host's
    /// format), written into the bootstrap configuration entry so that a node
    /// added later learns them from the log. Ignored like `members` once a
    /// configuration is logged. Default empty.
    pub member_addrs: BTreeMap<NodeId, Bytes>,
    /// How often an idle leader sends heartbeats. Default 110 ms.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomized election timeout. Default 300 ms.
    pub election_timeout_min: Duration,
    /// Upper bound (exclusive) of the randomized election timeout. Default 600 ms.
    /// A fresh timeout is drawn uniformly from `[min, max)` for every wait.
    pub election_timeout_max: Duration,
    /// Seed of the node's PRNG (election timeouts, the ids of its requests
    /// to the leader). Give each node its own seed, and a fresh one at every
    /// start (e.g. mixed with OS randomness): ids of a previous lifetime must
    /// not repeat.
    pub seed: u64,
    /// Upper bound on one message's encoded size; every AppendEntries fits in it.
    /// Default 1 MiB.
    pub max_message_bytes: usize,
    /// Largest command `propose` accepts. Must leave room for the message framing
    /// within `max_message_bytes`. Default 512 KiB.
    pub max_entry_bytes: usize,
    /// Pipelined AppendEntries messages allowed in flight per follower. Default 64.
    pub max_inflight_messages: usize,
    /// Bytes of entries allowed in flight per follower. Default 8 MiB.
    pub max_inflight_bytes: usize,
    /// Ask the host for a snapshot (`Event::SnapshotWanted`) once this many
    /// entries were applied since the last one. `None`: never by count. Default 10,000.
    pub snapshot_after_entries: Option<u64>,
    /// Ask the host for a snapshot once the in-memory log holds this many
    /// bytes (by `Entry::size_bound`). `None`: never by size. Default 64 MiB.
    pub snapshot_after_log_bytes: Option<usize>,
    /// Largest snapshot a follower accepts from a leader. Default 1 GiB.
    pub max_snapshot_bytes: u64,
    /// The host keeps the bytes of snapshots this node receives: each chunk
    /// goes out as an [`Output::SaveSnapshotChunk`](crate::Output::SaveSnapshotChunk)
    /// instead of being collected in memory, and the installed snapshot's
    /// `data` is empty. Off by default (the core collects the chunks). Hosts
    /// that turn it on also take snapshots with
    /// [`Node::compact_stored`](crate::Node::compact_stored).
    pub host_stores_snapshots: bool,
    /// Pre-vote (dissertation §9.6): before raising its term, a would-be
    /// candidate asks whether a majority would vote for it, and a voter says
    /// yes only if the candidate's log is up to date and the voter has not
    /// heard from a leader within `election_timeout_min`. A node cut off from
    /// the cluster so never raises its term and cannot depose a healthy
    /// leader when it returns. Default on.
    pub pre_vote: bool,
    /// Check-quorum: a leader that has not heard from a majority within
    /// `election_timeout_max` steps down; and a node that heard from a leader
    /// within `election_timeout_min` ignores vote requests (those of a
    /// leadership transfer excepted) instead of adopting their term. Default on.
    pub check_quorum: bool,
    /// How `Node::read_index` confirms leadership. Default [`ReadMode::Safe`].
    pub read_mode: ReadMode,
    /// A follower that knows the leader forwards `Node::forward` commands to
    /// it (instead of refusing them), so a client reaching any live node is
    /// served. Default off.
    pub forward_proposals: bool,
    /// A learner is promoted to voter only once it holds the leader's log
    /// but for at most this many entries. Default 1,000.
    pub max_learner_lag: u64,
}

/// How a leader confirms, for a read, that it still leads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex (dissertation §6.4): a heartbeat round that starts after the
    /// read arrived must be acknowledged by a majority. Costs one round trip
    /// to a majority per batch of reads; assumes nothing about clocks.
    Safe,
    /// Lease reads (dissertation §6.4.1): a read is answered at once while
    /// the leader holds a lease, which lasts `election_timeout_min -
    /// max_clock_drift` from the moment it sent the latest heartbeat round a
    /// majority acknowledged. Requires `check_quorum`.
    ///
    /// **Assumption:** within any span of `election_timeout_min`, no two
    /// nodes' clocks (the `now` their hosts pass) drift apart by more than
    /// `max_clock_drift`. Voters refuse to elect anyone for
    /// `election_timeout_min` after they last heard from the leader, by their
    /// own clocks; if a voter's clock runs fast enough to break the bound, a
    /// new leader can be elected while the old one still serves reads from
    /// its lease, and those reads can be stale.
    Lease {
        /// The bound on clock drift over one `election_timeout_min`.
        max_clock_drift: Duration,
    },
}

impl Config {
    /// A configuration with the project defaults (heartbeat 110 ms, election
    /// timeout in [300 ms, 600 ms)) and `seed` derived from `id`.
    pub fn new(id: NodeId, members: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            id,
            members: members.into_iter().collect(),
            member_addrs: BTreeMap::new(),
            heartbeat_interval: Duration::from_millis(110),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            seed: id.0.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED,
            max_message_bytes: 1 << 20,
            max_entry_bytes: 512 << 10,
            max_inflight_messages: 64,
            max_inflight_bytes: 8 << 20,
            snapshot_after_entries: Some(10_000),
            snapshot_after_log_bytes: Some(64 << 20),
            max_snapshot_bytes: 1 << 30,
            host_stores_snapshots: false,
            pre_vote: true,
            check_quorum: true,
            read_mode: ReadMode::Safe,
            forward_proposals: false,
            max_learner_lag: 1_000,
        }
    }

    /// Checks every rule; the error names the first one broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i].contains(m) {
                return Err(ConfigError::DuplicateMember(*m));
            }
        }
        if !self.members.is_empty() && !self.members.contains(&self.id) {
            return Err(ConfigError::SelfNotMember(self.id));
        }
        if self.heartbeat_interval == Duration::ZERO {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(ConfigError::EmptyElectionTimeoutRange {
                min: self.election_timeout_min,
                max: self.election_timeout_max,
            });
        }
        if self.heartbeat_interval >= self.election_timeout_min {
            return Err(ConfigError::HeartbeatNotBelowElectionTimeout {
                heartbeat: self.heartbeat_interval,
                election_min: self.election_timeout_min,
            });
        }
        if self.max_entry_bytes == 0 {
            return Err(ConfigError::ZeroMaxEntryBytes);
        }
        let needed = self.max_entry_bytes.saturating_add(ENTRY_OVERHEAD_BYTES + APPEND_OVERHEAD_BYTES);
        if self.max_message_bytes < needed {
            return Err(ConfigError::MessageTooSmallForEntry { max_message_bytes: self.max_message_bytes, needed });
        }
        if self.max_inflight_messages == 0 {
            return Err(ConfigError::ZeroInflightMessages);
        }
        if self.max_inflight_bytes < self.max_message_bytes {
            return Err(ConfigError::InflightBytesBelowMessage {
                max_inflight_bytes: self.max_inflight_bytes,
                max_message_bytes: self.max_message_bytes,
            });
        }
        if self.snapshot_after_entries == Some(0) || self.snapshot_after_log_bytes == Some(0) {
            return Err(ConfigError::ZeroSnapshotThreshold);
        }
        if let ReadMode::Lease { max_clock_drift } = self.read_mode {
            if !self.check_quorum {
                return Err(ConfigError::LeaseWithoutCheckQuorum);
            }
            if max_clock_drift >= self.election_timeout_min {
                return Err(ConfigError::LeaseDriftTooLarge {
                    max_clock_drift,
                    election_min: self.election_timeout_min,
                });
            }
        }
        Ok(())
    }
}

/// Why a [`Config`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A member is listed twice.
    DuplicateMember(NodeId),
    /// `id` is not in `members`.
    SelfNotMember(NodeId),
    /// `heartbeat_interval` is zero.
    ZeroHeartbeat,
    /// `election_timeout_max <= election_timeout_min`.
    EmptyElectionTimeoutRange {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// A heartbeat must come well before a follower's election timeout (paper §5.6).
    HeartbeatNotBelowElectionTimeout {
        /// The configured heartbeat interval.
        heartbeat: Duration,
        /// The configured election timeout minimum.
        election_min: Duration,
    },
    /// `max_entry_bytes` is zero.
    ZeroMaxEntryBytes,
    /// A message must hold at least one maximal entry plus framing.
    MessageTooSmallForEntry {
        /// The configured message limit.
        max_message_bytes: usize,
        /// What one maximal entry needs.
        needed: usize,
    },
    /// `max_inflight_messages` is zero.
    ZeroInflightMessages,
    /// A snapshot threshold of zero would ask for a snapshot after every entry.
    ZeroSnapshotThreshold,
    /// Lease reads rely on check-quorum's vote stickiness.
    LeaseWithoutCheckQuorum,
    /// The clock-drift bound leaves no lease at all.
    LeaseDriftTooLarge {
        /// The configured bound.
        max_clock_drift: Duration,
        /// The configured election timeout minimum.
        election_min: Duration,
    },
    /// The in-flight byte window must hold at least one full message.
    InflightBytesBelowMessage {
        /// The configured window.
        max_inflight_bytes: usize,
        /// The configured message limit.
        max_message_bytes: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::DuplicateMember(id) => write!(f, "member {id} is listed more than once"),
            ConfigError::SelfNotMember(id) => write!(f, "this node ({id}) is not in the member list"),
            ConfigError::ZeroHeartbeat => write!(f, "the heartbeat interval is zero"),
            ConfigError::EmptyElectionTimeoutRange { min, max } => write!(
                f,
                "election timeout range is empty: max {} ms must exceed min {} ms",
                max.as_millis(),
                min.as_millis()
            ),
            ConfigError::HeartbeatNotBelowElectionTimeout { heartbeat, election_min } => write!(
                f,
                "heartbeat interval {} ms must be below the election timeout minimum {} ms",
                heartbeat.as_millis(),
                election_min.as_millis()
            ),
            ConfigError::ZeroMaxEntryBytes => write!(f, "max_entry_bytes is zero"),
            ConfigError::MessageTooSmallForEntry { max_message_bytes, needed } => {
                write!(f, "max_message_bytes {max_message_bytes} cannot hold one maximal entry ({needed} bytes needed)")
            }
            ConfigError::ZeroInflightMessages => write!(f, "max_inflight_messages is zero"),
            ConfigError::ZeroSnapshotThreshold => {
                write!(f, "a snapshot threshold is zero (use None to disable it)")
            }
            ConfigError::LeaseWithoutCheckQuorum => write!(f, "lease reads need check_quorum"),
            ConfigError::LeaseDriftTooLarge { max_clock_drift, election_min } => write!(
                f,
                "lease clock-drift bound {} ms must be below the election timeout minimum {} ms",
                max_clock_drift.as_millis(),
                election_min.as_millis()
            ),
            ConfigError::InflightBytesBelowMessage { max_inflight_bytes, max_message_bytes } => {
                write!(f, "max_inflight_bytes {max_inflight_bytes} is below max_message_bytes {max_message_bytes}")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn defaults_are_the_seed_projects_and_valid() {
        let c = Config::new(NodeId(1), ids(&[1, 2, 3]));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(110));
        assert_eq!(c.election_timeout_min, Duration::from_millis(300));
        assert_eq!(c.election_timeout_max, Duration::from_millis(600));
        assert_eq!(c.validate(), Ok(()));
        assert_ne!(c.seed, Config::new(NodeId(2), ids(&[1, 2, 3])).seed);
    }

    #[test]
    fn each_rule_is_enforced() {
        let ok = Config::new(NodeId(1), ids(&[1, 2, 3]));
        let check = |f: &dyn Fn(&mut Config), want: ConfigError| {
            let mut c = ok.clone();
            f(&mut c);
            assert_eq!(c.validate(), Err(want.clone()));
            assert!(!alloc::format!("{want}").is_empty());
        };
        check(&|c| c.members.push(NodeId(2)), ConfigError::DuplicateMember(NodeId(2)));
        check(&|c| c.id = NodeId(9), ConfigError::SelfNotMember(NodeId(9)));
        check(&|c| c.heartbeat_interval = Duration::ZERO, ConfigError::ZeroHeartbeat);
        check(
            &|c| c.election_timeout_max = c.election_timeout_min,
            ConfigError::EmptyElectionTimeoutRange { min: Duration::from_millis(300), max: Duration::from_millis(300) },
        );
        check(
            &|c| c.heartbeat_interval = Duration::from_millis(300),
            ConfigError::HeartbeatNotBelowElectionTimeout {
                heartbeat: Duration::from_millis(300),
                election_min: Duration::from_millis(300),
            },
        );
        check(&|c| c.max_entry_bytes = 0, ConfigError::ZeroMaxEntryBytes);
        check(
            &|c| c.max_message_bytes = c.max_entry_bytes,
            ConfigError::MessageTooSmallForEntry {
                max_message_bytes: 512 << 10,
                needed: (512 << 10) + ENTRY_OVERHEAD_BYTES + APPEND_OVERHEAD_BYTES,
            },
        );
        check(&|c| c.max_inflight_messages = 0, ConfigError::ZeroInflightMessages);
        check(&|c| c.snapshot_after_entries = Some(0), ConfigError::ZeroSnapshotThreshold);
        check(
            &|c| {
                c.read_mode = ReadMode::Lease { max_clock_drift: Duration::from_millis(10) };
                c.check_quorum = false;
            },
            ConfigError::LeaseWithoutCheckQuorum,
        );
        check(
            &|c| c.read_mode = ReadMode::Lease { max_clock_drift: Duration::from_millis(300) },
            ConfigError::LeaseDriftTooLarge {
                max_clock_drift: Duration::from_millis(300),
                election_min: Duration::from_millis(300),
            },
        );
        check(
            &|c| c.max_inflight_bytes = 1,
            ConfigError::InflightBytesBelowMessage { max_inflight_bytes: 1, max_message_bytes: 1 << 20 },
        );
    }

    #[test]
    fn each_bound_admits_the_value_at_its_edge() {
        let ok = Config::new(NodeId(1), ids(&[1, 2, 3]));
        let us = Duration::from_micros(1);
        let valid = |f: &dyn Fn(&mut Config)| {
            let mut c = ok.clone();
            f(&mut c);
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        };
        valid(&|c| c.election_timeout_max = c.election_timeout_min + us);
        valid(&|c| c.heartbeat_interval = c.election_timeout_min - us);
        valid(&|c| c.max_message_bytes = c.max_entry_bytes + ENTRY_OVERHEAD_BYTES + APPEND_OVERHEAD_BYTES);
        valid(&|c| c.max_inflight_bytes = c.max_message_bytes);
        valid(&|c| c.read_mode = ReadMode::Lease { max_clock_drift: c.election_timeout_min - us });
        valid(&|c| (c.snapshot_after_entries, c.snapshot_after_log_bytes) = (Some(1), Some(1)));
        valid(&|c| (c.snapshot_after_entries, c.snapshot_after_log_bytes) = (None, None));
        // A joining node lists no members, itself included.
        valid(&|c| c.members.clear());
        // One byte less than a maximal entry needs, and a zero byte threshold, are refused.
        let mut c = ok.clone();
        c.max_message_bytes = c.max_entry_bytes + ENTRY_OVERHEAD_BYTES + APPEND_OVERHEAD_BYTES - 1;
        assert!(matches!(c.validate(), Err(ConfigError::MessageTooSmallForEntry { .. })));
        let mut c = ok.clone();
        c.snapshot_after_log_bytes = Some(0);
        assert_eq!(c.validate(), Err(ConfigError::ZeroSnapshotThreshold));
    }

    #[test]
    fn single_node_cluster_is_valid() {
        assert_eq!(Config::new(NodeId(7), ids(&[7])).validate(), Ok(()));
    }
}
