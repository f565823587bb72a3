//! What one datagram carries inside its authenticated frame.
//!
//! A [`Packet`] is encoded with `raft_core::codec` (bincode, varint
//! integers). Its first byte is the variant tag, which tells peer traffic
//! from client traffic. Variants are only ever appended, so the encoding of
//! existing ones never changes.

use crate::counters::Counters;
use raft_core::codec::{self, DecodeError};
use raft_host::{KvOp, KvOutput};
use serde::{Deserialize, Serialize};

pub use crate::session_packet::{COOKIE_REQUEST_PADDING, ClientOp, Cookie, MAX_VALUE_BYTES, SessionRequest};
pub use raft_net::udp::{Chunk, Fragment, MAX_DATAGRAM};

/// The payload of one datagram. The first variant is raft-net's peer
/// traffic ([`raft_net::udp::PeerPacket`]: the same tag, the same
/// encoding); the node's UDP transport hands every other packet to the
/// service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Packet<'a> {
    /// A fragment of a codec-encoded `raft_core::Message` from the peer that
    /// sealed the frame.
    Peer(#[serde(borrow)] Fragment<'a>),
    /// A client asks for a command; the frame's sender is the client id.
    ClientRequest(ClientRequest),
    /// A node answers a [`Packet::ClientRequest`].
    ClientReply(ClientReply),
    /// Anyone holding the key asks for a node's state.
    StatusRequest {
        /// Echoed in the reply.
        nonce: u64,
    },
    /// A node's state.
    StatusReply {
        /// The request's nonce.
        nonce: u64,
        /// The state.
        status: NodeStatus,
    },
    /// A client asks for an address cookie ([`crate::cookie`]). A node
    /// answers only if its [`Packet::CookieReply`] is no larger than this
    /// request, so clients pad it ([`COOKIE_REQUEST_PADDING`]).
    CookieRequest {
        /// Echoed in the reply.
        nonce: u64,
        /// Zeros that make the request as large as the reply.
        #[serde(borrow)]
        padding: Chunk<'a>,
    },
    /// A node's cookie for the address the request came from.
    CookieReply {
        /// The request's nonce.
        nonce: u64,
        /// The cookie.
        cookie: Cookie,
    },
    /// A command in a registered session (or a session registration).
    SessionRequest(SessionRequest),
    /// A node answers a [`Packet::SessionRequest`].
    SessionReply(ClientReply),
    /// A client with a cookie asks for a node's state.
    StatusQuery {
        /// Echoed in the reply.
        nonce: u64,
        /// The address cookie.
        cookie: Cookie,
    },
    /// Anyone holding the key, from an address proven by its cookie, asks
    /// the leader to hand leadership to node `to`.
    TransferRequest {
        /// Echoed in the reply.
        nonce: u64,
        /// The address cookie.
        cookie: Cookie,
        /// The node that should lead.
        to: u64,
    },
    /// A node answers a [`Packet::TransferRequest`] once the transfer ended.
    TransferReply {
        /// The request's nonce.
        nonce: u64,
        /// How it ended.
        result: TransferResult,
    },
    /// Anyone holding the key, from an address proven by its cookie, asks
    /// the leader about the configuration or to change it.
    MemberRequest {
        /// Echoed in the reply.
        nonce: u64,
        /// The address cookie.
        cookie: Cookie,
        /// What to do.
        op: crate::members::MemberOp,
    },
    /// A node answers a [`Packet::MemberRequest`].
    MemberReply {
        /// The request's nonce.
        nonce: u64,
        /// The answer.
        result: crate::members::MemberResult,
    },
    /// A follower answers a [`Packet::SessionRequest`] it served through
    /// its leader (a forwarded command, or a read at the leader's read
    /// index), and names that leader: a client that can reach it sends its
    /// next commands there, one hop shorter.
    SessionReplyFollowing {
        /// The answer, as in a [`Packet::SessionReply`].
        reply: ClientReply,
        /// The leader this node followed when it answered.
        leader: u64,
        /// The leader's address as configured on this node.
        addr: String,
    },
}

