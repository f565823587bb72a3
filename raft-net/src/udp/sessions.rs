//! The transport v2 state of a UDP node: one [`Link`] per peer, shared by
//! the peer's writer (which seals) and the socket's receiver (which opens
//! and answers handshakes), with the pacing of handshakes.

use crate::sync::Watch;
use raft_core::NodeId;
use raft_host::StdClock;
use raft_host::secure::{Entropy, FrameKind, Handled, HandshakeError, Link, OpenError, SealError, SecureConfig, peek};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A handshake this node started is sent again after this long without an
/// answer.
pub(crate) const HANDSHAKE_RETRY: Duration = Duration::from_millis(250);
/// Initiations answered per peer and [`ANSWER_PERIOD`]; more are ignored, so
/// that replayed initiations cannot make a node spend unbounded key
/// exchanges.
pub(crate) const ANSWERS_PER_PERIOD: u32 = 64;
/// See [`ANSWERS_PER_PERIOD`].
pub(crate) const ANSWER_PERIOD: Duration = Duration::from_secs(1);

/// One peer's link with its pacing state.
#[derive(Debug)]
struct PeerLink {
    link: Link,
    /// When this node last sent an initiation (first or retried).
    initiated: Option<raft_core::Instant>,
    /// Start of the current answer period and initiations answered in it.
    period: raft_core::Instant,
    answered: u32,
}

fn lock(link: &Mutex<PeerLink>) -> MutexGuard<'_, PeerLink> {
    link.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every peer's link; cheap to share.
#[derive(Debug)]
pub(crate) struct Sessions {
    clock: StdClock,
    config: SecureConfig,
    /// Peers join when a configuration names them (see [`Sessions::add_peer`]).
    links: Mutex<BTreeMap<NodeId, Arc<Mutex<PeerLink>>>>,
    /// Bumped whenever a session this node started is established, for
    /// writers waiting to send.
    established: Mutex<BTreeMap<NodeId, Arc<Watch<()>>>>,
}

/// What the receiver should do after a handshake packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Send these bytes to the peer (a response, or a first sealed frame
    /// confirming a session this node started).
    Send(Vec<u8>),
    /// Nothing to send.
    Nothing,
}

impl Sessions {
    pub(crate) fn new(config: &SecureConfig, peers: impl IntoIterator<Item = NodeId>, clock: StdClock) -> Sessions {
        let sessions = Sessions {
            clock,
            config: config.clone(),
            links: Mutex::new(BTreeMap::new()),
            established: Mutex::new(BTreeMap::new()),
        };
        for p in peers {
            sessions.add_peer(p);
        }
        sessions
    }

    /// Makes `peer` known (a member added at runtime); nothing if it is.
    pub(crate) fn add_peer(&self, peer: NodeId) {
        let now = self.clock.now();
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.entry(peer).or_insert_with(|| {
            let link = PeerLink { link: Link::new(&self.config, peer), initiated: None, period: now, answered: 0 };
            Arc::new(Mutex::new(link))
        });
        let mut established = self.established.lock().unwrap_or_else(|e| e.into_inner());
        established.entry(peer).or_insert_with(|| Arc::new(Watch::new(())));
    }

