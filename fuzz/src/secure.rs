//! Transport v2 (`raft_host::secure`) between two nodes on a wire the
//! attacker owns: handshakes, rekeying, a restart, and every packet ever
//! sent kept by the attacker to be delivered again, reflected to its
//! sender, redirected to a third node of the same cluster (also with its
//! header rewritten to name that node), delivered with one bit flipped, or
//! mixed with raw fuzz bytes; time passes in jumps.
//!
//! Checked after every step: no panic; every payload that opens was sealed
//! by the other node for this one, with the same bytes, and opens once
//! (the replay window); a frame reflected, redirected, altered, raw, or
//! captured before the receiver restarted never opens; an altered or
//! misdirected handshake message is refused.

use arbitrary::{Result, Unstructured};
use raft_core::{Duration, Instant, NodeId};
use raft_host::ClusterKey;
use raft_host::secure::{
    FrameKind, HEADER_LEN, Handled, Incarnation, KeyFile, Link, SecureConfig, SeededEntropy, peek,
};
use std::collections::{BTreeMap, BTreeSet};

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
/// A third member: holds the key, has a link with A, and should receive nothing.
const C: NodeId = NodeId(3);

/// Runs the steps `data` describes (see the module documentation).
pub fn run(data: &[u8]) {
    let _ = steps(&mut Unstructured::new(data));
}

/// A packet the attacker captured.
struct Captured {
    from: NodeId,
    bytes: Vec<u8>,
    /// B's restarts before it was sent.
    b_epoch: u32,
}

struct World {
    keys: KeyFile,
    a: Link,
    b: Link,
    c: Link,
    rng: SeededEntropy,
    now: Instant,
    wire: Vec<Captured>,
    b_epoch: u32,
    /// Payloads sealed, by their tag: (sender, bytes).
    sealed: BTreeMap<u64, (NodeId, Vec<u8>)>,
    /// (receiver, tag) of every payload opened.
    opened: BTreeSet<(NodeId, u64)>,
    next_tag: u64,
    /// Key exchanges left for this input (they dominate the cost of a run).
    exchanges: u32,
}

/// Handshake steps (initiations and handshake messages handled) per input.
const MAX_EXCHANGES: u32 = 12;

impl World {
    fn link(&mut self, id: NodeId) -> &mut Link {
        match id {
            A => &mut self.a,
            B => &mut self.b,
            _ => &mut self.c,
        }
    }

    fn send(&mut self, from: NodeId, bytes: Vec<u8>) {
        self.wire.push(Captured { from, bytes, b_epoch: self.b_epoch });
    }

    /// Delivers `bytes` to node `to`; returns the payload of a data frame
    /// that opened. Handshake answers go back on the wire.
    fn deliver(&mut self, to: NodeId, bytes: &[u8]) -> (bool, Option<Vec<u8>>) {
        let now = self.now;
        match peek(bytes).map(|h| h.kind) {
            Ok(FrameKind::Initiation | FrameKind::Response) => {
                if self.exchanges == 0 {
                    return (false, None);
                }
                self.exchanges -= 1;
                let mut out = Vec::new();
                let mut rng = self.rng.clone();
                let handled = self.link(to).handle_handshake(bytes, now, &mut rng, &mut out);
                self.rng = rng;
                match handled {
                    Ok(Handled::Responded) => {
                        self.send(to, out);
                        (true, None)
                    }
                    Ok(Handled::Established) => {
                        let mut confirm = Vec::new();
                        if self.link(to).seal(&[], now, &mut confirm).is_ok() {
                            self.send(to, confirm);
                        }
                        (true, None)
                    }
                    Err(_) => (false, None),
                }
            }
            _ => match self.link(to).open(bytes, now) {
                Ok(p) => (true, Some(p)),
                Err(_) => (false, None),
            },
        }
    }

    /// Checks a payload `to` opened from `from`.
    fn check_opened(&mut self, to: NodeId, from: NodeId, payload: &[u8]) {
        let Some(tag) = payload.first_chunk::<8>().map(|t| u64::from_le_bytes(*t)) else {
            assert!(payload.is_empty(), "a payload shorter than its tag opened");
            return;
        };
        let Some((sender, bytes)) = self.sealed.get(&tag) else { panic!("{to} opened a payload nobody sealed") };
        assert_eq!(*sender, from, "{to} opened a payload of {sender} as {from}'s");
        assert_eq!(bytes.as_slice(), payload, "{to} opened altered bytes");
        assert!(self.opened.insert((to, tag)), "{to} opened payload {tag} twice");
    }
}

