//! The simulated network: who can talk to whom, and what happens to each message.
//!
//! The network never holds messages itself; it decides, per message, whether
//! it is dropped and after which delays its copies arrive. The cluster keeps
//! the copies in its event queue and asks [`Network::can_talk`] again at
//! delivery, so a message in flight towards (or from) a node that gets
//! disconnected is dropped on arrival (MIT labrpc semantics).

use super::rng::SimRng;
use raft_core::{Body, Duration};

/// Fault settings applied to every message. Changeable at run time through
/// [`super::Cluster::net_config_mut`].
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Smallest one-way latency (inclusive).
    pub latency_min: Duration,
    /// Largest one-way latency (inclusive).
    pub latency_max: Duration,
    /// Probability that a message is lost.
    pub drop_rate: f64,
    /// Probability that a delivered message arrives twice (the copy with its own latency).
    pub duplicate_rate: f64,
    /// MIT "long reordering": two thirds of responses (vote and append
    /// answers) are held back an extra 200..2200 ms, skewed towards short delays.
    pub long_reordering: bool,
}

impl Default for NetConfig {
    /// Reliable, 1-5 ms latency.
    fn default() -> NetConfig {
        NetConfig::reliable()
    }
}

impl NetConfig {
    /// No loss, no duplication, 1-5 ms latency.
    pub fn reliable() -> NetConfig {
        NetConfig {
            latency_min: Duration::from_millis(1),
            latency_max: Duration::from_millis(5),
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            long_reordering: false,
        }
    }

    /// MIT's unreliable network: 0-26 ms latency, 10% loss.
    pub fn unreliable() -> NetConfig {
        NetConfig {
            latency_min: Duration::ZERO,
            latency_max: Duration::from_millis(26),
            drop_rate: 0.1,
            ..NetConfig::reliable()
        }
    }
}

/// Message kinds counted separately in [`MsgStats::by_kind`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MsgKind {
    /// `RequestVote`.
    RequestVote,
    /// `RequestVoteResponse`.
    RequestVoteResponse,
    /// `AppendEntries` (heartbeats included).
    AppendEntries,
    /// `AppendEntriesResponse`.
    AppendEntriesResponse,
    /// `InstallSnapshot`.
    InstallSnapshot,
    /// `InstallSnapshotResponse`.
    InstallSnapshotResponse,
    /// Anything newer.
    Other,
}

impl MsgKind {
    /// Every kind, in [`MsgKind::index`] order.
    pub const ALL: [MsgKind; 7] = [
        MsgKind::RequestVote,
        MsgKind::RequestVoteResponse,
        MsgKind::AppendEntries,
        MsgKind::AppendEntriesResponse,
        MsgKind::InstallSnapshot,
        MsgKind::InstallSnapshotResponse,
        MsgKind::Other,
    ];

    /// The kind of `body`.
    pub fn of(body: &Body) -> MsgKind {
        match body {
            Body::RequestVote(..) => MsgKind::RequestVote,
            Body::RequestVoteResponse(..) => MsgKind::RequestVoteResponse,
            Body::AppendEntries(..) => MsgKind::AppendEntries,
            Body::AppendEntriesResponse(_) => MsgKind::AppendEntriesResponse,
            Body::InstallSnapshot(..) => MsgKind::InstallSnapshot,
            Body::InstallSnapshotResponse(..) => MsgKind::InstallSnapshotResponse,
            _ => MsgKind::Other,
        }
    }

    /// Position in [`MsgKind::ALL`] and in [`MsgStats::by_kind`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// True for answers (the messages MIT's long reordering delays).
    pub fn is_response(self) -> bool {
        matches!(self, MsgKind::RequestVoteResponse | MsgKind::AppendEntriesResponse | MsgKind::InstallSnapshotResponse)
    }
}

