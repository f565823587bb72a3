//! raft-udp: a replicated key-value store over authenticated UDP datagrams.
//!
//! The `raft-udp` binary runs one Raft member per process ([`server`]), and
//! talks to a cluster as a client ([`client`]): one-shot commands, a line
//! protocol on standard input, a status view, a local demo cluster and a
//! load generator ([`cli`]).
//!
//! # Wire format
//!
//! Every datagram, between peers and between clients and nodes, is a frame
//! sealed with HMAC-SHA256 under the cluster key
//! ([`raft_host::ClusterKey::seal`]): `version | sender: u64 | payload | tag`.
//! The payload is one [`packet::Packet`] in the `raft_core::codec` encoding.
//! A peer is the authenticated sender id of a `Peer` packet; replies to peers
//! go to the address configured for that id, never to a datagram's source
//! address. Clients seal with a random 64-bit client id and get their replies
//! at the source address of their request.
//!
//! Raft messages larger than `--max-datagram` are split into fragments
//! ([`fragment`]) and reassembled in bounded buffers; a lost fragment loses
//! only its message, which Raft retransmits.
//!
//! # What a node promises
//!
//! * A client is told `ok` only after its command is committed (durable on a
//!   majority, this node included) and applied, so an acknowledged write
//!   survives `kill -9` of any minority, or of every node.
//! * Gets are ReadIndex reads (the leader confirms it still leads with a
//!   heartbeat round a majority answers, then reads its store once it has
//!   applied that far): linearizable, and no log entry, no fsync.
//! * A client registers a session through the log (its id is the index of
//!   the registration) and retries one command with the same (session,
//!   sequence number) across nodes; the key-value store applies it at most
//!   once. The leader answers a command at or below its session's applied
//!   sequence number from the session, without proposing anything, so a
//!   replayed request adds no log entry ([`server`]).
//! * Sessions expire by log time (the leader's clock, written into entries),
//!   and the session table is bounded (`--session-timeout`,
//!   `--max-session-bytes`; the sessions idle the longest go first). A
//!   command in an expired session gets a clear answer, and the client
//!   registers again. `status` shows the table's size.
//! * A node answers an address with more bytes than it received only once
//!   the address proved it receives there, with a cookie round trip
//!   ([`cookie`]): a spoofed source address cannot turn a node into an
//!   amplifier.
//! * Any value that can be stored can be read back: values are limited to
//!   [`packet::MAX_VALUE_BYTES`], so a get's reply fits one datagram. The
//!   leader's backlog of uncommitted client bytes is bounded
//!   (`--max-uncommitted-bytes`); beyond it commands are refused, clearly.
//! * Datagrams that fail authentication, do not decode, claim to come from an
//!   unknown peer, or break the reassembly limits are dropped and counted
//!   ([`counters::Counters`], shown by `raft-udp status`); none can panic the
//!   node or make it allocate more than its limits.
//!
//! Authentication does not stop replays: an old authenticated datagram sent
//! again is accepted. Raft tolerates duplicated messages, and client
//! sessions, registration ids and cookies make a replayed client request
//! cost no log entry; a request captured and held back is refused once its
//! cookie (two minutes) or its session has expired.

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod cookie;
pub mod keyfile;
pub mod members;
pub mod packet;
pub mod server;
pub mod session_packet;

pub use raft_net::udp::{counters, fragment};

/// A random `u64` from the operating system's generator. Should that fail,
/// a mix of the clock and the process id (good enough for what it is used
/// for: client ids, message ids and election-timeout seeds).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
        }
    }
}