    fn link(&self, peer: NodeId) -> Option<Arc<Mutex<PeerLink>>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).cloned()
    }

    /// The watch bumped when a session with `peer` is established.
    pub(crate) fn established(&self, peer: NodeId) -> Option<Arc<Watch<()>>> {
        self.established.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).cloned()
    }

    /// Seals each payload for `peer` as a datagram. When a handshake is due
    /// (no session, or rekeying), its initiation is appended to `control`
    /// (at most once per [`HANDSHAKE_RETRY`]). Without a usable session the
    /// payloads are not sealed: `Err(SealError::NoSession)` or `Expired`.
    pub(crate) fn seal(
        &self,
        peer: NodeId,
        payloads: &[Vec<u8>],
        entropy: &mut dyn Entropy,
        control: &mut Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, SealError> {
        let now = self.clock.now();
        let Some(link) = self.link(peer) else { return Err(SealError::NoSession) };
        let mut p = lock(&link);
        p.maybe_initiate(now, entropy, control);
        let mut out = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let mut d = Vec::with_capacity(payload.len() + raft_host::secure::DATA_OVERHEAD);
            p.link.seal(payload, now, &mut d)?;
            out.push(d);
        }
        Ok(out)
    }

    /// After a frame of a session this node does not hold: if it holds no
    /// usable session with `peer` (it restarted, or its session expired),
    /// starts a handshake, unless one was sent recently. Returns the
    /// initiation to send. With a working session nothing happens, so
    /// replayed frames of old sessions cannot make the nodes rekey.
    pub(crate) fn restart_handshake(&self, peer: NodeId, entropy: &mut dyn Entropy) -> Option<Vec<u8>> {
        let now = self.clock.now();
        let link = self.link(peer)?;
        let mut p = lock(&link);
        if p.link.current().is_some_and(|s| !s.is_expired(now)) {
            return None;
        }
        if p.initiated.is_some_and(|at| now.saturating_since(at) < HANDSHAKE_RETRY.into()) {
            return None;
        }
        let mut out = Vec::new();
        p.link.initiate(now, entropy, &mut out).ok()?;
        p.initiated = Some(now);
        Some(out)
    }

    /// Handles an initiation or response from `peer` (the header's claimed
    /// sender, a configured peer).
    pub(crate) fn handshake(
        &self,
        peer: NodeId,
        packet: &[u8],
        entropy: &mut dyn Entropy,
    ) -> Result<Reply, HandshakeError> {
        let now = self.clock.now();
        let Some(link) = self.link(peer) else { return Err(HandshakeError::Rejected) };
        let mut p = lock(&link);
        if matches!(peek(packet), Ok(h) if h.kind == FrameKind::Initiation) {
            if now.saturating_since(p.period) >= ANSWER_PERIOD.into() {
                p.period = now;
                p.answered = 0;
            }
            if p.answered >= ANSWERS_PER_PERIOD {
                return Ok(Reply::Nothing);
            }
        }
        let mut out = Vec::new();
        match p.link.handle_handshake(packet, now, entropy, &mut out)? {
            Handled::Responded => {
                p.answered += 1;
                Ok(Reply::Send(out))
            }
            Handled::Established => {
                p.initiated = None;
                // An empty frame confirms the session at the peer at once.
                let mut confirm = Vec::new();
                let sealed = p.link.seal(&[], now, &mut confirm);
                drop(p);
                if let Some(w) = self.established(peer) {
                    w.update(|_| true);
                }
                Ok(if sealed.is_ok() { Reply::Send(confirm) } else { Reply::Nothing })
            }
        }
    }

    /// Opens a data frame from `peer`.
    pub(crate) fn open(&self, peer: NodeId, frame: &[u8]) -> Result<Vec<u8>, OpenError> {
        let now = self.clock.now();
        let Some(link) = self.link(peer) else { return Err(OpenError::UnknownSession) };
        let mut p = lock(&link);
        p.link.open(frame, now)
    }
}

