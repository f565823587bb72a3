//! The two-message handshake (`Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`):
//! [`Initiator`] sends an initiation and turns the response into a
//! [`Session`]; [`Responder`] turns an initiation into a response and a
//! session. Bytes in, bytes out: no I/O, no clock, no global RNG.

use super::config::{SecureConfig, SessionLimits};
use super::entropy::{Entropy, EntropyError, SeededResolver};
use super::keyfile::{INCARNATION_LEN, Incarnation};
use super::session::Session;
use super::wire::{
    self, DH_LEN, FrameKind, HEADER_LEN, HeaderError, INITIATION_LEN, INITIATION_PADDING, RESPONSE_LEN, TAG_LEN,
};
use raft_core::{Instant, NodeId};
use snow::{Builder, HandshakeState};
use std::fmt;

const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
const LABEL: &[u8] = b"raft transport v2";
const PROLOGUE_LEN: usize = LABEL.len() + INCARNATION_LEN + 8 + 8;

/// Why a handshake step failed. Nothing is changed by a failed step: an
/// [`Initiator`] still waits for its genuine response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The packet's header is unreadable or its length wrong for its kind.
    Header(HeaderError),
    /// A packet of another kind than this step reads.
    WrongKind(FrameKind),
    /// The header names another pair of nodes than this handshake's.
    Misdirected {
        /// The sender it names.
        sender: NodeId,
        /// The receiver it names.
        receiver: NodeId,
    },
    /// A handshake with oneself.
    OwnId,
    /// The message did not authenticate: another cluster key or
    /// incarnation, another pair of nodes, an altered message, or a
    /// response to another initiation.
    Rejected,
    /// The initiator already completed.
    Finished,
    /// The random source failed.
    Entropy(EntropyError),
    /// snow refused a step this module always sets up the same way (a bug).
    Internal,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Header(e) => write!(f, "handshake: {e}"),
            HandshakeError::WrongKind(k) => write!(f, "handshake: unexpected {k:?} packet"),
            HandshakeError::Misdirected { sender, receiver } => {
                write!(f, "handshake message from {sender} to {receiver} is not for this handshake")
            }
            HandshakeError::OwnId => f.write_str("handshake with this node's own id"),
            HandshakeError::Rejected => f.write_str("handshake message did not authenticate"),
            HandshakeError::Finished => f.write_str("handshake already completed"),
            HandshakeError::Entropy(e) => write!(f, "handshake: {e}"),
            HandshakeError::Internal => f.write_str("handshake: internal error in the Noise state machine"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The label, the incarnation and both ids, in the roles of this handshake.
fn prologue(incarnation: &Incarnation, initiator: NodeId, responder: NodeId) -> [u8; PROLOGUE_LEN] {
    let mut p = [0u8; PROLOGUE_LEN];
    let (label, rest) = p.split_at_mut(LABEL.len());
    label.copy_from_slice(LABEL);
    let (inc, ids) = rest.split_at_mut(INCARNATION_LEN);
    inc.copy_from_slice(incarnation.as_bytes());
    ids[..8].copy_from_slice(&initiator.0.to_le_bytes());
    ids[8..].copy_from_slice(&responder.0.to_le_bytes());
    p
}

fn build(
    config: &SecureConfig,
    initiator: NodeId,
    responder: NodeId,
    entropy: &mut dyn Entropy,
) -> Result<HandshakeState, HandshakeError> {
    let params = NOISE_PARAMS.parse().map_err(|_| HandshakeError::Internal)?;
    let resolver = SeededResolver::draw(entropy).map_err(HandshakeError::Entropy)?;
    let prologue = prologue(&config.incarnation, initiator, responder);
    let builder = Builder::with_resolver(params, Box::new(resolver))
        .prologue(&prologue)
        .and_then(|b| b.psk(0, config.key.as_bytes()))
        .map_err(|_| HandshakeError::Internal)?;
    if initiator == config.me { builder.build_initiator() } else { builder.build_responder() }
        .map_err(|_| HandshakeError::Internal)
}

/// The session id both sides derive: the first bytes of the handshake hash,
/// unpredictable to anyone outside the handshake.
fn session_id(state: &HandshakeState) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&state.get_handshake_hash()[..8]);
    u64::from_le_bytes(id)
}

/// The side that starts a handshake, waiting for the response.
pub struct Initiator {
    /// `None` once completed.
    state: Option<HandshakeState>,
    me: NodeId,
    peer: NodeId,
    started: Instant,
    limits: SessionLimits,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("me", &self.me)
            .field("peer", &self.peer)
            .field("started", &self.started)
            .field("completed", &self.state.is_none())
            .finish()
    }
}

