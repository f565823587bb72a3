//! An optional transport layer for the simulator: messages travel as
//! frames, so that the frame protocol is exercised together with the core.
//!
//! With [`SimConfig::transport`](super::SimConfig::transport) set, each
//! message a node sends is encoded with the core's codec and sealed into a
//! frame; the receiver opens the frame for the sender the network claims
//! and hands the message to its node only if it opens. Frames that do not
//! open are dropped and counted ([`FrameStats`]). Two frame modes:
//!
//! * [`FrameMode::Secure`]: transport v2, a [`raft_host::secure::Link`] per
//!   ordered pair of nodes. Handshake packets travel through the simulated
//!   network like everything else (loss, delay, duplication, partitions).
//!   A message sent while no session is up waits in a small queue and goes
//!   out when the handshake completes. Each node lifetime draws its
//!   handshake randomness from a [`SeededEntropy`] of the run's seed, and
//!   the key file comes from the seed too, so a run replays exactly. A
//!   crash loses the node's sessions, as it would in a real process.
//! * [`FrameMode::UnboundV1`]: a **negative control, for tests only**: the
//!   old peer framing, `version | sender | payload | HMAC-SHA256 tag` under
//!   the cluster key (the format [`raft_host::ClusterKey::seal`] still
//!   writes for the client protocol). The tag binds the sender and the
//!   payload, but no receiver, no session and no counter: it stands for v2
//!   with the receiver check switched off. An adversary
//!   ([`super::adversary`]) that moves frames around gets them accepted.

use super::adversary::{Forgery, PacketKind};
use super::network::MsgKind;
use super::rng::mix64;
use raft_core::{Duration, Instant, NodeId};
use raft_host::ClusterKey;
use raft_host::secure::{
    Entropy, FrameKind, Handled, KeyFile, Link, MAX_PAYLOAD, OpenError, SecureConfig, SeededEntropy, peek,
};
use std::collections::VecDeque;

/// How frames are made.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FrameMode {
    /// Transport v2: Noise sessions bound to the incarnation, both node ids
    /// and fresh randomness, with replay windows.
    Secure,
    /// The old MAC over (sender, payload) only. Test-only negative control.
    UnboundV1,
}

/// Settings of the transport layer.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportConfig {
    /// The frame protocol.
    pub mode: FrameMode,
    /// The attacker on the network, if any.
    pub adversary: Option<super::adversary::AdversaryConfig>,
}

impl TransportConfig {
    /// Transport v2 and no adversary.
    pub fn secure() -> TransportConfig {
        TransportConfig { mode: FrameMode::Secure, adversary: None }
    }
}

/// Messages a node keeps per peer while no session is up; older ones are
/// dropped first (Raft resends what matters).
pub const MAX_QUEUED: usize = 64;

/// How long a node waits for a handshake response before it initiates
/// again (checked when it next sends to, or hears from, the peer).
pub const HANDSHAKE_RETRY: Duration = Duration::from_millis(250);

/// What the frame layer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Data frames sealed (session confirmations included).
    pub sealed: u64,
    /// Data frames that opened and carried a message to a node.
    pub delivered: u64,
    /// Handshake initiations sent (first tries and retries).
    pub initiations: u64,
    /// Handshakes that completed at their initiator.
    pub established: u64,
    /// Packets dropped because they did not open: every reason below.
    pub dropped: u64,
    /// ... a counter the replay window had seen, or one too old for it.
    pub dropped_replayed: u64,
    /// ... a session the receiver does not have (earlier, or another pair's).
    pub dropped_unknown_session: u64,
    /// ... anything else: wrong sender or receiver, bad tag, stale handshake.
    pub dropped_other: u64,
    /// Messages dropped from a full queue while no session was up.
    pub queue_overflow: u64,
    /// Adversary packets (replays, redirects, vote copies) that were dropped.
    pub forged_dropped: u64,
    /// Adversary packets that carried a message to a node. A replay of a
    /// packet the network lost, or one still in flight, may legitimately
    /// get through once.
    pub forged_delivered: u64,
    /// Adversary packets that reached a node other than the one they were
    /// sealed for and were taken as a message from the claimed sender. The
    /// receiver binding of v2 keeps this at 0.
    pub misdirected_delivered: u64,
}

/// A packet to put on the wire, towards the peer given with it.
#[derive(Clone, Debug)]
pub(super) struct Wire {
    pub(super) bytes: Vec<u8>,
    pub(super) kind: PacketKind,
}