/// Message counters of one sender.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MsgStats {
    /// Messages the node emitted (whatever became of them).
    pub sent: u64,
    /// Encoded bytes of those messages.
    pub bytes_sent: u64,
    /// `sent` split by [`MsgKind::index`].
    pub by_kind: [u64; 7],
    /// Messages from this node that reached a live receiver (duplicates count twice).
    pub delivered: u64,
    /// Messages from this node that were dropped (loss, disconnection, receiver down).
    pub dropped: u64,
    /// Extra copies the network made of this node's messages.
    pub duplicated: u64,
}

impl MsgStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &MsgStats) {
        self.sent += other.sent;
        self.bytes_sent += other.bytes_sent;
        for (a, b) in self.by_kind.iter_mut().zip(other.by_kind) {
            *a += b;
        }
        self.delivered += other.delivered;
        self.dropped += other.dropped;
        self.duplicated += other.duplicated;
    }

    /// Messages of `kind` sent.
    pub fn of_kind(&self, kind: MsgKind) -> u64 {
        self.by_kind[kind.index()]
    }
}

/// Connectivity and fault decisions for `n` nodes, addressed by index `0..n`.
#[derive(Debug)]
pub struct Network {
    config: NetConfig,
    rng: SimRng,
    /// MIT `connect`/`disconnect` flag per node.
    connected: Vec<bool>,
    /// Partition group per node; nodes talk only within a group.
    group: Vec<u32>,
    /// Directed links cut by `cut_link`, as `from * n + to`.
    cut: Vec<bool>,
    stats: Vec<MsgStats>,
}

impl Network {
    /// A fully connected network of `n` nodes.
    pub fn new(n: usize, config: NetConfig, rng: SimRng) -> Network {
        Network {
            config,
            rng,
            connected: vec![true; n],
            group: vec![0; n],
            cut: vec![false; n * n],
            stats: vec![MsgStats::default(); n],
        }
    }

    /// The fault settings.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The fault settings, to change.
    pub fn config_mut(&mut self) -> &mut NetConfig {
        &mut self.config
    }

    /// True if a message from `from` to `to` gets through right now.
    pub fn can_talk(&self, from: usize, to: usize) -> bool {
        let n = self.connected.len();
        self.connected[from] && self.connected[to] && self.group[from] == self.group[to] && !self.cut[from * n + to]
    }

    /// MIT connected flag of node `i`.
    pub fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    /// Sets node `i`'s connected flag.
    pub fn set_connected(&mut self, i: usize, up: bool) {
        self.connected[i] = up;
    }

