//! An established session: sealing and opening data frames with per-direction
//! counters and a replay window.

use super::config::SessionLimits;
use super::replay::{Refused, ReplayWindow};
use super::wire::{self, DATA_HEADER_LEN, FrameKind, HEADER_LEN, MAX_PAYLOAD, TAG_LEN};
use raft_core::{Instant, NodeId};
use snow::StatelessTransportState;
use std::fmt;

/// One session between this node and a peer, from one handshake: a sending
/// key with its counter and a receiving key with its replay window.
///
/// A session enforces its message limits; its age limit needs the time,
/// which [`Link`](super::Link) passes in (or call [`Session::is_expired`]).
pub struct Session {
    transport: StatelessTransportState,
    id: u64,
    me: NodeId,
    peer: NodeId,
    initiator: bool,
    established: Instant,
    limits: SessionLimits,
    next_send: u64,
    window: ReplayWindow,
    opened: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &format_args!("{:016x}", self.id))
            .field("me", &self.me)
            .field("peer", &self.peer)
            .field("initiator", &self.initiator)
            .field("established", &self.established)
            .field("sealed", &self.next_send)
            .field("opened", &self.opened)
            .finish()
    }
}

/// Why a payload could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// Larger than [`MAX_PAYLOAD`].
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The session sealed as many frames as it may, or is too old: make a
    /// new handshake.
    Expired,
    /// No session is established with the peer yet.
    NoSession,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::TooLarge { len } => write!(f, "payload of {len} bytes exceeds {MAX_PAYLOAD}"),
            SealError::Expired => f.write_str("session expired: a new handshake is needed"),
            SealError::NoSession => f.write_str("no session with the peer yet"),
        }
    }
}

impl std::error::Error for SealError {}

/// Why a data frame was refused. Nothing about the session changes when a
/// frame is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Not a data frame of a readable length.
    Malformed,
    /// The header names another pair of nodes than this session's.
    Misdirected {
        /// The sender it names.
        sender: NodeId,
        /// The receiver it names.
        receiver: NodeId,
    },
    /// Sealed under another session (an earlier one, say, from before a
    /// restart), or no session is established.
    UnknownSession,
    /// A counter accepted before.
    Replayed,
    /// A counter further behind the newest than the replay window reaches.
    TooOld,
    /// The session is past its limits (or the counter is beyond them).
    Expired,
    /// Not sealed under this session's key, or altered.
    BadTag,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Malformed => f.write_str("not a well-formed data frame"),
            OpenError::Misdirected { sender, receiver } => {
                write!(f, "frame from {sender} to {receiver} is not for this session")
            }
            OpenError::UnknownSession => f.write_str("frame of an unknown session"),
            OpenError::Replayed => f.write_str("replayed frame"),
            OpenError::TooOld => f.write_str("frame older than the replay window"),
            OpenError::Expired => f.write_str("session expired"),
            OpenError::BadTag => f.write_str("frame did not authenticate"),
        }
    }
}

impl std::error::Error for OpenError {}

impl Session {
    pub(crate) fn new(
        transport: StatelessTransportState,
        id: u64,
        me: NodeId,
        peer: NodeId,
        initiator: bool,
        now: Instant,
        limits: SessionLimits,
    ) -> Session {
        Session {
            transport,
            id,
            me,
            peer,
            initiator,
            established: now,
            limits,
            next_send: 0,
            window: ReplayWindow::new(),
            opened: 0,
        }
    }

    /// The id both sides derived from the handshake; data frames carry it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The node at the other end.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// Whether this side sent the initiation.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// When the handshake completed on this side.
    pub fn established(&self) -> Instant {
        self.established
    }

    /// Frames sealed so far.
    pub fn sealed(&self) -> u64 {
        self.next_send
    }

    /// Frames opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Whether a new handshake should replace this session.
    pub fn needs_rekey(&self, now: Instant) -> bool {
        self.next_send >= self.limits.rekey_after_messages
            || now.saturating_since(self.established) >= self.limits.rekey_after
    }

    /// Whether this session must no longer be used at all.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.next_send >= self.limits.reject_after_messages
            || now.saturating_since(self.established) >= self.limits.reject_after
    }

    /// Seals `plaintext` as the next data frame to the peer and appends the
    /// frame (`plaintext.len()` + [`DATA_OVERHEAD`](super::DATA_OVERHEAD)
    /// bytes) to `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        if plaintext.len() > MAX_PAYLOAD {
            return Err(SealError::TooLarge { len: plaintext.len() });
        }
        let counter = self.next_send;
        if counter >= self.limits.reject_after_messages {
            return Err(SealError::Expired);
        }
        let start = out.len();
        wire::put_header(out, FrameKind::Data, self.me, self.peer);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&counter.to_le_bytes());
        let body = out.len();
        out.resize(body + plaintext.len() + TAG_LEN, 0);
        match self.transport.write_message(counter, plaintext, &mut out[body..]) {
            Ok(n) if n == plaintext.len() + TAG_LEN => {
                self.next_send = counter + 1;
                Ok(())
            }
            // snow refuses only counters and sizes checked above; refuse
            // rather than send a frame that is not what it claims.
            _ => {
                out.truncate(start);
                Err(SealError::Expired)
            }
        }
    }

    /// Opens a data frame from the peer: checks its header, its counter
    /// against the replay window, then its tag, and returns the payload.
    /// Allocates only the payload, which is shorter than `frame`.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, OpenError> {
        let header = wire::peek(frame).map_err(|_| OpenError::Malformed)?;
        if header.kind != FrameKind::Data {
            return Err(OpenError::Malformed);
        }
        if header.sender != self.peer || header.receiver != self.me {
            return Err(OpenError::Misdirected { sender: header.sender, receiver: header.receiver });
        }
        if wire::u64_at(frame, HEADER_LEN) != self.id {
            return Err(OpenError::UnknownSession);
        }
        let counter = wire::u64_at(frame, HEADER_LEN + 8);
        if counter >= self.limits.reject_after_messages {
            return Err(OpenError::Expired);
        }
        self.window.check(counter).map_err(|r| match r {
            Refused::Replayed => OpenError::Replayed,
            Refused::TooOld => OpenError::TooOld,
        })?;
        let sealed = &frame[DATA_HEADER_LEN..];
        let mut payload = vec![0u8; sealed.len() - TAG_LEN];
        match self.transport.read_message(counter, sealed, &mut payload) {
            Ok(n) if n == payload.len() => {}
            _ => return Err(OpenError::BadTag),
        }
        self.window.mark(counter);
        self.opened += 1;
        Ok(payload)
    }
}

/// The session id a data frame names, if it is a well-formed data frame:
/// for choosing among a peer's sessions.
pub(crate) fn frame_session(frame: &[u8]) -> Option<u64> {
    match wire::peek(frame) {
        Ok(h) if h.kind == FrameKind::Data => Some(wire::u64_at(frame, HEADER_LEN)),
        _ => None,
    }
}
