//! An attacker on the simulated network, for runs with a transport layer
//! ([`super::transport`]): it sees every packet a node puts on the wire,
//! records it, and injects packets of its own, always copies of recorded
//! ones that claim their original sender:
//!
//! * **replays**: an old recorded packet is sent again, later, to its
//!   original receiver (heartbeats, vote requests and handshake
//!   initiations are picked more often);
//! * **redirects**: a packet is copied to a node other than its receiver;
//! * **vote copies**: every vote response (pre-vote ones included) is
//!   copied to every other node, so that in an election with two
//!   candidates each sees the grants meant for the other.
//!
//! Its packets are never lost, but a partition or a disconnection between
//! the claimed sender and the receiver stops them on arrival, as it stops
//! real packets (the simulator checks connectivity at delivery).
//!
//! It holds no key: it cannot forge a packet, only move real ones. It is
//! told each packet's message kind, which an attacker learns from sizes and
//! timing (traffic analysis is out of the transport's scope). Its choices
//! come from a stream of the run's seed, so a run replays exactly.

use super::network::MsgKind;
use super::rng::SimRng;
use raft_core::{Duration, Instant};

/// What a packet carries, as far as the adversary can tell.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// A handshake initiation or response.
    Handshake,
    /// A data frame carrying no message (a session confirmation).
    Empty,
    /// A data frame carrying a message of this kind.
    Message(MsgKind),
}

/// How an injected packet came about.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// An old packet sent again to its original receiver.
    Replay,
    /// A copy sent to another node than the original receiver.
    Redirect,
    /// A vote response copied to another node.
    VoteCopy,
}

impl Forgery {
    /// True if the copy goes to a node the sender did not address.
    pub fn misdirected(self) -> bool {
        !matches!(self, Forgery::Replay)
    }
}

/// The adversary's rates and bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct AdversaryConfig {
    /// Per packet seen, the chance to replay one recorded packet.
    pub replay_rate: f64,
    /// Per packet seen, the chance to copy it to one other node.
    pub redirect_rate: f64,
    /// Copy every vote response to every node but its sender and receiver.
    pub copy_vote_responses: bool,
    /// Packets kept for replay; when full, a random one is overwritten, so
    /// that very old packets stay available.
    pub max_recorded: usize,
    /// Injected copies arrive after a delay drawn from `0..=max_delay`.
    pub max_delay: Duration,
}

impl Default for AdversaryConfig {
    fn default() -> AdversaryConfig {
        AdversaryConfig {
            replay_rate: 0.05,
            redirect_rate: 0.05,
            copy_vote_responses: true,
            max_recorded: 2048,
            max_delay: Duration::from_millis(30),
        }
    }
}

/// What the adversary did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdversaryStats {
    /// Packets seen (and recorded).
    pub seen: u64,
    /// Old packets replayed to their original receiver.
    pub replayed: u64,
    /// Packets copied to a node other than their receiver.
    pub redirected: u64,
    /// Vote responses copied to other nodes.
    pub vote_copies: u64,
}

impl AdversaryStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &AdversaryStats) {
        self.seen += other.seen;
        self.replayed += other.replayed;
        self.redirected += other.redirected;
        self.vote_copies += other.vote_copies;
    }
}

/// A packet the adversary sends, claiming `from` as its sender.
#[derive(Clone, Debug)]
pub struct Injection {
    /// The claimed sender (the packet's original sender).
    pub from: usize,
    /// Where it goes.
    pub to: usize,
    /// The packet, byte for byte as recorded.
    pub bytes: Vec<u8>,
    /// What it carries.
    pub kind: PacketKind,
    /// How it came about.
    pub forgery: Forgery,
    /// Its delay from now.
    pub delay: Duration,
}

#[derive(Clone, Debug)]
struct Recorded {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
    kind: PacketKind,
}

/// The attacker. Nodes are addressed by index `0..n`.
#[derive(Debug)]
pub struct Adversary {
    config: AdversaryConfig,
    rng: SimRng,
    recorded: Vec<Recorded>,
    stats: AdversaryStats,
}

impl Adversary {
    /// An adversary that has seen nothing yet.
    pub fn new(config: AdversaryConfig, rng: SimRng) -> Adversary {
        Adversary { config, rng, recorded: Vec::new(), stats: AdversaryStats::default() }
    }

    /// What it did so far.
    pub fn stats(&self) -> &AdversaryStats {
        &self.stats
    }

    /// The settings, to change mid-run.
    pub fn config_mut(&mut self) -> &mut AdversaryConfig {
        &mut self.config
    }

