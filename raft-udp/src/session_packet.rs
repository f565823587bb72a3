//! The packets of the session protocol: address cookies and commands in
//! registered sessions (see [`crate::packet::Packet`] for where they go).

use crate::packet::{ClientReply, ClientResult, MAX_DATAGRAM, Packet};
use raft_host::{KvOp, KvOutput};
use serde::{Deserialize, Serialize};

/// A node's proof that a client received a datagram at its address
/// ([`crate::cookie`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cookie {
    /// When it expires, in seconds on the issuing node's own scale.
    pub expires: u64,
    /// A MAC of the address and `expires` under the node's secret.
    pub tag: [u8; 16],
}

/// What a session request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Register a new session (its id comes back as
    /// `KvOutput::Registered`). `id` is random, chosen by the client: a
    /// node proposes one registration per id it has seen lately, so a
    /// replayed registration creates no log entry.
    Register {
        /// The registration's random id.
        id: u64,
    },
    /// A key-value command. Gets are ReadIndex reads and need no session.
    Kv(KvOp),
}

/// One request of a client holding a cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    /// Chosen by the client for this datagram; echoed in the reply.
    pub nonce: u64,
    /// The node's cookie for the address the request comes from.
    pub cookie: Cookie,
    /// The session (the index of its registration; ignored for registrations and gets).
    pub session: u64,
    /// The command's sequence number in the session, from 1 (see
    /// `raft_host::KvCommand` for the rules).
    pub seq: u64,
    /// What to do.
    pub op: ClientOp,
}

/// Largest value a put or cas may store: a get's reply carrying it still
/// fits one datagram (a node refuses larger values, the client does not send
/// them). A request carrying such a value leaves room for a key of a few
/// hundred bytes in its datagram.
pub const MAX_VALUE_BYTES: usize = MAX_DATAGRAM - 512;

/// Zeros a client adds to a cookie request, so that the request is no
/// smaller than the node's reply (a node never answers an unproven address
/// with more bytes than it received).
pub const COOKIE_REQUEST_PADDING: usize = 48;

/// The reply to a get of a value of `len` bytes, as the node encodes it (for
/// size checks).
pub fn get_reply_len(len: usize) -> usize {
    let reply = Packet::SessionReply(ClientReply {
        nonce: u64::MAX,
        seq: u64::MAX,
        result: ClientResult::Done(KvOutput::Get(Some("v".repeat(len)))),
    });
    crate::packet::encode(&reply).map_or(usize::MAX, |b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{self, Chunk};
    use raft_host::ClusterKey;

    #[test]
    fn the_largest_value_can_be_put_and_read_back_in_one_datagram() {
        let overhead = raft_host::auth::FRAME_OVERHEAD;
        assert!(get_reply_len(MAX_VALUE_BYTES) + overhead <= MAX_DATAGRAM);
        let put = Packet::SessionRequest(SessionRequest {
            nonce: u64::MAX,
            cookie: Cookie { expires: u64::MAX, tag: [0xFF; 16] },
            session: u64::MAX,
            seq: u64::MAX,
            op: ClientOp::Kv(KvOp::put("k".repeat(256), "v".repeat(MAX_VALUE_BYTES))),
        });
        assert!(packet::encode(&put).unwrap().len() + overhead <= MAX_DATAGRAM);
        // The store's entry for it is within the node's entry limit.
        assert!(packet::encode(&put).unwrap().len() <= crate::server::MAX_ENTRY_BYTES);
    }

    #[test]
    fn a_padded_cookie_request_is_no_smaller_than_its_reply() {
        let key = ClusterKey::from_bytes([1; 32]);
        let request = Packet::CookieRequest { nonce: 0, padding: Chunk(&[0; COOKIE_REQUEST_PADDING]) };
        let reply = Packet::CookieReply { nonce: u64::MAX, cookie: Cookie { expires: u64::MAX, tag: [0xFF; 16] } };
        let req = key.seal(0, &packet::encode(&request).unwrap());
        let rep = key.seal(u64::MAX, &packet::encode(&reply).unwrap());
        assert!(rep.len() <= req.len(), "{} > {}", rep.len(), req.len());
    }
}
