//! Counts of what a node dropped, by reason.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Datagrams (or reassembled messages) a node dropped, by reason. Every
/// count only grows while the node runs; they start at zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Packets that failed authentication: wrong key or incarnation,
    /// altered, addressed to another node, of an unknown kind or length,
    /// and peer traffic in the old (version 1) frame format.
    pub bad_frame: u64,
    /// Data frames refused by the replay window: a counter seen before, or
    /// too far behind the newest.
    pub replayed: u64,
    /// Data frames of a session this node does not hold (from before a
    /// restart of either side, or an expired one).
    pub stale_session: u64,
    /// Authenticated payloads that did not decode as a packet or message.
    pub malformed: u64,
    /// Datagrams over the size limit, and fragmented messages over the
    /// reassembly limits.
    pub oversize: u64,
    /// Peer packets sealed with an id that is not a configured peer.
    pub unknown_peer: u64,
    /// Packets a node never expects (replies sent to a node).
    pub unexpected: u64,
    /// Fragmented messages given up incomplete (timeout or buffer pressure).
    pub incomplete: u64,
}

impl Counters {
    /// The sum of every count.
    pub fn total(&self) -> u64 {
        self.bad_frame
            + self.replayed
            + self.stale_session
            + self.malformed
            + self.oversize
            + self.unknown_peer
            + self.unexpected
            + self.incomplete
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad_frame={} replayed={} stale_session={} malformed={} oversize={} unknown_peer={} unexpected={} incomplete={}",
            self.bad_frame,
            self.replayed,
            self.stale_session,
            self.malformed,
            self.oversize,
            self.unknown_peer,
            self.unexpected,
            self.incomplete
        )
    }
}