    /// Splits the nodes into `groups` (indexes); unlisted nodes are isolated alone.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        let n = self.group.len();
        for (i, g) in self.group.iter_mut().enumerate() {
            *g = (groups.len() + i) as u32; // alone unless listed
        }
        for (gi, members) in groups.iter().enumerate() {
            for &m in members {
                if m < n {
                    self.group[m] = gi as u32;
                }
            }
        }
    }

    /// Adds node `n` (the next index): connected, with no cut link, and in
    /// group 0 (with everyone when no partition is in force). Returns its index.
    pub fn add_node(&mut self) -> usize {
        let n = self.connected.len();
        let mut cut = vec![false; (n + 1) * (n + 1)];
        for from in 0..n {
            for to in 0..n {
                cut[from * (n + 1) + to] = self.cut[from * n + to];
            }
        }
        self.cut = cut;
        self.connected.push(true);
        self.group.push(0);
        self.stats.push(MsgStats::default());
        n
    }

    /// Cuts (or restores) the directed link `from -> to`.
    pub fn set_link(&mut self, from: usize, to: usize, up: bool) {
        let n = self.connected.len();
        self.cut[from * n + to] = !up;
    }

    /// Full connectivity: no partition, no cut link, every node connected.
    pub fn heal(&mut self) {
        self.connected.iter_mut().for_each(|c| *c = true);
        self.group.iter_mut().for_each(|g| *g = 0);
        self.cut.iter_mut().for_each(|c| *c = false);
    }

    /// Counts a message emitted by `from` and decides its fate: the returned
    /// delays (empty: lost; two: duplicated) say when each copy arrives.
    /// Connectivity is not checked here; see [`Network::can_talk`].
    pub fn route(&mut self, from: usize, kind: MsgKind, bytes: usize) -> Vec<Duration> {
        let st = &mut self.stats[from];
        st.sent += 1;
        st.bytes_sent += bytes as u64;
        st.by_kind[kind.index()] += 1;
        self.fate(kind)
    }

    /// Decides the fate of a packet without counting it (a transport
    /// layer's handshakes, which carry no message): the delays of its
    /// copies, empty if it is lost.
    pub fn fate(&mut self, kind: MsgKind) -> Vec<Duration> {
        if self.rng.chance(self.config.drop_rate) {
            return Vec::new();
        }
        let mut out = vec![self.delay(kind)];
        if self.rng.chance(self.config.duplicate_rate) {
            out.push(self.delay(kind));
        }
        out
    }

    fn delay(&mut self, kind: MsgKind) -> Duration {
        let c = &self.config;
        let mut us = self.rng.between(c.latency_min.as_micros(), c.latency_max.as_micros());
        if c.long_reordering && kind.is_response() && self.rng.below(900) < 600 {
            let spread = self.rng.below(2000) + 1;
            us += (200 + self.rng.below(spread)) * 1000;
        }
        Duration::from_micros(us)
    }

    /// Counts a delivery of a message from `from`.
    pub fn count_delivered(&mut self, from: usize) {
        self.stats[from].delivered += 1;
    }

    /// Counts a drop of a message from `from`.
    pub fn count_dropped(&mut self, from: usize) {
        self.stats[from].dropped += 1;
    }

    /// Counts an extra copy of a message from `from`.
    pub fn count_duplicated(&mut self, from: usize) {
        self.stats[from].duplicated += 1;
    }

    /// Per-sender counters.
    pub fn stats(&self) -> &[MsgStats] {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectivity_rules() {
        let mut n = Network::new(4, NetConfig::reliable(), SimRng::new(1));
        assert!(n.can_talk(0, 1));
        n.set_connected(1, false);
        assert!(!n.can_talk(0, 1) && !n.can_talk(1, 0));
        n.partition(&[vec![0, 2]]);
        assert!(n.can_talk(0, 2) && !n.can_talk(0, 3) && !n.can_talk(2, 3));
        n.heal();
        n.set_link(0, 1, false);
        assert!(!n.can_talk(0, 1) && n.can_talk(1, 0));
        n.heal();
        assert!(n.can_talk(0, 1));
    }

    #[test]
    fn an_added_node_keeps_the_cut_links_of_the_others() {
        let mut n = Network::new(3, NetConfig::reliable(), SimRng::new(1));
        n.set_link(2, 1, false);
        assert_eq!(n.add_node(), 3);
        assert!(!n.can_talk(2, 1) && n.can_talk(1, 2), "cuts survive the resize");
        assert!(n.can_talk(3, 0) && n.can_talk(0, 3) && n.can_talk(2, 3));
        n.set_link(3, 0, false);
        assert!(!n.can_talk(3, 0) && n.can_talk(0, 3));
        assert_eq!(n.stats().len(), 4);
    }

    #[test]
    fn faults_follow_config() {
        let mut n = Network::new(2, NetConfig { drop_rate: 1.0, ..NetConfig::reliable() }, SimRng::new(1));
        assert!(n.route(0, MsgKind::RequestVote, 10).is_empty());
        *n.config_mut() = NetConfig { duplicate_rate: 1.0, ..NetConfig::reliable() };
        let d = n.route(0, MsgKind::AppendEntries, 10);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| (1000..=5000).contains(&d.as_micros())));
        assert_eq!(n.stats()[0].sent, 2);
        assert_eq!(n.stats()[0].bytes_sent, 20);
        assert_eq!(n.stats()[0].of_kind(MsgKind::AppendEntries), 1);
    }
}
