//! The client protocol's authenticated frames: `ClusterKey::open`, and a
//! message decoded from what opens. (Peer traffic is transport v2: see
//! [`crate::secure`].)
//!
//! A random frame almost never carries a valid tag, so the input is used two
//! ways: opened as it is (the checks before and at the tag), and sealed with
//! the cluster key first, so that the payload reaches the message decoder as
//! it would from a peer holding the key.

use raft_core::NodeId;
use raft_core::codec::{decode_message, encode_message};
use raft_host::ClusterKey;
use raft_host::auth::{FRAME_OVERHEAD, OpenError};

/// The key every frame here is opened with.
fn key() -> ClusterKey {
    ClusterKey::from_bytes([7; 32])
}

/// Opens `data` as a frame, then seals `data[8..]` as a frame from the
/// sender in `data[..8]` and opens that. No panic on any input; a raw frame
/// that opens was sealed with this key (so its tag checks); a sealed frame
/// always opens to its sender and payload; a message that decodes from it
/// is what `decode_message` makes of the payload.
pub fn run(data: &[u8]) {
    let key = key();
    match key.open(data) {
        Ok((sender, payload)) => {
            assert_eq!(key.seal(sender, payload), data, "a frame opened that this key did not seal");
        }
        Err(OpenError::TooShort { len }) => assert!(len < FRAME_OVERHEAD),
        Err(_) => {}
    }

    let (sender, payload) = match data.split_first_chunk::<8>() {
        Some((s, rest)) => (u64::from_le_bytes(*s), rest),
        None => (0, data),
    };
    let frame = key.seal(sender, payload);
    assert_eq!(frame.len(), payload.len() + FRAME_OVERHEAD);
    assert_eq!(key.open(&frame), Ok((sender, payload)), "a sealed frame did not open to what was sealed");
    let other = ClusterKey::from_bytes([8; 32]);
    assert_eq!(other.open(&frame), Err(OpenError::BadTag), "a frame opened under another key");
    if let Ok((from, opened)) = key.open(&frame)
        && let Ok(msg) = decode_message(opened)
    {
        assert_eq!(NodeId(from), NodeId(sender));
        assert_eq!(decode_message(&encode_message(&msg)).as_ref(), Ok(&msg));
    }
}
