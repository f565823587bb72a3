//! Fragment reassembly: `raft_udp::fragment::Reassembler` fed genuine
//! fragments (of messages split by a `Fragmenter`) in any order, duplicated or
//! lost, mixed with forged fragments and with time passing.

use arbitrary::{Result, Unstructured};
use raft_udp::counters::Counters;
use raft_udp::fragment::{Fragmenter, Limits, Reassembler};
use raft_udp::packet::{Chunk, Fragment, Packet, decode};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The peer whose fragments are all genuine.
const HONEST: u64 = 1;
/// Peers that send anything.
const FORGERS: [u64; 2] = [2, 3];
/// Datagrams of 256 bytes: messages of more than ~200 bytes are split.
const MAX_DATAGRAM: usize = 256;
const MAX_MESSAGE: usize = 2048;

/// Runs the steps `data` describes. No panic; after every step the buffered
/// bytes stay within the limits (per peer, times the peers); every message
/// returned is within `max_message_bytes`; every message returned for the
/// honest peer is exactly a message it sent (none lost bytes, none spliced
/// from two); a message whose fragments all arrived with nothing evicted in
/// between comes out whole.
pub fn run(data: &[u8]) {
    let _ = steps(&mut Unstructured::new(data));
}

fn steps(u: &mut Unstructured<'_>) -> Result<()> {
    let limits = Limits { timeout: Duration::from_millis(500), ..Limits::for_messages(MAX_MESSAGE) };
    let mut r = Reassembler::new(limits.clone());
    let mut counters = Counters::default();
    let mut now = Instant::now();
    let mut split = Fragmenter::new(MAX_DATAGRAM, u.arbitrary()?);
    // The honest peer's messages by id, and their sealed fragments not yet delivered.
    let mut sent: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut progress: HashMap<u64, Progress> = HashMap::new();
    let mut in_flight: Vec<(u64, Vec<u8>)> = Vec::new();
    let bound = limits.max_buffered_bytes * (1 + FORGERS.len());
    while !u.is_empty() {
        match u.int_in_range(0..=5u8)? {
            0 => {
                // The honest peer sends a message of up to MAX_MESSAGE bytes.
                let len = u.int_in_range(0..=MAX_MESSAGE)?;
                let fill: u8 = u.arbitrary()?;
                let msg: Vec<u8> = (0..len).map(|k| fill.wrapping_add(k as u8)).collect();
                let frames = split.split(&msg);
                let id = match decode_fragment(&frames[0]) {
                    Some(f) => f.msg,
                    None => panic!("the Fragmenter's first datagram does not decode"),
                };
                sent.insert(id, msg);
                in_flight.extend(frames.into_iter().map(|f| (id, f)));
            }
            1 | 2 if !in_flight.is_empty() => {
                // Deliver (or, on 2, duplicate) one in-flight honest fragment.
                let k = u.choose_index(in_flight.len())?;
                let frame = if u.arbitrary()? { in_flight.swap_remove(k).1 } else { in_flight[k].1.clone() };
                let frag = decode_fragment(&frame).unwrap_or_else(|| panic!("a fragment packet does not decode"));
                let (id, index, count) = (frag.msg, frag.index, frag.count);
                let p = progress.entry(id).or_insert_with(|| Progress {
                    delivered: BTreeSet::new(),
                    evictions_before: counters.incomplete,
                    returned: false,
                });
                p.delivered.insert(index);
                let whole = r.accept(HONEST, frag, now, &mut counters);
                if let Some(whole) = &whole {
                    assert_eq!(Some(&whole.to_vec()), sent.get(&id), "reassembled bytes differ from message {id}");
                    p.returned = true;
                } else if !p.returned
                    && p.delivered.len() == count as usize
                    && counters.incomplete == p.evictions_before
                {
                    panic!("every fragment of message {id} arrived, nothing was evicted, and it did not come out");
                }
            }
            3 => {
                // Drop an in-flight fragment.
                if !in_flight.is_empty() {
                    let k = u.choose_index(in_flight.len())?;
                    in_flight.swap_remove(k);
                }
            }
            4 => {
                // A forger sends any fragment.
                let peer = *u.choose(&FORGERS)?;
                let data: &[u8] = u.arbitrary()?;
                let frag =
                    Fragment { msg: u.arbitrary()?, index: u.arbitrary()?, count: u.arbitrary()?, data: Chunk(data) };
                if let Some(whole) = r.accept(peer, frag, now, &mut counters) {
                    assert!(whole.len() <= MAX_MESSAGE, "a {}-byte message was reassembled", whole.len());
                }
            }
            _ => {
                now += Duration::from_millis(u.int_in_range(0..=1000)?);
                r.expire(now, &mut counters);
            }
        }
        assert!(r.buffered_bytes() <= bound, "{} bytes buffered, more than {bound}", r.buffered_bytes());
    }
    Ok(())
}

/// What the honest peer's message has been through.
struct Progress {
    /// Fragment indexes delivered.
    delivered: BTreeSet<u32>,
    /// `Counters::incomplete` when its first fragment arrived.
    evictions_before: u64,
    /// Whether the reassembler returned it.
    returned: bool,
}

/// Decodes the fragment of a packet made by the Fragmenter.
fn decode_fragment(packet: &[u8]) -> Option<Fragment<'_>> {
    match decode(packet).ok()? {
        Packet::Peer(f) => Some(f),
        _ => None,
    }
}
