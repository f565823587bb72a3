//! The cluster key, and the frames of the client protocol: a client's
//! datagram (and a node's answer) is sealed with HMAC-SHA256 under the
//! cluster key, with the sender's id inside the authenticated part. Traffic
//! between nodes does not use these frames: it travels in transport v2
//! sessions ([`crate::secure`]), which also bind the receiver, the cluster
//! incarnation and a fresh session.
//!
//! Frame: `version: u8 | sender: u64 LE | payload | tag: [u8; 32]`, where
//! `tag = HMAC-SHA256(key, version | sender | payload)`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// The frame format version this code writes and accepts.
pub const FRAME_VERSION: u8 = 1;
/// Bytes a sealed frame adds to its payload.
pub const FRAME_OVERHEAD: usize = 1 + 8 + TAG_LEN;
const TAG_LEN: usize = 32;
/// Length of a cluster key in bytes.
pub const KEY_LEN: usize = 32;

/// The shared secret of one cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; KEY_LEN]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<secret>)")
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not 64 hexadecimal digits.
    BadFormat(String),
    /// The operating system's random source failed.
    Random(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadFormat(why) => write!(f, "bad cluster key: {why}"),
            KeyError::Random(why) => write!(f, "cannot generate a key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl ClusterKey {
    /// A new random key from the operating system.
    pub fn generate() -> Result<ClusterKey, KeyError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(ClusterKey(k))
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> ClusterKey {
        ClusterKey(bytes)
    }

    /// Parses the key-file format: 64 hex digits, surrounding white space ignored.
    pub fn from_hex(text: &str) -> Result<ClusterKey, KeyError> {
        let t = text.trim();
        if t.len() != 2 * KEY_LEN {
            return Err(KeyError::BadFormat(format!(
                "expected {} hex digits, found {} characters",
                2 * KEY_LEN,
                t.len()
            )));
        }
        let mut k = [0u8; KEY_LEN];
        for (i, pair) in t.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => k[i] = h << 4 | l,
                _ => return Err(KeyError::BadFormat(format!("non-hex character near position {}", 2 * i))),
            }
        }
        Ok(ClusterKey(k))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key-file format (64 lowercase hex digits).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    /// Seals `payload` as a frame from `sender`.
    pub fn seal(&self, sender: u64, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(payload.len() + FRAME_OVERHEAD);
        frame.push(FRAME_VERSION);
        frame.extend_from_slice(&sender.to_le_bytes());
        frame.extend_from_slice(payload);
        let mut mac = self.mac();
        mac.update(&frame);
        frame.extend_from_slice(&mac.finalize().into_bytes());
        frame
    }

    /// Checks a frame and returns its authenticated sender and payload. The
    /// tag comparison takes the same time wherever it differs.
    pub fn open<'a>(&self, frame: &'a [u8]) -> Result<(u64, &'a [u8]), OpenError> {
        if frame.len() < FRAME_OVERHEAD {
            return Err(OpenError::TooShort { len: frame.len() });
        }
        if frame[0] != FRAME_VERSION {
            return Err(OpenError::UnknownVersion(frame[0]));
        }
        let (body, tag) = frame.split_at(frame.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| OpenError::BadTag)?;
        let mut sender = [0u8; 8];
        sender.copy_from_slice(&body[1..9]);
        Ok((u64::from_le_bytes(sender), &body[9..]))
    }
}

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than the fixed overhead.
    TooShort {
        /// Its length.
        len: usize,
    },
    /// A version this code does not know.
    UnknownVersion(u8),
    /// Not sealed with this cluster's key, or altered.
    BadTag,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::TooShort { len } => write!(f, "frame of {len} bytes is shorter than its header"),
            OpenError::UnknownVersion(v) => write!(f, "unknown frame version {v}"),
            OpenError::BadTag => write!(f, "authentication failed"),
        }
    }
}

impl std::error::Error for OpenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_any_change_is_rejected() {
        let key = ClusterKey::from_bytes([7; 32]);
        let frame = key.seal(42, b"hello");
        assert_eq!(frame.len(), 5 + FRAME_OVERHEAD);
        assert_eq!(key.open(&frame), Ok((42, &b"hello"[..])));
        for i in 0..frame.len() {
            for bit in 0..8 {
                let mut f = frame.clone();
                f[i] ^= 1 << bit;
                assert!(key.open(&f).is_err(), "flip of bit {bit} at {i} accepted");
            }
        }
        for cut in 0..frame.len() {
            assert!(key.open(&frame[..cut]).is_err());
        }
        let other = ClusterKey::from_bytes([8; 32]);
        assert_eq!(other.open(&frame), Err(OpenError::BadTag));
    }

    #[test]
    fn key_file_format() {
        let k = ClusterKey::generate().unwrap();
        assert_ne!(k, ClusterKey::generate().unwrap());
        assert_eq!(ClusterKey::from_hex(&format!("  {}\n", k.to_hex())), Ok(k.clone()));
        assert!(matches!(ClusterKey::from_hex("abc"), Err(KeyError::BadFormat(_))));
        let bad = format!("zz{}", &k.to_hex()[2..]);
        assert!(matches!(ClusterKey::from_hex(&bad), Err(KeyError::BadFormat(m)) if m.contains("position 0")));
        assert_eq!(format!("{k:?}"), "ClusterKey(<secret>)");
    }

    quickcheck::quickcheck! {
        fn arbitrary_frames_never_panic(bytes: Vec<u8>) -> bool {
            let key = ClusterKey::from_bytes([1; 32]);
            key.open(&bytes).is_err() || bytes.len() >= FRAME_OVERHEAD
        }
    }
}
