//! `raft_core::codec::decode_message` on arbitrary bytes.

use raft_core::codec::{decode_message, encode_message};

/// Decodes `data` as a message. No panic on any input; whatever decodes
/// re-encodes to bytes that decode to the same message and re-encode to the
/// same bytes.
pub fn run(data: &[u8]) {
    let Ok(msg) = decode_message(data) else { return };
    let bytes = encode_message(&msg);
    let again = decode_message(&bytes).unwrap_or_else(|e| panic!("{msg:?} encodes to bytes that fail to decode: {e}"));
    assert_eq!(again, msg, "decode(encode(m)) != m");
    assert_eq!(encode_message(&again), bytes, "encoding is not deterministic");
    assert!(bytes.len() <= data.len(), "re-encoding {msg:?} grew from {} to {} bytes", data.len(), bytes.len());
}
