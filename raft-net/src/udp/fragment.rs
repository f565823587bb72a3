//! Splitting Raft messages into datagrams, and putting them back together.
//!
//! A message whose sealed datagram would exceed the datagram limit is split
//! into [`Fragment`]s that each fit. The receiver keeps, per peer, a bounded
//! number of partly received messages in a bounded number of bytes, and
//! gives up on a message after a timeout or when a newer one needs the
//! room. Losing a fragment therefore loses exactly one message, which Raft
//! treats like any other lost message. Nothing is allocated before the
//! bytes it holds have arrived.

use super::counters::Counters;
use super::packet::{self, Chunk, Fragment, MAX_DATAGRAM, PeerPacket};
use raft_host::secure::DATA_OVERHEAD;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Upper bound on a `Packet::Peer` payload minus its data: the variant tag
/// and the varint encodings of `msg`, `index`, `count` and the data length.
pub const HEADER_BOUND: usize = 1 + 9 + 5 + 5 + 9;

/// Smallest `--max-datagram` accepted.
pub const MIN_DATAGRAM: usize = 256;

/// Data bytes per fragment for datagrams of at most `max_datagram` bytes.
pub fn chunk_len(max_datagram: usize) -> usize {
    max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM) - DATA_OVERHEAD - HEADER_BOUND
}

/// Splits encoded messages into packets that, sealed as transport v2 data
/// frames, make datagrams of at most `max_datagram` bytes.
#[derive(Debug)]
pub struct Fragmenter {
    next_msg: u64,
    chunk: usize,
}

impl Fragmenter {
    /// A splitter for datagrams of at most `max_datagram` bytes (clamped to
    /// [`MIN_DATAGRAM`]..=[`MAX_DATAGRAM`]). Message ids start at `first_msg`;
    /// pick it at random so that a restarted node does not reuse the ids its
    /// peers may still hold fragments of.
    pub fn new(max_datagram: usize, first_msg: u64) -> Fragmenter {
        Fragmenter { next_msg: first_msg, chunk: chunk_len(max_datagram) }
    }

    /// Splits `message` (codec bytes) into one or more encoded
    /// [`PeerPacket`]s, each to be sealed as one datagram.
    pub fn split(&mut self, message: &[u8]) -> Vec<Vec<u8>> {
        let msg = self.next_msg;
        self.next_msg = self.next_msg.wrapping_add(1);
        let count = message.len().div_ceil(self.chunk).max(1);
        let Ok(count32) = u32::try_from(count) else { return Vec::new() };
        let mut out = Vec::with_capacity(count);
        for index in 0..count32 {
            let start = index as usize * self.chunk;
            let data = &message[start.min(message.len())..(start + self.chunk).min(message.len())];
            let p = PeerPacket::Peer(Fragment { msg, index, count: count32, data: Chunk(data) });
            if let Some(payload) = packet::encode(&p) {
                out.push(payload);
            }
        }
        out
    }
}

/// Bounds on what a [`Reassembler`] holds per peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted (its fragments' data added up).
    pub max_message_bytes: usize,
    /// Partly received messages kept per peer; the oldest is given up first.
    pub max_partial_messages: usize,
    /// Bytes of partly received messages kept per peer.
    pub max_buffered_bytes: usize,
    /// Give up on a message whose first fragment arrived this long ago.
    pub timeout: Duration,
}

