//! Length-prefixed, authenticated message frames for stream transports
//! (TCP), shared by every adapter so that a raft-tokio node and a raft-smol
//! node speak the same bytes. Pure functions over bytes: no I/O.
//!
//! # Wire format
//!
//! ```text
//! len: u32 LE | sealed
//! sealed = ClusterKey::seal(sender, codec::encode_message(message))
//!        = version: u8 | sender: u64 LE | payload | HMAC-SHA256 tag: [u8; 32]
//! ```
//!
//! `len` counts the bytes of `sealed` only. A receiver reads the four length
//! bytes, checks them with [`check_len`] against its limit (normally
//! [`max_frame_len`] of the cluster's `Config::max_message_bytes`) and closes
//! the connection on error *before* allocating anything for the body; then
//! it reads exactly `len` bytes and calls [`open_frame`], which authenticates
//! the frame before decoding it. The sender id comes from the authenticated
//! part, never from the connection.

use crate::auth::{ClusterKey, FRAME_OVERHEAD, OpenError};
use raft_core::codec::{self, DecodeError};
use raft_core::{Message, NodeId};
use std::fmt;

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// The largest sealed frame (without its length prefix) a transport must
/// accept for a cluster whose `Config::max_message_bytes` is
/// `max_message_bytes`: every message the core builds fits in it.
pub fn max_frame_len(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_add(FRAME_OVERHEAD)
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced (or, when sending, the actual) length exceeds the limit.
    TooLong {
        /// The length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The announced length cannot hold a sealed frame's fixed overhead.
    TooShort {
        /// The length.
        len: usize,
    },
    /// Authentication failed: not sealed under this cluster's key, altered,
    /// or an unknown frame version.
    Auth(OpenError),
    /// Authentic, but the payload is not a valid message.
    Decode(DecodeError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { len, max } => write!(f, "frame of {len} bytes exceeds the limit of {max}"),
            FrameError::TooShort { len } => write!(f, "frame of {len} bytes is shorter than its header"),
            FrameError::Auth(e) => write!(f, "frame rejected: {e}"),
            FrameError::Decode(e) => write!(f, "authentic frame holds no valid message: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame (length prefix included) carrying `message` from
/// `sender` to `out`, and returns the bytes appended. A frame longer than
/// `max_len` is refused and nothing is appended (the core sizes messages by
/// `Config::max_message_bytes`, so with `max_len = max_frame_len(..)` of the
/// same config this never happens).
pub fn encode_frame_into(
    key: &ClusterKey,
    sender: NodeId,
    message: &Message,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<usize, FrameError> {
    let payload = codec::encode_message(message);
    let len = payload.len().saturating_add(FRAME_OVERHEAD);
    if len > max_len || u32::try_from(len).is_err() {
        return Err(FrameError::TooLong { len, max: max_len });
    }
    let sealed = key.seal(sender.0, &payload);
    out.reserve(LEN_BYTES + sealed.len());
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed);
    Ok(LEN_BYTES + sealed.len())
}

/// One frame (length prefix included), as [`encode_frame_into`].
pub fn encode_frame(
    key: &ClusterKey,
    sender: NodeId,
    message: &Message,
    max_len: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_frame_into(key, sender, message, max_len, &mut out)?;
    Ok(out)
}

/// Reads a length prefix and checks it against `max_len`: call before
/// allocating the body. On error the connection must be closed.
pub fn check_len(prefix: [u8; LEN_BYTES], max_len: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max_len {
        return Err(FrameError::TooLong { len, max: max_len });
    }
    if len < FRAME_OVERHEAD {
        return Err(FrameError::TooShort { len });
    }
    Ok(len)
}

/// Authenticates a frame body (the `len` bytes after the prefix), then
/// decodes its message. Returns the authenticated sender and the message.
/// Never panics on any input.
pub fn open_frame(key: &ClusterKey, body: &[u8]) -> Result<(NodeId, Message), FrameError> {
    let (sender, payload) = key.open(body).map_err(FrameError::Auth)?;
    let message = codec::decode_message(payload).map_err(FrameError::Decode)?;
    Ok((NodeId(sender), message))
}

/// Splits the first complete frame off the front of `buf`, for transports
/// that read into a buffer: `Ok(None)` if more bytes are needed, otherwise
/// the frame's body and the total bytes it used (prefix included). The
/// length is checked as soon as the prefix is present.
pub fn split_frame(buf: &[u8], max_len: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<LEN_BYTES>() else {
        return Ok(None);
    };
    let len = check_len(*prefix, max_len)?;
    if rest.len() < len {
        return Ok(None);
    }
    Ok(Some((&rest[..len], LEN_BYTES + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Body, Bytes, Entry, LogIndex, Payload, Term};

    fn key() -> ClusterKey {
        ClusterKey::from_bytes([3; 32])
    }

    fn append(n: usize) -> Message {
        Message {
            term: Term(4),
            body: Body::AppendEntries(raft_core::AppendEntries {
                prev_log_index: LogIndex(1),
                prev_log_term: Term(1),
                entries: vec![Entry {
                    term: Term(4),
                    index: LogIndex(2),
                    payload: Payload::Command(Bytes::from(vec![9; n])),
                }],
                leader_commit: LogIndex(1),
                round: 0,
            }),
        }
    }

    #[test]
    fn round_trip_through_a_byte_stream() {
        let max = max_frame_len(1 << 20);
        let mut stream = Vec::new();
        let msgs = [append(0), append(10), append(70_000)];
        for m in &msgs {
            encode_frame_into(&key(), NodeId(2), m, max, &mut stream).unwrap();
        }
        let mut at = 0;
        for m in &msgs {
            // Byte by byte, a frame is only complete at its last byte.
            let (body, used) = split_frame(&stream[at..], max).unwrap().unwrap();
            assert_eq!(split_frame(&stream[at..at + used - 1], max), Ok(None));
            assert_eq!(open_frame(&key(), body).unwrap(), (NodeId(2), m.clone()));
            at += used;
        }
        assert_eq!(at, stream.len());
    }

    #[test]
    fn over_long_or_short_length_is_refused_before_the_body() {
        let max = 1000;
        assert_eq!(check_len(1001u32.to_le_bytes(), max), Err(FrameError::TooLong { len: 1001, max }));
        assert_eq!(check_len(u32::MAX.to_le_bytes(), max), Err(FrameError::TooLong { len: u32::MAX as usize, max }));
        assert_eq!(check_len(3u32.to_le_bytes(), max), Err(FrameError::TooShort { len: 3 }));
        // Only the prefix is present: still refused.
        assert!(split_frame(&u32::MAX.to_le_bytes(), max).is_err());
        assert!(matches!(encode_frame(&key(), NodeId(1), &append(2000), max), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn wrong_key_or_damage_or_garbage_is_refused() {
        let max = max_frame_len(1 << 20);
        let frame = encode_frame(&key(), NodeId(1), &append(5), max).unwrap();
        let body = &frame[LEN_BYTES..];
        let other = ClusterKey::from_bytes([4; 32]);
        assert_eq!(open_frame(&other, body), Err(FrameError::Auth(OpenError::BadTag)));
        let mut bad = body.to_vec();
        bad[12] ^= 1;
        assert!(matches!(open_frame(&key(), &bad), Err(FrameError::Auth(_))));
        // Authentic garbage: sealed, but not a message.
        let sealed = key().seal(1, b"not a message");
        assert!(matches!(open_frame(&key(), &sealed), Err(FrameError::Decode(_))));
    }
}