    /// Sees a packet from `from` to `to` as it enters a network of `nodes`
    /// nodes (before any loss), records it, and returns the packets to inject.
    pub fn observe(
        &mut self,
        _now: Instant,
        from: usize,
        to: usize,
        bytes: &[u8],
        kind: PacketKind,
        nodes: usize,
    ) -> Vec<Injection> {
        self.stats.seen += 1;
        let mut out = Vec::new();
        let others = |rng: &mut SimRng| -> Option<usize> {
            if nodes < 3 {
                return None;
            }
            let k = rng.below(nodes as u64 - 2) as usize;
            // The k-th node that is neither `from` nor `to`.
            (0..nodes).filter(|&x| x != from && x != to).nth(k)
        };
        if self.config.copy_vote_responses && kind == PacketKind::Message(MsgKind::RequestVoteResponse) {
            for third in (0..nodes).filter(|&x| x != from && x != to) {
                let delay = self.delay();
                out.push(Injection { from, to: third, bytes: bytes.to_vec(), kind, forgery: Forgery::VoteCopy, delay });
                self.stats.vote_copies += 1;
            }
        }
        if self.rng.chance(self.config.redirect_rate)
            && let Some(third) = others(&mut self.rng)
        {
            let delay = self.delay();
            out.push(Injection { from, to: third, bytes: bytes.to_vec(), kind, forgery: Forgery::Redirect, delay });
            self.stats.redirected += 1;
        }
        if self.rng.chance(self.config.replay_rate)
            && let Some(k) = self.pick_old()
        {
            let delay = self.delay();
            let old = &self.recorded[k];
            out.push(Injection {
                from: old.from,
                to: old.to,
                bytes: old.bytes.clone(),
                kind: old.kind,
                forgery: Forgery::Replay,
                delay,
            });
            self.stats.replayed += 1;
        }
        self.record(Recorded { from, to, bytes: bytes.to_vec(), kind });
        out
    }

    fn delay(&mut self) -> Duration {
        Duration::from_micros(self.rng.between(0, self.config.max_delay.as_micros()))
    }

    /// A recorded packet; half the time one that keeps followers quiet or
    /// disturbs them (a heartbeat, a vote request, a handshake), if any.
    fn pick_old(&mut self) -> Option<usize> {
        if self.recorded.is_empty() {
            return None;
        }
        let len = self.recorded.len() as u64;
        if self.rng.chance(0.5) {
            // A few tries at a favourite kind, then anything.
            for _ in 0..8 {
                let k = self.rng.below(len) as usize;
                if matches!(
                    self.recorded[k].kind,
                    PacketKind::Handshake
                        | PacketKind::Message(MsgKind::AppendEntries)
                        | PacketKind::Message(MsgKind::RequestVote)
                ) {
                    return Some(k);
                }
            }
        }
        Some(self.rng.below(len) as usize)
    }

    fn record(&mut self, r: Recorded) {
        if self.config.max_recorded == 0 {
            return;
        }
        if self.recorded.len() < self.config.max_recorded {
            self.recorded.push(r);
        } else {
            let k = self.rng.below(self.recorded.len() as u64) as usize;
            self.recorded[k] = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_responses_reach_every_other_node_and_copies_claim_the_sender() {
        let config = AdversaryConfig { replay_rate: 0.0, redirect_rate: 0.0, ..AdversaryConfig::default() };
        let mut a = Adversary::new(config, SimRng::new(1));
        let kind = PacketKind::Message(MsgKind::RequestVoteResponse);
        let out = a.observe(Instant::ZERO, 1, 2, b"grant", kind, 5);
        let mut to: Vec<usize> = out.iter().map(|i| i.to).collect();
        to.sort();
        assert_eq!(to, vec![0, 3, 4]);
        assert!(out.iter().all(|i| i.from == 1 && i.bytes == b"grant" && i.forgery == Forgery::VoteCopy));
        assert!(a.observe(Instant::ZERO, 1, 2, b"ae", PacketKind::Message(MsgKind::AppendEntries), 5).is_empty());
        assert_eq!(a.stats().vote_copies, 3);
    }

    #[test]
    fn replays_come_from_the_record_and_redirects_avoid_both_ends() {
        let config = AdversaryConfig { replay_rate: 1.0, redirect_rate: 1.0, ..AdversaryConfig::default() };
        let mut a = Adversary::new(config, SimRng::new(7));
        let kind = PacketKind::Message(MsgKind::AppendEntries);
        assert!(a.observe(Instant::ZERO, 0, 1, b"first", kind, 2).is_empty(), "nothing to replay, no third node");
        for k in 0..50u8 {
            let out = a.observe(Instant::ZERO, 0, 1, &[k], kind, 4);
            let redirect = out.iter().find(|i| i.forgery == Forgery::Redirect).unwrap();
            assert!(redirect.to >= 2 && redirect.from == 0 && redirect.bytes == [k]);
            let replay = out.iter().find(|i| i.forgery == Forgery::Replay).unwrap();
            assert!((replay.from, replay.to) == (0, 1) && replay.bytes != [k], "an older packet");
        }
        assert_eq!((a.stats().replayed, a.stats().redirected), (50, 50));
    }
}