/// How a node answers a [`Packet::TransferRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferResult {
    /// The target started its election in a higher term; this node stepped down.
    HandedOver,
    /// This node does not lead; it names the leader it knows of, if any.
    NotLeader {
        /// The leader's node id.
        leader: Option<u64>,
    },
    /// A transfer to `to` is already running on this node.
    InProgress {
        /// Its target.
        to: u64,
    },
    /// The transfer was refused or did not finish (the target is not a
    /// member, or did not take over in time); this node leads on.
    Failed(String),
}

impl Packet<'_> {
    /// The answer to a session request that this packet carries, if it is
    /// a [`Packet::SessionReply`] or a [`Packet::SessionReplyFollowing`].
    pub fn into_session_reply(self) -> Option<ClientReply> {
        match self {
            Packet::SessionReply(reply) | Packet::SessionReplyFollowing { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// One command from a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// Chosen by the client for this datagram; echoed in the reply.
    pub nonce: u64,
    /// The client's sequence number for the command (see `raft_host::KvCommand`).
    pub seq: u64,
    /// The command.
    pub op: KvOp,
}

/// A node's answer to one [`ClientRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReply {
    /// The request's nonce.
    pub nonce: u64,
    /// The request's sequence number.
    pub seq: u64,
    /// What happened.
    pub result: ClientResult,
}

/// How a node answers a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResult {
    /// Committed and applied, with this output.
    Done(KvOutput),
    /// This node does not lead; it names the leader it knows of, if any, and
    /// that leader's peer address. The command was not proposed here.
    NotLeader {
        /// The leader's node id.
        leader: Option<u64>,
        /// The leader's address as configured on this node.
        addr: Option<String>,
    },
    /// Send the same request again: retrying the same sequence number is
    /// safe and settles the outcome.
    Retry(RetryReason),
    /// The command was definitely not applied, and never will be.
    Rejected(String),
    /// The request's session is unknown or has expired: nothing was
    /// proposed. Register a new session.
    UnknownSession,
    /// The leader's uncommitted bytes are at their limit: nothing was proposed.
    Full {
        /// The limit, in bytes.
        limit: u64,
    },
}

/// Why a client should retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryReason {
    /// Another leader's entry replaced the proposal: it was not applied.
    Superseded,
    /// A snapshot covered the proposal before this node saw it applied: it
    /// may or may not have been applied.
    Unknown,
    /// Too many proposals are waiting; nothing was proposed.
    Busy,
}

/// A node's state, as `raft-udp status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id.
    pub id: u64,
    /// `"leader"`, `"follower"`, `"candidate"`, or `"removed"` once a
    /// configuration without this node took effect.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The leader of the current term, if known.
    pub leader: Option<u64>,
    /// The highest index known committed.
    pub commit_index: u64,
    /// The highest index applied to the key-value store.
    pub last_applied: u64,
    /// The index of the last log entry.
    pub last_log_index: u64,
    /// The index the latest snapshot covers (0: none).
    pub snapshot_index: u64,
    /// Datagrams dropped, by reason.
    pub dropped: Counters,
    /// Client sessions open in the key-value store.
    pub sessions: u64,
    /// The session table's size as its bound counts it (`raft_host::KvStore::session_bytes`).
    pub session_bytes: u64,
    /// The bound on `session_bytes` in force.
    pub session_limit_bytes: u64,
    /// Requests from addresses without a valid cookie that got no answer,
    /// because even a cookie reply would have been larger than the request.
    pub unproven: u64,
    /// The voters of the configuration in effect on this node.
    pub voters: Vec<u64>,
    /// Its learners.
    pub learners: Vec<u64>,
}

/// Encodes a packet; `None` only if it exceeds the codec's size limit.
pub fn encode(packet: &Packet<'_>) -> Option<Vec<u8>> {
    codec::encode_value(packet).ok()
}