impl Initiator {
    /// Starts a handshake with `peer`: appends the initiation
    /// ([`INITIATION_LEN`] bytes) to `out`, to be sent to `peer`.
    pub fn start(
        config: &SecureConfig,
        peer: NodeId,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<u8>,
    ) -> Result<Initiator, HandshakeError> {
        if peer == config.me {
            return Err(HandshakeError::OwnId);
        }
        let mut state = build(config, config.me, peer, entropy)?;
        let mut body = [0u8; DH_LEN + INITIATION_PADDING + TAG_LEN];
        let n = state.write_message(&[0u8; INITIATION_PADDING], &mut body).map_err(|_| HandshakeError::Internal)?;
        if n != body.len() {
            return Err(HandshakeError::Internal);
        }
        wire::put_header(out, FrameKind::Initiation, config.me, peer);
        out.extend_from_slice(&body);
        Ok(Initiator { state: Some(state), me: config.me, peer, started: now, limits: config.limits })
    }

    /// The node this handshake is with.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// When the initiation was made.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Reads the peer's response and yields the session. A response that
    /// fails changes nothing, so a forged one cannot spoil the handshake.
    pub fn handle_response(&mut self, response: &[u8], now: Instant) -> Result<Session, HandshakeError> {
        let header = wire::peek(response).map_err(HandshakeError::Header)?;
        if header.kind != FrameKind::Response {
            return Err(HandshakeError::WrongKind(header.kind));
        }
        if header.sender != self.peer || header.receiver != self.me {
            return Err(HandshakeError::Misdirected { sender: header.sender, receiver: header.receiver });
        }
        let state = self.state.as_mut().ok_or(HandshakeError::Finished)?;
        debug_assert_eq!(response.len(), RESPONSE_LEN);
        let mut payload = [0u8; RESPONSE_LEN];
        match state.read_message(&response[HEADER_LEN..], &mut payload) {
            Ok(0) => {}
            _ => return Err(HandshakeError::Rejected),
        }
        let state = self.state.take().ok_or(HandshakeError::Finished)?;
        let id = session_id(&state);
        let transport = state.into_stateless_transport_mode().map_err(|_| HandshakeError::Internal)?;
        Ok(Session::new(transport, id, self.me, self.peer, true, now, self.limits))
    }
}

/// The side that answers an initiation.
#[derive(Debug, Clone, Copy)]
pub struct Responder;

impl Responder {
    /// Reads an initiation addressed to `config.me` and, if it
    /// authenticates, appends the response ([`RESPONSE_LEN`] bytes, never
    /// more than the initiation) to `out` and yields the new session.
    ///
    /// The initiation proves only that its sender holds the cluster key,
    /// not that it is fresh: it may be a replay. The session is fresh all
    /// the same (it depends on this side's new ephemeral key), and a
    /// replayer cannot use it; so keep it beside the established session
    /// and switch only when a data frame opens under it, as [`Link`] does.
    ///
    /// [`Link`]: super::Link
    pub fn respond(
        config: &SecureConfig,
        initiation: &[u8],
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<u8>,
    ) -> Result<Session, HandshakeError> {
        let header = wire::peek(initiation).map_err(HandshakeError::Header)?;
        if header.kind != FrameKind::Initiation {
            return Err(HandshakeError::WrongKind(header.kind));
        }
        if header.receiver != config.me {
            return Err(HandshakeError::Misdirected { sender: header.sender, receiver: header.receiver });
        }
        if header.sender == config.me {
            return Err(HandshakeError::OwnId);
        }
        debug_assert_eq!(initiation.len(), INITIATION_LEN);
        let mut state = build(config, header.sender, config.me, entropy)?;
        let mut padding = [0u8; INITIATION_LEN];
        match state.read_message(&initiation[HEADER_LEN..], &mut padding) {
            Ok(INITIATION_PADDING) if padding[..INITIATION_PADDING].iter().all(|&b| b == 0) => {}
            _ => return Err(HandshakeError::Rejected),
        }
        let mut body = [0u8; DH_LEN + TAG_LEN];
        let n = state.write_message(&[], &mut body).map_err(|_| HandshakeError::Internal)?;
        if n != body.len() {
            return Err(HandshakeError::Internal);
        }
        let id = session_id(&state);
        let transport = state.into_stateless_transport_mode().map_err(|_| HandshakeError::Internal)?;
        wire::put_header(out, FrameKind::Response, config.me, header.sender);
        out.extend_from_slice(&body);
        Ok(Session::new(transport, id, config.me, header.sender, false, now, config.limits))
    }
}
