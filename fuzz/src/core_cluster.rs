//! Three `raft_core::Node`s whose every event the input decides: which
//! message is delivered, duplicated or lost, whose timer fires, which write
//! becomes durable, who proposes, reads, compacts, crashes or restarts. The
//! simulator's [`Checker`] checks Raft's invariants (election and vote
//! safety, log matching, state machine safety, leader completeness, apply
//! order, commit monotonicity) after every step, and every read is answered
//! at most once, with an index covering everything applied anywhere before
//! it started (a linearizable read).
//!
//! Messages are the nodes' own, so any peer's message can arrive at any
//! time, any number of times, or never: everything an asynchronous network
//! and crash-recovery nodes can do. (A forged message is a different
//! threat: Raft assumes peers follow the protocol, so the invariants could
//! not be checked; the `codec` and `frame` targets cover what the network
//! can send.)

use arbitrary::{Result, Unstructured};
use raft_core::codec::{decode_message, encode_message};
use raft_core::{
    Config, Duration, Entry, Event, Instant, LogIndex, Node, NodeId, Output, PersistToken, ReadId, Restored, Role,
    Term, Write,
};
use raft_tests::sim::SimRng;
use raft_tests::sim::disk::{Disk, DiskConfig};
use raft_tests::sim::invariants::{Checker, Violation};
use std::collections::HashMap;
use std::collections::VecDeque;

const NODES: usize = 3;
/// Messages in flight beyond this are lost (oldest first).
const MAX_IN_FLIGHT: usize = 256;

/// A message in flight, as the bytes on the wire.
struct Packet {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

struct Slot {
    node: Option<Node>,
    disk: Disk,
    /// Tokens of the writes issued and not yet durable, oldest first.
    pending: VecDeque<PersistToken>,
    lifetime: u32,
}

/// The cluster the input drives.
struct Harness {
    slots: Vec<Slot>,
    net: Vec<Packet>,
    checker: Checker,
    now: Instant,
    proposals: u64,
    reached: Reached,
    /// Reads accepted and not answered yet: `(node, read)` -> the highest
    /// index applied anywhere when the read started, which its answer
    /// must cover (linearizability).
    reads: HashMap<(usize, u64), LogIndex>,
    next_read: u64,
    /// Messages sent, if recording.
    record: Option<Vec<Vec<u8>>>,
    /// Unused by the input (it decides when writes complete); `Disk::issue` wants one.
    disk_rng: SimRng,
}

/// Runs the events `data` describes; panics on a broken invariant, a
/// broken write contract, or a node that panics.
pub fn run(data: &[u8]) {
    explore(data);
}

/// How far a run got: what the tests check the harness reaches, and what
/// picks the seed corpus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// Elections won.
    pub leaders: u64,
    /// The highest index applied anywhere.
    pub applied: u64,
    /// Snapshots restored from a leader (or at restart).
    pub restored: u64,
    /// Reads answered with an index.
    pub reads: u64,
    /// Restarts.
    pub restarts: u64,
}

/// [`run`], returning how far it got.
pub fn explore(data: &[u8]) -> Reached {
    let mut h = Harness::new();
    let _ = h.steps(&mut Unstructured::new(data));
    h.reached
}

/// Every distinct kind of message (by its first bytes) the nodes sent
/// during the run of `data`: real messages, for the codec's seed corpus.
pub fn messages_sent(data: &[u8]) -> Vec<Vec<u8>> {
    let mut h = Harness::new();
    h.record = Some(Vec::new());
    let _ = h.steps(&mut Unstructured::new(data));
    h.record.unwrap_or_default()
}

impl Harness {
    fn new() -> Harness {
        let mut h = Harness {
            slots: (0..NODES)
                .map(|_| Slot { node: None, disk: Disk::new(), pending: VecDeque::new(), lifetime: 0 })
                .collect(),
            net: Vec::new(),
            checker: Checker::new(NODES),
            now: Instant::ZERO,
            proposals: 0,
            reached: Reached::default(),
            reads: HashMap::new(),
            next_read: 0,
            record: None,
            disk_rng: SimRng::new(0),
        };
        for i in 0..NODES {
            h.start(i, Restored::fresh());
        }
        h
    }