fn other(id: NodeId) -> NodeId {
    if id == A { B } else { A }
}

fn steps(u: &mut Unstructured<'_>) -> Result<()> {
    let keys = KeyFile::new(ClusterKey::from_bytes([7; 32]), Incarnation::from_bytes([1; 16]));
    let cfg = |me| SecureConfig::new(&keys, me);
    let mut w = World {
        a: Link::new(&cfg(A), B),
        b: Link::new(&cfg(B), A),
        c: Link::new(&cfg(C), A),
        keys: keys.clone(),
        rng: SeededEntropy::new(u.arbitrary()?),
        now: Instant::ZERO,
        wire: Vec::new(),
        b_epoch: 0,
        sealed: BTreeMap::new(),
        opened: BTreeSet::new(),
        next_tag: 0,
        exchanges: MAX_EXCHANGES,
    };
    let steps = u.int_in_range(0..=96u32)?;
    for _ in 0..steps {
        let side = if u.arbitrary()? { A } else { B };
        match u.int_in_range(0..=8u8)? {
            0 if w.exchanges > 0 => {
                // A handshake (a new one, or a rekey).
                w.exchanges -= 1;
                let mut out = Vec::new();
                let mut rng = w.rng.clone();
                let now = w.now;
                if w.link(side).initiate(now, &mut rng, &mut out).is_ok() {
                    w.send(side, out);
                }
                w.rng = rng;
            }
            1 | 2 => {
                // A payload: its tag, then fuzz bytes.
                let tag = w.next_tag;
                w.next_tag += 1;
                let mut payload = tag.to_le_bytes().to_vec();
                let len = u.int_in_range(0..=48usize)?;
                payload.extend_from_slice(u.bytes(len)?);
                let mut out = Vec::new();
                let now = w.now;
                if w.link(side).seal(&payload, now, &mut out).is_ok() {
                    w.sealed.insert(tag, (side, payload));
                    w.send(side, out);
                }
            }
            3 | 4 if !w.wire.is_empty() => {
                // Deliver a captured packet to its addressee: the first
                // time, or again.
                let k = u.choose_index(w.wire.len())?;
                let (from, bytes, epoch) = (w.wire[k].from, w.wire[k].bytes.clone(), w.wire[k].b_epoch);
                if from == C {
                    continue;
                }
                let to = other(from);
                let (_, opened) = w.deliver(to, &bytes);
                if let Some(p) = opened {
                    assert!(!(to == B && epoch < w.b_epoch), "B opened a frame captured before it restarted");
                    w.check_opened(to, from, &p);
                }
            }
            5 if !w.wire.is_empty() => {
                // Reflect to its sender, redirect to C, or rewrite its
                // receiver to C and redirect.
                let k = u.choose_index(w.wire.len())?;
                let (from, mut bytes) = (w.wire[k].from, w.wire[k].bytes.clone());
                let to = match u.int_in_range(0..=2u8)? {
                    0 => from,
                    1 => C,
                    _ => {
                        if bytes.len() >= HEADER_LEN {
                            bytes[9..17].copy_from_slice(&C.0.to_le_bytes());
                        }
                        C
                    }
                };
                if to == from && from == C {
                    continue;
                }
                let (accepted, opened) = w.deliver(to, &bytes);
                assert!(opened.is_none(), "{to} opened a frame {from} sent to another node");
                assert!(!accepted, "{to} accepted a packet {from} sent to another node");
            }
            6 if !w.wire.is_empty() => {
                // One bit flipped.
                let k = u.choose_index(w.wire.len())?;
                let (from, mut bytes) = (w.wire[k].from, w.wire[k].bytes.clone());
                if from == C || bytes.is_empty() {
                    continue;
                }
                let bit = u.choose_index(bytes.len() * 8)?;
                bytes[bit / 8] ^= 1 << (bit % 8);
                let (accepted, opened) = w.deliver(other(from), &bytes);
                assert!(!accepted && opened.is_none(), "an altered packet was accepted");
            }
            7 => {
                // Raw bytes, as anything.
                let len = u.int_in_range(0..=128usize)?;
                let bytes = u.bytes(len)?.to_vec();
                let (_, opened) = w.deliver(side, &bytes);
                assert!(opened.is_none(), "raw bytes opened");
            }
            8 => {
                // Time passes (up to past a session's reject age), or B restarts.
                if u.arbitrary()? {
                    let ms = u.int_in_range(0..=200_000u64)?;
                    w.now += Duration::from_millis(ms);
                } else {
                    w.b = Link::new(&SecureConfig::new(&w.keys, B), A);
                    w.b_epoch += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