/// The outcome of one packet at its receiver.
#[derive(Debug, Default)]
pub(super) struct Received {
    /// The encoded message to hand to the node.
    pub(super) message: Option<Vec<u8>>,
    /// Packets the receiver sends back to the claimed sender.
    pub(super) replies: Vec<Wire>,
    /// Why it was dropped, if it was.
    pub(super) dropped: Option<&'static str>,
}

struct Peer {
    link: Link,
    queue: VecDeque<(Vec<u8>, MsgKind)>,
}

/// One node lifetime's transport state.
struct NodeState {
    config: SecureConfig,
    entropy: SeededEntropy,
    /// Per peer index, created on first use.
    peers: Vec<Option<Peer>>,
}

/// The state for peer `to` in `peers`, created on first use.
fn peer_of<'a>(peers: &'a mut Vec<Option<Peer>>, config: &SecureConfig, to: usize) -> &'a mut Peer {
    if peers.len() <= to {
        peers.resize_with(to + 1, || None);
    }
    peers[to].get_or_insert_with(|| Peer { link: Link::new(config, NodeId(to as u64 + 1)), queue: VecDeque::new() })
}

/// The transport layer of every node of a run.
pub(super) struct Transport {
    mode: FrameMode,
    keys: KeyFile,
    seed: u64,
    /// Per node index; `None` while the node is down.
    nodes: Vec<Option<NodeState>>,
    stats: FrameStats,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("mode", &self.mode).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Transport {
    /// The layer for a run with `seed`; the key file is drawn from the seed.
    pub(super) fn new(mode: FrameMode, seed: u64) -> Transport {
        let mut entropy = SeededEntropy::new(mix64(seed ^ 0x6b65_7973)); // "keys"
        let keys = match KeyFile::generate(&mut entropy) {
            Ok(k) => k,
            Err(e) => panic!("a seeded key file cannot fail: {e}"),
        };
        Transport { mode, keys, seed, nodes: Vec::new(), stats: FrameStats::default() }
    }

    pub(super) fn stats(&self) -> &FrameStats {
        &self.stats
    }

    /// Node `i` starts its lifetime `lifetime` with no session.
    pub(super) fn start(&mut self, i: usize, lifetime: u32) {
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, || None);
        }
        let me = NodeId(i as u64 + 1);
        let entropy = SeededEntropy::new(mix64(self.seed ^ mix64(0xe27 ^ (me.0 << 32 | u64::from(lifetime)))));
        self.nodes[i] = Some(NodeState { config: SecureConfig::new(&self.keys, me), entropy, peers: Vec::new() });
    }

    /// Node `i` crashed: its sessions and queues are gone.
    pub(super) fn crash(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            *n = None;
        }
    }

    fn v1_key(&self) -> &ClusterKey {
        &self.keys.key
    }

    /// Node `i` sends the encoded message `msg` to node `to` at its local
    /// time `now`: the packets to put on the wire towards `to`.
    pub(super) fn send(&mut self, i: usize, to: usize, msg: Vec<u8>, kind: MsgKind, now: Instant) -> Vec<Wire> {
        if self.mode == FrameMode::UnboundV1 {
            self.stats.sealed += 1;
            let bytes = self.v1_key().seal(i as u64 + 1, &msg);
            return vec![Wire { bytes, kind: PacketKind::Message(kind) }];
        }
        assert!(msg.len() <= MAX_PAYLOAD, "a {} byte message exceeds the frame payload limit", msg.len());
        let Some(node) = self.nodes.get_mut(i).and_then(Option::as_mut) else { return Vec::new() };
        let stats = &mut self.stats;
        let entropy = &mut node.entropy;
        let peer = peer_of(&mut node.peers, &node.config, to);
        let mut out = Vec::new();
        let mut frame = Vec::new();
        if peer.queue.is_empty() && peer.link.seal(&msg, now, &mut frame).is_ok() {
            stats.sealed += 1;
            out.push(Wire { bytes: frame, kind: PacketKind::Message(kind) });
        } else {
            if peer.queue.len() == MAX_QUEUED {
                peer.queue.pop_front();
                stats.queue_overflow += 1;
            }
            peer.queue.push_back((msg, kind));
        }
        maybe_initiate(peer, now, entropy, stats, &mut out);
        out
    }

    /// Node `i` receives `packet`, claimed to come from node `from`, at its
    /// local time `now`. `forged` says whether (and how) the adversary
    /// injected it, for the counters only: the receiver cannot know.
    pub(super) fn receive(
        &mut self,
        i: usize,
        from: usize,
        packet: &[u8],
        now: Instant,
        forged: Option<Forgery>,
    ) -> Received {
        let mut r = match self.mode {
            FrameMode::UnboundV1 => self.receive_v1(from, packet),
            FrameMode::Secure => self.receive_secure(i, from, packet, now),
        };
        if let Some(why) = r.dropped {
            self.stats.dropped += 1;
            match why {
                "replayed" => self.stats.dropped_replayed += 1,
                "unknown session" => self.stats.dropped_unknown_session += 1,
                _ => self.stats.dropped_other += 1,
            }
        }
        if let Some(f) = forged {
            match (&r.message, r.dropped) {
                (Some(_), _) => {
                    self.stats.forged_delivered += 1;
                    if f.misdirected() {
                        self.stats.misdirected_delivered += 1;
                    }
                }
                (None, Some(_)) => self.stats.forged_dropped += 1,
                (None, None) => {} // a handshake answered, or a confirmation
            }
        }
        if r.message.is_some() {
            self.stats.delivered += 1;
        }
        r.replies.retain(|w| !w.bytes.is_empty());
        r
    }

    fn receive_v1(&mut self, from: usize, packet: &[u8]) -> Received {
        match self.v1_key().open(packet) {
            Ok((sender, payload)) if sender == from as u64 + 1 => {
                Received { message: Some(payload.to_vec()), ..Received::default() }
            }
            Ok(_) => Received { dropped: Some("sender mismatch"), ..Received::default() },
            Err(_) => Received { dropped: Some("bad tag"), ..Received::default() },
        }
    }

    fn receive_secure(&mut self, i: usize, from: usize, packet: &[u8], now: Instant) -> Received {
        let mut r = Received::default();
        let Some(node) = self.nodes.get_mut(i).and_then(Option::as_mut) else {
            r.dropped = Some("receiver down");
            return r;
        };
        let stats = &mut self.stats;
        let entropy = &mut node.entropy;
        let peer = peer_of(&mut node.peers, &node.config, from);
        let kind = match peek(packet) {
            Ok(h) => h.kind,
            Err(_) => {
                r.dropped = Some("malformed");
                return r;
            }
        };
        match kind {
            FrameKind::Initiation | FrameKind::Response => {
                let mut out = Vec::new();
                match peer.link.handle_handshake(packet, now, entropy, &mut out) {
                    Ok(Handled::Responded) => r.replies.push(Wire { bytes: out, kind: PacketKind::Handshake }),
                    Ok(Handled::Established) => {
                        stats.established += 1;
                        if !flush(peer, now, stats, &mut r.replies) {
                            // An empty frame confirms the session at the peer.
                            let mut confirm = Vec::new();
                            if peer.link.seal(&[], now, &mut confirm).is_ok() {
                                stats.sealed += 1;
                                r.replies.push(Wire { bytes: confirm, kind: PacketKind::Empty });
                            }
                        }
                    }
                    Err(_) => r.dropped = Some("bad handshake"),
                }
            }
            FrameKind::Data => match peer.link.open(packet, now) {
                Ok(payload) => {
                    flush(peer, now, stats, &mut r.replies);
                    if !payload.is_empty() {
                        r.message = Some(payload);
                    }
                }
                Err(OpenError::Replayed | OpenError::TooOld) => r.dropped = Some("replayed"),
                Err(OpenError::UnknownSession | OpenError::Expired) => {
                    r.dropped = Some("unknown session");
                    // The peer restarted, or this node did: offer a new session.
                    maybe_initiate(peer, now, entropy, stats, &mut r.replies);
                }
                Err(_) => r.dropped = Some("bad frame"),
            },
        }
        r
    }

    /// Node `i`'s peer state for `to` (tests of this module).
    #[cfg(test)]
    fn peer(&mut self, i: usize, to: usize) -> &mut Peer {
        let node = self.nodes[i].as_mut().unwrap();
        peer_of(&mut node.peers, &node.config, to)
    }
}