impl Limits {
    /// Limits for messages of at most `max_message_bytes`: 8 partial messages
    /// and 4 maximal messages' worth of bytes per peer, a 2 s timeout.
    pub fn for_messages(max_message_bytes: usize) -> Limits {
        Limits {
            max_message_bytes,
            max_partial_messages: 8,
            max_buffered_bytes: max_message_bytes.saturating_mul(4),
            timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
struct Partial {
    count: u32,
    parts: BTreeMap<u32, Vec<u8>>,
    bytes: usize,
    started: Instant,
}

#[derive(Debug, Default)]
struct PeerBuffers {
    partial: BTreeMap<u64, Partial>,
    bytes: usize,
    /// Ids of recently completed messages, whose late duplicate fragments are ignored.
    done: VecDeque<u64>,
}

const REMEMBER_DONE: usize = 32;

impl PeerBuffers {
    fn remove(&mut self, msg: u64) -> Option<Partial> {
        let p = self.partial.remove(&msg)?;
        self.bytes -= p.bytes;
        Some(p)
    }

    fn oldest_except(&self, keep: u64) -> Option<u64> {
        self.partial.iter().filter(|(id, _)| **id != keep).min_by_key(|(_, p)| p.started).map(|(id, _)| *id)
    }
}

/// Puts fragments back together, per peer, within [`Limits`].
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    peers: HashMap<u64, PeerBuffers>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(limits: Limits) -> Reassembler {
        Reassembler { limits, peers: HashMap::new() }
    }

    /// Takes one fragment from `peer` (an authenticated, configured peer).
    /// Returns the whole message once its last fragment is in; counts what
    /// it drops in `counters`.
    pub fn accept<'a>(
        &mut self,
        peer: u64,
        frag: Fragment<'a>,
        now: Instant,
        counters: &mut Counters,
    ) -> Option<Cow<'a, [u8]>> {
        let data = frag.data.0;
        if frag.count == 0 || frag.index >= frag.count {
            counters.malformed += 1;
            return None;
        }
        if data.len() > self.limits.max_message_bytes
            || (frag.count as usize).saturating_sub(1) > self.limits.max_message_bytes
        {
            counters.oversize += 1;
            return None;
        }
        if frag.count == 1 {
            return Some(Cow::Borrowed(data));
        }
        let limits = &self.limits;
        let buffers = self.peers.entry(peer).or_default();
        if buffers.done.contains(&frag.msg) {
            return None;
        }
        if !buffers.partial.contains_key(&frag.msg)
            && buffers.partial.len() >= limits.max_partial_messages
            && let Some(old) = buffers.oldest_except(frag.msg)
        {
            buffers.remove(old);
            counters.incomplete += 1;
        }
        let partial = buffers.partial.entry(frag.msg).or_insert_with(|| Partial {
            count: frag.count,
            parts: BTreeMap::new(),
            bytes: 0,
            started: now,
        });
        if partial.count != frag.count {
            buffers.remove(frag.msg);
            counters.malformed += 1;
            return None;
        }
        if partial.parts.contains_key(&frag.index) {
            return None; // a duplicate
        }
        if partial.bytes + data.len() > limits.max_message_bytes {
            buffers.remove(frag.msg);
            counters.oversize += 1;
            return None;
        }
        partial.parts.insert(frag.index, data.to_vec());
        partial.bytes += data.len();
        buffers.bytes += data.len();
        while buffers.bytes > limits.max_buffered_bytes {
            match buffers.oldest_except(frag.msg) {
                Some(old) => {
                    buffers.remove(old);
                    counters.incomplete += 1;
                }
                None => break, // this message alone fits max_message_bytes <= max_buffered_bytes
            }
        }
        let complete = buffers.partial.get(&frag.msg).is_some_and(|p| p.parts.len() == p.count as usize);
        if !complete {
            return None;
        }
        let partial = buffers.remove(frag.msg)?;
        if buffers.done.len() == REMEMBER_DONE {
            buffers.done.pop_front();
        }
        buffers.done.push_back(frag.msg);
        let mut whole = Vec::with_capacity(partial.bytes);
        for part in partial.parts.into_values() {
            whole.extend_from_slice(&part);
        }
        Some(Cow::Owned(whole))
    }

    /// Gives up on messages older than the timeout; counts them.
    pub fn expire(&mut self, now: Instant, counters: &mut Counters) {
        let timeout = self.limits.timeout;
        for buffers in self.peers.values_mut() {
            let stale: Vec<u64> = buffers
                .partial
                .iter()
                .filter(|(_, p)| now.saturating_duration_since(p.started) >= timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                buffers.remove(id);
                counters.incomplete += 1;
            }
        }
    }

    /// Bytes held for partly received messages, over all peers.
    pub fn buffered_bytes(&self) -> usize {
        self.peers.values().map(|b| b.bytes).sum()
    }
}

#[cfg(test)]
mod tests;
