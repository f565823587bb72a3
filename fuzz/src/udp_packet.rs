//! `raft_udp::packet::decode` (the payload of every datagram) on arbitrary bytes.

use raft_udp::packet::{decode, encode};

/// Decodes `data` as a packet. No panic on any input; whatever decodes
/// round-trips through `encode`.
pub fn run(data: &[u8]) {
    let Ok(packet) = decode(data) else { return };
    let bytes = encode(&packet).unwrap_or_else(|| panic!("{packet:?} decoded but does not encode"));
    let again = decode(&bytes).unwrap_or_else(|e| panic!("{packet:?} encodes to bytes that fail to decode: {e}"));
    assert_eq!(again, packet, "decode(encode(p)) != p");
    assert!(bytes.len() <= data.len(), "re-encoding {packet:?} grew from {} to {} bytes", data.len(), bytes.len());
}
