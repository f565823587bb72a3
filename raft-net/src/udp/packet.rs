//! Peer traffic inside one authenticated datagram.
//!
//! A datagram is a frame sealed under the cluster key
//! ([`raft_host::ClusterKey::seal`]) whose payload is, for peer traffic, a
//! [`PeerPacket`] in the `raft_core::codec` encoding. Its first byte is the
//! variant tag: peer traffic is tag 0. An application sharing the socket
//! (raft-udp's clients) appends its own variants after it in its own packet
//! type; the transport hands those datagrams to the application.

use raft_core::codec::{self, DecodeError};
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Largest UDP payload over IPv4 (65,535 minus the IP and UDP headers). No
/// datagram of this protocol is larger; anything larger is dropped.
pub const MAX_DATAGRAM: usize = 65_507;

/// The peer part of a datagram's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerPacket<'a> {
    /// A fragment of a codec-encoded `raft_core::Message` from the peer that
    /// sealed the frame.
    Peer(#[serde(borrow)] Fragment<'a>),
}

/// Part `index` of `count` of one encoded Raft message. All fragments of a
/// message share `msg`, which each sender numbers on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment<'a> {
    /// The message's id, unique per sender for a while.
    pub msg: u64,
    /// This fragment's position, from 0.
    pub index: u32,
    /// How many fragments the message has (at least 1).
    pub count: u32,
    /// The bytes.
    #[serde(borrow)]
    pub data: Chunk<'a>,
}

/// Borrowed bytes, encoded as one byte string (length, then the bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a>(pub &'a [u8]);

impl fmt::Debug for Chunk<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl Serialize for Chunk<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Chunk<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = &'de [u8];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a borrowed byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<&'de [u8], E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V).map(Chunk)
    }
}

/// Encodes a peer packet; `None` only if it exceeds the codec's size limit.
pub fn encode(packet: &PeerPacket<'_>) -> Option<Vec<u8>> {
    codec::encode_value(packet).ok()
}

/// The first byte of every encoded [`PeerPacket`]: the variant tag of
/// [`PeerPacket::Peer`]. An application's packets start with other tags.
pub const PEER_TAG: u8 = 0;

/// True if `bytes` carry peer traffic's tag, whether or not the rest
/// decodes: a check that costs nothing, where a failed [`decode`] formats
/// an error message.
pub fn is_peer_tagged(bytes: &[u8]) -> bool {
    bytes.first() == Some(&PEER_TAG)
}

/// Decodes a peer packet that borrows from `bytes`. Never panics; any
/// defect, trailing bytes and other variants' tags included, is an error.
pub fn decode(bytes: &[u8]) -> Result<PeerPacket<'_>, DecodeError> {
    codec::decode_value(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_peer_packets_carry_the_peer_tag_and_nothing_else_decodes() {
        let p = PeerPacket::Peer(Fragment { msg: 7, index: 0, count: 1, data: Chunk(&[1, 2]) });
        let bytes = encode(&p).unwrap();
        assert!(is_peer_tagged(&bytes));
        for tag in 1..=u8::MAX {
            let mut other = bytes.clone();
            other[0] = tag;
            assert!(!is_peer_tagged(&other));
            assert!(decode(&other).is_err(), "tag {tag} decoded as peer traffic");
        }
        assert!(!is_peer_tagged(&[]));
    }
}