    fn steps(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        while !u.is_empty() {
            let i = u.choose_index(NODES)?;
            match u.arbitrary::<u8>()? {
                // The natural next event is the most common: the oldest
                // write anywhere becomes durable, else the oldest message arrives.
                0..=109 => self.next_event(),
                110..=139 if !self.net.is_empty() => {
                    let k = u.choose_index(self.net.len())?;
                    let keep = u.ratio(1, 4)?; // a duplicate: it stays in flight
                    self.deliver(k, !keep);
                }
                140..=149 if !self.net.is_empty() => {
                    let k = u.choose_index(self.net.len())?;
                    self.net.remove(k);
                }
                150..=169 => self.persist(i),
                170..=189 => self.timeout(i),
                190..=214 => {
                    let n = u.int_in_range(1..=3u8)?;
                    self.propose(i, n);
                }
                215..=229 => self.now += Duration::from_millis(u.int_in_range(1..=300)?),
                230..=237 => self.compact(i),
                238..=244 => self.read(i),
                245..=255 => {
                    if self.slots[i].node.is_some() {
                        self.crash(i);
                    } else {
                        self.restart(i);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check(&self, r: std::result::Result<(), Violation>) {
        if let Err(v) = r {
            panic!("invariant broken at {:?}: {v}", self.now);
        }
    }

    fn start(&mut self, i: usize, restored: Restored) {
        let mut config = Config::new(NodeId(i as u64 + 1), (1..=NODES as u64).map(NodeId));
        config.seed = (i as u64 + 1) << 32 | u64::from(self.slots[i].lifetime);
        // Small messages: entries and snapshots are split across several.
        config.max_entry_bytes = 256;
        config.max_message_bytes = 1024;
        match Node::new(config, restored, self.now) {
            Ok(node) => self.slots[i].node = Some(node),
            Err(e) => panic!("n{} does not restart from its own disk: {e}", i + 1),
        }
        self.drain(i);
    }

    fn crash(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.node = None;
        slot.disk.crash();
        slot.pending.clear();
        self.reads.retain(|&(node, _), _| node != i); // a crash forgets its reads
        self.net.retain(|p| p.to != i); // nothing reaches a crashed node
    }

    fn restart(&mut self, i: usize) {
        self.crash(i);
        self.slots[i].lifetime += 1;
        self.reached.restarts += 1;
        self.checker.on_restart(i);
        let restored = self.slots[i].disk.restored();
        self.start(i, restored);
    }

    fn next_event(&mut self) {
        match (0..NODES).find(|&i| !self.slots[i].pending.is_empty()) {
            Some(i) => self.persist(i),
            None => self.deliver(0, true),
        }
    }

    fn deliver(&mut self, k: usize, remove: bool) {
        let Some(p) = self.net.get(k) else { return };
        let (from, to) = (p.from, p.to);
        let msg =
            decode_message(&p.bytes).unwrap_or_else(|e| panic!("a node sent a message that does not decode: {e}"));
        if remove {
            self.net.remove(k);
        }
        if let Some(node) = self.slots[to].node.as_mut() {
            node.handle_message(self.now, NodeId(from as u64 + 1), msg);
            self.drain(to);
        }
    }

    fn timeout(&mut self, i: usize) {
        let Some(node) = self.slots[i].node.as_mut() else { return };
        if let Some(at) = node.poll_timeout() {
            self.now = self.now.max(at);
        }
        node.handle_timeout(self.now);
        self.drain(i);
    }

    /// The node's oldest pending write becomes durable.
    fn persist(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let Some(token) = slot.pending.pop_front() else { return };
        let write = match slot.disk.complete(token) {
            None => return,
            Some(Ok(w)) => w,
            Some(Err(e)) => panic!("n{} broke the Write contract: {e}", i + 1),
        };
        let id = NodeId(i as u64 + 1);
        let r = self.checker.on_durable(i, id, &write);
        self.check(r);
        if let Some(first) = write.entries.first() {
            let prev = self.slots[i].disk.durable().term_at(LogIndex(first.index.0 - 1));
            let prev = prev.unwrap_or_else(|| panic!("n{id} stored i{} without the entry before it", first.index));
            let r = self.checker.on_written(id, &write.entries, prev);
            self.check(r);
        }
        if let Some(node) = self.slots[i].node.as_mut() {
            node.handle_persisted(self.now, token);
        }
        self.drain(i);
    }

    fn propose(&mut self, i: usize, n: u8) {
        let Some(node) = self.slots[i].node.as_mut() else { return };
        for _ in 0..n {
            self.proposals += 1;
            let _ = node.propose(self.now, format!("p{}", self.proposals).as_str());
        }
        self.drain(i);
    }

    /// The host starts a linearizable read at the node.
    fn read(&mut self, i: usize) {
        let Some(node) = self.slots[i].node.as_mut() else { return };
        self.next_read += 1;
        let id = self.next_read;
        if node.read_index(self.now, ReadId(id)).is_ok() {
            self.reads.insert((i, id), self.checker.max_applied());
        }
        self.drain(i);
    }

    fn read_done(&mut self, i: usize, id: ReadId, index: Option<LogIndex>) {
        let Some(floor) = self.reads.remove(&(i, id.0)) else {
            panic!("n{} answered read {} that it did not accept or already answered", i + 1, id.0);
        };
        if let Some(index) = index {
            self.reached.reads += 1;
            assert!(
                index >= floor,
                "n{} answered read {} with i{index}, but i{floor} was applied before the read started",
                i + 1,
                id.0
            );
        }
    }

    /// The host snapshots its state machine at the last applied index.
    fn compact(&mut self, i: usize) {
        let Some(node) = self.slots[i].node.as_mut() else { return };
        let applied = node.last_applied();
        if applied > node.snapshot_index() {
            let r = node.compact(self.now, applied, format!("state at {applied}").as_str());
            r.unwrap_or_else(|e| panic!("n{} refused a snapshot at its applied index {applied}: {e}", i + 1));
            self.drain(i);
        }
    }

    /// Drains node `i`'s outputs and acts on each, then checks its invariants.
    fn drain(&mut self, i: usize) {
        let id = NodeId(i as u64 + 1);
        let mut outs = Vec::new();
        if let Some(node) = self.slots[i].node.as_mut() {
            while let Some(o) = node.poll_output() {
                outs.push(o);
            }
        }
        for o in outs {
            match o {
                Output::Persist(p) => self.issue(i, p.token, p.write),
                Output::Send(m) => {
                    let to = usize::try_from(m.to.0).ok().and_then(|t| t.checked_sub(1)).filter(|&t| t < NODES);
                    let to = to.unwrap_or_else(|| panic!("n{id} sent to a non-member {}", m.to));
                    if self.net.len() == MAX_IN_FLIGHT {
                        self.net.remove(0);
                    }
                    let bytes = encode_message(&m.message);
                    if let Some(rec) = self.record.as_mut() {
                        // bincode: the term's varint, then the body's variant tag.
                        let kind = |b: &[u8]| {
                            let term_len = match b.first() {
                                Some(0..=250) => 1,
                                Some(251) => 3,
                                Some(252) => 5,
                                _ => 9,
                            };
                            b.get(term_len).copied()
                        };
                        if !rec.iter().any(|r| kind(r) == kind(&bytes)) {
                            rec.push(bytes.clone());
                        }
                    }
                    self.net.push(Packet { from: i, to, bytes });
                }
                Output::Apply(entries) => self.apply(i, &entries),
                Output::RestoreSnapshot(snap) => {
                    self.reached.restored += 1;
                    let r = self.checker.on_restore_snapshot(i, id, snap.meta);
                    self.check(r);
                }
                Output::Read { id, result } => self.read_done(i, id, result.ok()),
                Output::Forwarded { .. } => {} // the harness forwards no proposal
                Output::SendSnapshotChunk { .. } | Output::SaveSnapshotChunk { .. } => {
                    panic!("n{i}: a stored-snapshot output, but the harness keeps snapshots in the core")
                }
                Output::Event(Event::RoleChanged { role: Role::Leader, term, .. }) => {
                    self.reached.leaders += 1;
                    if let Some(node) = self.slots[i].node.as_ref() {
                        let r = self.checker.on_leader(node, term);
                        self.check(r);
                    }
                }
                Output::Event(_) => {}
            }
        }
        if let Some(node) = self.slots[i].node.as_ref() {
            let r = self.checker.after_step(i, node);
            self.check(r);
        }
    }

    fn issue(&mut self, i: usize, token: PersistToken, write: Write) {
        let id = NodeId(i as u64 + 1);
        if let (Some(first), Some(node)) = (write.entries.first(), self.slots[i].node.as_ref()) {
            let prev = node.log_term(LogIndex(first.index.0 - 1));
            let prev = prev.unwrap_or_else(|| panic!("n{id} wrote i{} without the entry before it", first.index));
            let r = self.checker.on_written(id, &write.entries, prev);
            self.check(r);
        }
        let slot = &mut self.slots[i];
        slot.pending.push_back(token);
        slot.disk.issue(self.now, token, write, &DiskConfig::default(), &mut self.disk_rng);
    }

    fn apply(&mut self, i: usize, entries: &[Entry]) {
        let id = NodeId(i as u64 + 1);
        let term = self.slots[i].node.as_ref().map_or(Term(0), Node::term);
        let r = self.checker.on_apply(i, id, term, entries);
        self.check(r);
        if let Some(last) = entries.last() {
            self.reached.applied = self.reached.applied.max(last.index.0);
        }
    }
}