/// Decodes a packet that borrows from `bytes`. Never panics; any defect,
/// including trailing bytes, is an error.
pub fn decode(bytes: &[u8]) -> Result<Packet<'_>, DecodeError> {
    codec::decode_value(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Packet<'static>> {
        vec![
            Packet::Peer(Fragment { msg: u64::MAX, index: 3, count: 9, data: Chunk(&[1, 2, 3]) }),
            Packet::ClientRequest(ClientRequest { nonce: 1, seq: 2, op: KvOp::cas("k", Some("a"), "b") }),
            Packet::ClientReply(ClientReply { nonce: 1, seq: 2, result: ClientResult::Done(KvOutput::get(None)) }),
            Packet::ClientReply(ClientReply {
                nonce: 1,
                seq: 2,
                result: ClientResult::NotLeader { leader: Some(3), addr: Some("127.0.0.1:9".into()) },
            }),
            Packet::StatusRequest { nonce: 5 },
            Packet::TransferRequest { nonce: 6, cookie: Cookie { expires: 9, tag: [4; 16] }, to: 2 },
            Packet::TransferReply { nonce: 6, result: TransferResult::HandedOver },
            Packet::TransferReply { nonce: 7, result: TransferResult::NotLeader { leader: Some(3) } },
            Packet::TransferReply { nonce: 8, result: TransferResult::InProgress { to: 2 } },
            Packet::TransferReply { nonce: 9, result: TransferResult::Failed("no".into()) },
            Packet::StatusReply {
                nonce: 5,
                status: NodeStatus {
                    id: 1,
                    role: "leader".into(),
                    term: 2,
                    leader: Some(1),
                    commit_index: 3,
                    last_applied: 3,
                    last_log_index: 4,
                    snapshot_index: 0,
                    dropped: Counters::default(),
                    sessions: 2,
                    session_bytes: 192,
                    session_limit_bytes: 1 << 20,
                    unproven: 3,
                    voters: vec![1, 2, 3],
                    learners: vec![4],
                },
            },
            Packet::CookieRequest { nonce: 1, padding: Chunk(&[0; 40]) },
            Packet::CookieReply { nonce: 1, cookie: Cookie { expires: 9, tag: [3; 16] } },
            Packet::SessionRequest(SessionRequest {
                nonce: 2,
                cookie: Cookie { expires: 9, tag: [3; 16] },
                session: 7,
                seq: 8,
                op: ClientOp::Kv(KvOp::put("k", "v")),
            }),
            Packet::SessionReply(ClientReply { nonce: 2, seq: 8, result: ClientResult::UnknownSession }),
            Packet::SessionReply(ClientReply { nonce: 2, seq: 8, result: ClientResult::Full { limit: 5 } }),
            Packet::StatusQuery { nonce: 3, cookie: Cookie { expires: 1, tag: [0; 16] } },
            Packet::MemberRequest {
                nonce: 6,
                cookie: Cookie { expires: 9, tag: [5; 16] },
                op: crate::members::MemberOp::AddLearner { id: 4, addr: "h:1".into() },
            },
            Packet::MemberReply {
                nonce: 6,
                result: crate::members::MemberResult::Refused { error: "no".into(), retry: true },
            },
            Packet::SessionReplyFollowing {
                reply: ClientReply { nonce: 2, seq: 8, result: ClientResult::Done(KvOutput::get(Some("v"))) },
                leader: 3,
                addr: "127.0.0.1:9".into(),
            },
        ]
    }

    #[test]
    fn round_trip_and_every_truncation_fails() {
        for p in samples() {
            let bytes = encode(&p).unwrap();
            assert_eq!(decode(&bytes).unwrap(), p);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} of {p:?}");
            }
        }
    }

    #[test]
    fn huge_length_claims_are_errors() {
        // Peer, msg 0, index 0, count 1, then a byte string claiming 2^62 bytes.
        let bytes = [0u8, 0, 0, 1, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0x40, 1, 2];
        assert!(decode(&bytes).is_err());
    }

    quickcheck::quickcheck! {
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let _ = decode(&bytes);
            true
        }
    }
}