/// Starts a handshake if none is in progress and no session is usable, or
/// if the one in progress is older than [`HANDSHAKE_RETRY`].
fn maybe_initiate(
    peer: &mut Peer,
    now: Instant,
    entropy: &mut dyn Entropy,
    stats: &mut FrameStats,
    out: &mut Vec<Wire>,
) {
    let due = match peer.link.pending_since() {
        None => peer.link.wants_handshake(now),
        Some(at) => now.saturating_since(at) >= HANDSHAKE_RETRY,
    };
    let mut bytes = Vec::new();
    if due && peer.link.initiate(now, entropy, &mut bytes).is_ok() {
        stats.initiations += 1;
        out.push(Wire { bytes, kind: PacketKind::Handshake });
    }
}

/// Seals the queued messages, if a session is up. Returns whether any went.
fn flush(peer: &mut Peer, now: Instant, stats: &mut FrameStats, out: &mut Vec<Wire>) -> bool {
    let mut any = false;
    while let Some((msg, kind)) = peer.queue.front() {
        let mut frame = Vec::new();
        if peer.link.seal(msg, now, &mut frame).is_err() {
            break;
        }
        stats.sealed += 1;
        out.push(Wire { bytes: frame, kind: PacketKind::Message(*kind) });
        peer.queue.pop_front();
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers every packet between nodes 0 and 1 until none is left;
    /// returns the messages each received.
    fn exchange(t: &mut Transport, mut wire: Vec<(usize, usize, Wire)>) -> Vec<(usize, Vec<u8>)> {
        let mut got = Vec::new();
        while let Some((from, to, w)) = wire.pop() {
            let r = t.receive(to, from, &w.bytes, Instant::ZERO, None);
            assert!(r.dropped.is_none(), "{:?}", r.dropped);
            got.extend(r.message.map(|m| (to, m)));
            wire.extend(r.replies.into_iter().map(|w| (to, from, w)));
        }
        got
    }

    #[test]
    fn a_message_waits_for_the_handshake_and_copies_do_not_open() {
        let mut t = Transport::new(FrameMode::Secure, 5);
        for i in 0..3 {
            t.start(i, 0);
        }
        let kind = MsgKind::RequestVote;
        let out = t.send(0, 1, b"vote for me".to_vec(), kind, Instant::ZERO);
        assert_eq!(out.len(), 1, "just the initiation");
        let got = exchange(&mut t, out.into_iter().map(|w| (0, 1, w)).collect());
        assert_eq!(got, vec![(1, b"vote for me".to_vec())]);
        let frame = t.send(0, 1, b"again".to_vec(), kind, Instant::ZERO).remove(0);
        assert_eq!(t.receive(1, 0, &frame.bytes, Instant::ZERO, None).message.as_deref(), Some(&b"again"[..]));
        let replay = t.receive(1, 0, &frame.bytes, Instant::ZERO, Some(Forgery::Replay));
        assert_eq!((replay.message, replay.dropped), (None, Some("replayed")));
        let redirect = t.receive(2, 0, &frame.bytes, Instant::ZERO, Some(Forgery::Redirect));
        assert_eq!(redirect.message, None);
        assert_eq!(t.stats().forged_dropped, 2);
        assert_eq!(t.stats().misdirected_delivered, 0);
        assert!(t.peer(1, 0).link.current().is_some());
    }

    #[test]
    fn the_unbound_framing_takes_a_redirected_frame() {
        let mut t = Transport::new(FrameMode::UnboundV1, 5);
        let frame = t.send(0, 1, b"granted".to_vec(), MsgKind::RequestVoteResponse, Instant::ZERO).remove(0);
        let r = t.receive(2, 0, &frame.bytes, Instant::ZERO, Some(Forgery::VoteCopy));
        assert_eq!(r.message.as_deref(), Some(&b"granted"[..]), "no receiver in the tag");
        assert!(t.receive(2, 1, &frame.bytes, Instant::ZERO, None).message.is_none(), "the sender is bound");
        assert_eq!(t.stats().misdirected_delivered, 1);
    }

    #[test]
    fn a_restarted_node_gets_new_sessions() {
        let mut t = Transport::new(FrameMode::Secure, 9);
        t.start(0, 0);
        t.start(1, 0);
        let out = t.send(0, 1, b"one".to_vec(), MsgKind::AppendEntries, Instant::ZERO);
        exchange(&mut t, out.into_iter().map(|w| (0, 1, w)).collect());
        let old = t.send(0, 1, b"old".to_vec(), MsgKind::AppendEntries, Instant::ZERO).remove(0);
        t.crash(1);
        t.start(1, 1);
        let r = t.receive(1, 0, &old.bytes, Instant::ZERO, None);
        assert_eq!(r.dropped, Some("unknown session"));
        assert_eq!(r.replies.len(), 1, "the restarted node offers a session");
        let got = exchange(&mut t, r.replies.into_iter().map(|w| (1, 0, w)).collect());
        assert!(got.is_empty());
        let new = t.send(0, 1, b"new".to_vec(), MsgKind::AppendEntries, Instant::ZERO).remove(0);
        assert_eq!(t.receive(1, 0, &new.bytes, Instant::ZERO, None).message.as_deref(), Some(&b"new"[..]));
    }
}
