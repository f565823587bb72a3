//! The bytes of transport v2: every packet starts with a kind byte and the
//! sender's and receiver's node ids, so a transport can route it to the
//! right peer's state before any cryptography.
//!
//! ```text
//! header     = kind: u8 | sender: u64 LE | receiver: u64 LE          (17 bytes)
//! initiation = header(0x21) | e: [u8; 32] | AEAD(padding: [0; 16])   (81 bytes)
//! response   = header(0x22) | e: [u8; 32] | AEAD(empty)              (65 bytes)
//! data       = header(0x23) | session: u64 LE | counter: u64 LE | AEAD(payload)
//! ```
//!
//! The kinds' high nibble (2) is the protocol version; version 1 frames
//! (`auth.rs`) start with the byte 1, so the two never mix. AEAD adds a
//! 16-byte tag. The header is sent in the clear and not covered by the
//! AEAD's associated data; it is bound all the same: in a handshake the ids
//! are part of the Noise prologue, and in a data frame the sender, receiver
//! and session only select the keys (unique to one session and direction),
//! while the counter is the AEAD nonce. A changed header therefore selects
//! keys or a nonce the frame was not sealed under, and fails.

use raft_core::NodeId;

/// Bytes of the common header.
pub const HEADER_LEN: usize = 1 + 8 + 8;
/// Bytes of a Noise ephemeral public key (X25519).
pub(crate) const DH_LEN: usize = 32;
/// Bytes of an AEAD tag (ChaCha20-Poly1305).
pub const TAG_LEN: usize = 16;
/// Padding in the initiation, which makes it larger than the response.
pub(crate) const INITIATION_PADDING: usize = 16;
/// Bytes of a handshake initiation, exactly.
pub const INITIATION_LEN: usize = HEADER_LEN + DH_LEN + INITIATION_PADDING + TAG_LEN;
/// Bytes of a handshake response, exactly.
pub const RESPONSE_LEN: usize = HEADER_LEN + DH_LEN + TAG_LEN;
/// Bytes of a data frame's header (common header, session, counter).
pub const DATA_HEADER_LEN: usize = HEADER_LEN + 8 + 8;
/// Bytes a data frame adds to its payload.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;
/// The largest payload one data frame carries (the Noise message limit of
/// 65,535 bytes less the tag).
pub const MAX_PAYLOAD: usize = 65_535 - TAG_LEN;
/// The largest data frame.
pub const MAX_DATA_FRAME: usize = DATA_HEADER_LEN + 65_535;

const _: () = assert!(RESPONSE_LEN <= INITIATION_LEN, "a response must never be larger than its initiation");

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// The first handshake message, initiator to responder.
    Initiation,
    /// The second handshake message, responder to initiator.
    Response,
    /// A sealed payload of an established session.
    Data,
}

impl FrameKind {
    pub(crate) fn byte(self) -> u8 {
        match self {
            FrameKind::Initiation => 0x21,
            FrameKind::Response => 0x22,
            FrameKind::Data => 0x23,
        }
    }

    fn from_byte(b: u8) -> Option<FrameKind> {
        match b {
            0x21 => Some(FrameKind::Initiation),
            0x22 => Some(FrameKind::Response),
            0x23 => Some(FrameKind::Data),
            _ => None,
        }
    }
}

/// The clear-text header of a packet: where to route it, not yet proof of
/// anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the packet is.
    pub kind: FrameKind,
    /// The node it claims to come from.
    pub sender: NodeId,
    /// The node it is addressed to.
    pub receiver: NodeId,
}

/// Why a packet's header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Shorter than the header, or the wrong length for its kind.
    BadLength {
        /// Its length.
        len: usize,
    },
    /// The first byte is no known kind (a version 1 frame starts with 1).
    UnknownKind(u8),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::BadLength { len } => write!(f, "packet of {len} bytes has the wrong length for its kind"),
            HeaderError::UnknownKind(b) => write!(f, "unknown packet kind {b:#04x}"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Reads a packet's header and checks its length against its kind:
/// handshake messages have one exact length, data frames lie between
/// [`DATA_OVERHEAD`] and [`MAX_DATA_FRAME`].
pub fn peek(packet: &[u8]) -> Result<FrameHeader, HeaderError> {
    let len = packet.len();
    let Some(&first) = packet.first() else { return Err(HeaderError::BadLength { len }) };
    let kind = FrameKind::from_byte(first).ok_or(HeaderError::UnknownKind(first))?;
    let fits = match kind {
        FrameKind::Initiation => len == INITIATION_LEN,
        FrameKind::Response => len == RESPONSE_LEN,
        FrameKind::Data => (DATA_OVERHEAD..=MAX_DATA_FRAME).contains(&len),
    };
    if !fits {
        return Err(HeaderError::BadLength { len });
    }
    Ok(FrameHeader { kind, sender: NodeId(u64_at(packet, 1)), receiver: NodeId(u64_at(packet, 9)) })
}

pub(crate) fn put_header(out: &mut Vec<u8>, kind: FrameKind, sender: NodeId, receiver: NodeId) {
    out.push(kind.byte());
    out.extend_from_slice(&sender.0.to_le_bytes());
    out.extend_from_slice(&receiver.0.to_le_bytes());
}

/// The little-endian u64 at `at`; the caller has checked the length.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}