impl PeerLink {
    fn maybe_initiate(&mut self, now: raft_core::Instant, entropy: &mut dyn Entropy, out: &mut Vec<u8>) {
        let due = match self.link.pending_since() {
            None => self.link.wants_handshake(now),
            Some(at) => now.saturating_since(at) >= HANDSHAKE_RETRY.into(),
        };
        if due && self.link.initiate(now, entropy, out).is_ok() {
            self.initiated = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_host::ClusterKey;
    use raft_host::secure::{Incarnation, KeyFile, SeededEntropy};

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);
    const C: NodeId = NodeId(3);

    fn node(keys: &KeyFile, me: NodeId) -> Sessions {
        let peers = [A, B, C].into_iter().filter(|&p| p != me);
        Sessions::new(&SecureConfig::new(keys, me), peers, StdClock::new())
    }

    fn keys() -> KeyFile {
        KeyFile::new(ClusterKey::from_bytes([4; 32]), Incarnation::from_bytes([5; 16]))
    }

    /// `from` seals one payload for `to`, setting up the session first.
    fn sealed(x: &Sessions, xid: NodeId, y: &Sessions, yid: NodeId, rng: &mut SeededEntropy, p: &[u8]) -> Vec<u8> {
        let mut init = Vec::new();
        if let Ok(mut d) = x.seal(yid, &[p.to_vec()], rng, &mut init) {
            return d.remove(0);
        }
        let Ok(Reply::Send(response)) = y.handshake(xid, &init, rng) else { panic!("no response") };
        let Ok(Reply::Send(confirm)) = x.handshake(yid, &response, rng) else { panic!("not established") };
        assert_eq!(y.open(xid, &confirm), Ok(Vec::new()), "the confirmation opens, empty");
        x.seal(yid, &[p.to_vec()], rng, &mut Vec::new()).unwrap().remove(0)
    }

    #[test]
    fn replayed_redirected_and_pre_restart_datagrams_do_not_open() {
        let keys = keys();
        let mut rng = SeededEntropy::new(3);
        let (a, b, c) = (node(&keys, A), node(&keys, B), node(&keys, C));
        let d = sealed(&a, A, &b, B, &mut rng, b"vote granted");
        assert_eq!(b.open(A, &d), Ok(b"vote granted".to_vec()));
        assert_eq!(b.open(A, &d), Err(OpenError::Replayed), "replayed");
        assert!(c.open(A, &d).is_err(), "redirected to another node");
        let mut renamed = d.clone();
        renamed[9..17].copy_from_slice(&C.0.to_le_bytes());
        assert!(c.open(A, &renamed).is_err(), "redirected with its receiver rewritten");
        assert!(a.open(B, &d).is_err(), "reflected to its sender");

        // B restarts: A's frames of the old session never open at the new
        // B, which offers a new handshake; then traffic flows again.
        let b = node(&keys, B);
        let old = a.seal(B, &[b"append".to_vec()], &mut rng, &mut Vec::new()).unwrap().remove(0);
        assert_eq!(b.open(A, &d), Err(OpenError::UnknownSession));
        assert_eq!(b.open(A, &old), Err(OpenError::UnknownSession));
        let init = b.restart_handshake(A, &mut rng).expect("a new handshake");
        assert_eq!(b.restart_handshake(A, &mut rng), None, "not again at once");
        let Ok(Reply::Send(response)) = a.handshake(B, &init, &mut rng) else { panic!("no response") };
        let Ok(Reply::Send(confirm)) = b.handshake(A, &response, &mut rng) else { panic!("not established") };
        assert_eq!(a.open(B, &confirm), Ok(Vec::new()));
        let fresh = a.seal(B, &[b"append".to_vec()], &mut rng, &mut Vec::new()).unwrap().remove(0);
        assert_eq!(b.open(A, &fresh), Ok(b"append".to_vec()));
        assert_eq!(b.open(A, &old), Err(OpenError::UnknownSession), "still refused");
        assert_eq!(a.restart_handshake(B, &mut rng), None, "a working session is not replaced");
    }

    #[test]
    fn handshakes_answered_per_peer_are_bounded() {
        let keys = keys();
        let mut rng = SeededEntropy::new(4);
        let (a, b) = (node(&keys, A), node(&keys, B));
        let mut init = Vec::new();
        assert!(a.seal(B, &[vec![1]], &mut rng, &mut init).is_err());
        let answers = (0..ANSWERS_PER_PERIOD + 10)
            .filter(|_| matches!(b.handshake(A, &init, &mut rng), Ok(Reply::Send(_))))
            .count();
        assert_eq!(answers, ANSWERS_PER_PERIOD as usize, "a replayed initiation is answered a bounded number of times");
    }
}
