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

/// Every peer's link; cheap to share.
#[derive(Debug)]
pub(crate) struct Sessions {
    clock: StdClock,
    links: BTreeMap<NodeId, Mutex<PeerLink>>,
    /// Bumped whenever a session this node started is established, for
    /// writers waiting to send.
    established: BTreeMap<NodeId, Arc<Watch<()>>>,
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
        let now = clock.now();
        let mut links = BTreeMap::new();
        let mut established = BTreeMap::new();
        for p in peers {
            let link = PeerLink { link: Link::new(config, p), initiated: None, period: now, answered: 0 };
            links.insert(p, Mutex::new(link));
            established.insert(p, Arc::new(Watch::new(())));
        }
        Sessions { clock, links, established }
    }

    fn lock(&self, peer: NodeId) -> Option<MutexGuard<'_, PeerLink>> {
        self.links.get(&peer).map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The watch bumped when a session with `peer` is established.
    pub(crate) fn established(&self, peer: NodeId) -> Option<Arc<Watch<()>>> {
        self.established.get(&peer).cloned()
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
        let Some(mut p) = self.lock(peer) else { return Err(SealError::NoSession) };
        p.maybe_initiate(now, entropy, control);
        let mut out = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let mut d = Vec::with_capacity(payload.len() + raft_host::secure::DATA_OVERHEAD);
            p.link.seal(payload, now, &mut d)?;
            out.push(d);
        }
        Ok(out)
    }

    /// Starts (or retries) a handshake with `peer` if none is in progress
    /// recently: after a frame of an unknown session, the peer has
    /// restarted or lost its session. Returns the initiation to send.
    pub(crate) fn restart_handshake(&self, peer: NodeId, entropy: &mut dyn Entropy) -> Option<Vec<u8>> {
        let now = self.clock.now();
        let mut p = self.lock(peer)?;
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
        let Some(mut p) = self.lock(peer) else { return Err(HandshakeError::Rejected) };
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
                if let Some(w) = self.established.get(&peer) {
                    w.update(|_| true);
                }
                Ok(if sealed.is_ok() { Reply::Send(confirm) } else { Reply::Nothing })
            }
        }
    }

    /// Opens a data frame from `peer`.
    pub(crate) fn open(&self, peer: NodeId, frame: &[u8]) -> Result<Vec<u8>, OpenError> {
        let now = self.clock.now();
        let Some(mut p) = self.lock(peer) else { return Err(OpenError::UnknownSession) };
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
