//! One node's state for one peer: the established session, the sessions
//! around a change of keys, and a handshake in progress. This is what a
//! transport keeps per peer id.

use super::config::SecureConfig;
use super::entropy::Entropy;
use super::handshake::{HandshakeError, Initiator, Responder};
use super::session::{OpenError, SealError, Session, frame_session};
use super::wire::{self, FrameKind};
use raft_core::{Instant, NodeId};
use std::collections::VecDeque;

/// Unconfirmed sessions a responder keeps per peer (see [`Link`]).
pub const MAX_UNCONFIRMED: usize = 4;

/// What a handshake packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// An initiation was answered: send the response appended to `out`.
    /// The new session waits, unconfirmed, for its first data frame.
    Responded,
    /// This side's handshake completed: the new session is the current one.
    /// Send a frame soon (an empty one will do) so that the peer confirms
    /// it too.
    Established,
}

/// The transport v2 state of this node for one peer.
///
/// * Sending uses the current session.
/// * Receiving accepts the current session, the one it replaced (frames
///   in flight during a change of keys) and the unconfirmed ones.
/// * When this node completes a handshake it started, the new session
///   becomes current at once: the response proved the peer is live.
/// * When this node answers an initiation, the new session stays
///   unconfirmed (up to [`MAX_UNCONFIRMED`], the oldest dropped first)
///   until a data frame opens under it, since the initiation may be a
///   replay. So a replayed initiation never replaces a working session.
#[derive(Debug)]
pub struct Link {
    config: SecureConfig,
    peer: NodeId,
    current: Option<Session>,
    previous: Option<Session>,
    unconfirmed: VecDeque<Session>,
    pending: Option<Initiator>,
}

impl Link {
    /// The state for `peer`, with no session yet.
    pub fn new(config: &SecureConfig, peer: NodeId) -> Link {
        Link {
            config: config.clone(),
            peer,
            current: None,
            previous: None,
            unconfirmed: VecDeque::new(),
            pending: None,
        }
    }

    /// The peer.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// The session frames are sealed under, if any.
    pub fn current(&self) -> Option<&Session> {
        self.current.as_ref()
    }

    /// When the handshake this node started (and that has not completed)
    /// was sent; a transport resends with [`Link::initiate`] after a
    /// timeout of its choice.
    pub fn pending_since(&self) -> Option<Instant> {
        self.pending.as_ref().map(Initiator::started)
    }

    /// Whether this node should start a handshake: no usable session, or
    /// the current one is due for rekeying, and none is in progress.
    pub fn wants_handshake(&self, now: Instant) -> bool {
        self.pending.is_none() && self.current.as_ref().is_none_or(|s| s.needs_rekey(now) || s.is_expired(now))
    }

    /// Starts a handshake (replacing one in progress) and appends the
    /// initiation to `out`. The current session stays in use until the
    /// handshake completes.
    pub fn initiate(
        &mut self,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<u8>,
    ) -> Result<(), HandshakeError> {
        self.pending = Some(Initiator::start(&self.config, self.peer, now, entropy, out)?);
        Ok(())
    }

    /// Handles an initiation or response from the peer. A response is
    /// appended to `out` when one must be sent. A packet that fails changes
    /// nothing.
    pub fn handle_handshake(
        &mut self,
        packet: &[u8],
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<u8>,
    ) -> Result<Handled, HandshakeError> {
        let header = wire::peek(packet).map_err(HandshakeError::Header)?;
        if header.sender != self.peer || header.receiver != self.config.me {
            return Err(HandshakeError::Misdirected { sender: header.sender, receiver: header.receiver });
        }
        match header.kind {
            FrameKind::Initiation => {
                let session = Responder::respond(&self.config, packet, now, entropy, out)?;
                if self.unconfirmed.len() == MAX_UNCONFIRMED {
                    self.unconfirmed.pop_front();
                }
                self.unconfirmed.push_back(session);
                Ok(Handled::Responded)
            }
            FrameKind::Response => {
                let pending = self.pending.as_mut().ok_or(HandshakeError::Finished)?;
                let session = pending.handle_response(packet, now)?;
                self.pending = None;
                self.install(session);
                Ok(Handled::Established)
            }
            FrameKind::Data => Err(HandshakeError::WrongKind(FrameKind::Data)),
        }
    }

    /// Seals `plaintext` under the current session and appends the frame to
    /// `out`.
    pub fn seal(&mut self, plaintext: &[u8], now: Instant, out: &mut Vec<u8>) -> Result<(), SealError> {
        match self.current.as_mut() {
            None => Err(SealError::NoSession),
            Some(s) if s.is_expired(now) => Err(SealError::Expired),
            Some(s) => s.seal(plaintext, out),
        }
    }

    /// Opens a data frame from the peer under whichever of its sessions the
    /// frame names. A frame that opens under an unconfirmed session makes
    /// that session current.
    pub fn open(&mut self, frame: &[u8], now: Instant) -> Result<Vec<u8>, OpenError> {
        let id = frame_session(frame).ok_or(OpenError::Malformed)?;
        for slot in [&mut self.current, &mut self.previous] {
            if let Some(s) = slot.as_mut().filter(|s| s.id() == id) {
                if s.is_expired(now) {
                    return Err(OpenError::Expired);
                }
                return s.open(frame);
            }
        }
        let Some(at) = self.unconfirmed.iter().position(|s| s.id() == id) else {
            return Err(OpenError::UnknownSession);
        };
        let s = &mut self.unconfirmed[at];
        if s.is_expired(now) {
            return Err(OpenError::Expired);
        }
        let payload = s.open(frame)?;
        if let Some(session) = self.unconfirmed.remove(at) {
            // Older unconfirmed sessions lost the race (or were replays).
            self.unconfirmed.drain(..at);
            self.install(session);
        }
        Ok(payload)
    }

    fn install(&mut self, session: Session) {
        self.previous = self.current.replace(session);
    }
}
