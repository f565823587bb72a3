//! A replicated key-value layer on top of the simulator: every node feeds a
//! [`KvStore`] from its apply stream, and answers the clients that proposed
//! the commands it applies.
//!
//! [`KvSim::install`] sets the cluster's apply hook. Each node lifetime gets
//! a fresh store (a restart replays the log from index 1, or from a restored
//! snapshot); an [`Applied::Snapshot`] restore replaces the store with
//! [`KvStore::restore`] of the snapshot's data, so snapshots must be taken
//! with [`KvSim::snapshot_data`].
//!
//! Replies model a real server: a node that accepted a proposal remembers
//! "index `i` of this lifetime is client `c`'s command `s`" ([`KvSim::expect`]).
//! When it applies index `i` it answers with the store's output if the entry
//! is that command, or with [`ReplyResult::Replaced`] if another entry was
//! committed there (the node lost its leadership). A crash forgets every
//! pending request. Replies are queued ([`KvSim::take_replies`]); what the
//! network does to them is up to the client model ([`super::clients`]).
//!
//! Reads need no log entry: [`KvSim::read`] starts a ReadIndex read at a node
//! (`Node::read_index`); once the node reports the read index, it answers
//! from its own store as soon as that store has applied the index (at once
//! if it already has). A failed read is answered with
//! [`ReplyResult::ReadFailed`]; a crash forgets the node's reads.
//!
//! ```
//! use raft_core::{Duration, LogIndex};
//! use raft_host::kv::{KvCommand, KvOp, KvOutput, encode_command};
//! use raft_tests::sim::kv::{KvSim, ReplyResult};
//! use raft_tests::sim::{Cluster, SimConfig};
//!
//! let mut c = Cluster::new(SimConfig::new(3, 7));
//! let kv = KvSim::install(&mut c);
//! let leader = c.check_one_leader();
//! let cmd = KvCommand { client: 9, seq: 1, op: KvOp::put("x", "1") };
//! let index = c.propose(leader, encode_command(&cmd)).unwrap();
//! kv.expect(&c, leader, index, 9, 1);
//! c.run_for(Duration::from_millis(100));
//! let replies = kv.take_replies();
//! assert_eq!(replies.len(), 1);
//! assert_eq!(replies[0].result, ReplyResult::Output(KvOutput::Put));
//! assert!(c.ids().into_iter().all(|id| kv.get_local(id, "x").as_deref() == Some("1")));
//! ```

use super::cluster::{Applied, Cluster, ReadDone};
use raft_core::{Instant, LogIndex, NodeId, Payload, ReadError, ReadId};
use raft_host::StateMachine;
use raft_host::kv::{KvError, KvOutput, KvStore, decode_command};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

/// What a node answers to a client whose command it proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyResult {
    /// The command was committed at the expected index and applied: the
    /// store's output (a retry already applied earlier gets the cached output).
    Output(KvOutput),
    /// The command was committed and refused by the store (e.g. a stale sequence number).
    Error(KvError),
    /// Another entry was committed at the index: the node lost its
    /// leadership before the command committed. The client should retry
    /// elsewhere (the command may still be committed at another index).
    Replaced,
    /// A read ([`KvSim::read`]) got no read index; nothing was read. The
    /// client should retry (at the hinted leader, if any).
    ReadFailed(ReadError),
}

/// One answer of a node to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// When the node applied the index (virtual time).
    pub at: Instant,
    /// The answering node.
    pub node: NodeId,
    /// The index the node had accepted the command at.
    pub index: LogIndex,
    /// The client.
    pub client: u64,
    /// The command's sequence number.
    pub seq: u64,
    /// The answer.
    pub result: ReplyResult,
}

/// Counters of the KV layer over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStats {
    /// Command entries applied, summed over nodes and lifetimes.
    pub commands_applied: u64,
    /// Committed indexes holding a `(client, seq)` already committed at a
    /// lower index (retries that reached the log twice; each must be applied once).
    pub duplicate_entries: u64,
    /// Snapshots restored into a store.
    pub snapshots_restored: u64,
    /// Replies produced (before any network loss).
    pub replies: u64,
    /// Reads started with [`KvSim::read`] that a node accepted.
    pub reads_started: u64,
    /// Reads answered with a value (served from a store).
    pub reads_served: u64,
    /// Reads that failed (no read index).
    pub reads_failed: u64,
}

/// A read: who asked, and for what.
#[derive(Clone, Debug)]
struct ReadRequest {
    client: u64,
    seq: u64,
    key: String,
}

#[derive(Debug, Default)]
struct NodeKv {
    lifetime: u32,
    store: KvStore,
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<NodeId, NodeKv>,
    /// `(node, lifetime, index)` -> `(client, seq)` of proposals awaiting their apply.
    pending: HashMap<(NodeId, u32, LogIndex), (u64, u64)>,
    /// `(node, lifetime, read id)` -> reads awaiting their read index.
    reads: HashMap<(NodeId, u32, u64), ReadRequest>,
    /// Reads with a read index, waiting for the node's store to apply it.
    reads_ready: Vec<(NodeId, u32, LogIndex, ReadRequest)>,
    /// The next read id (unique over the run, so never reused on a node).
    next_read: u64,
    replies: VecDeque<Reply>,
    /// Highest committed index looked at for duplicate counting.
    scanned: LogIndex,
    /// Every `(client, seq)` seen in the committed log.
    committed: HashSet<(u64, u64)>,
    stats: KvStats,
}

/// The KV layer of a simulated cluster: one [`KvStore`] per node, fed by
/// the apply hook. Cheap to clone (shared state); not thread-safe, like the
/// simulator.
#[derive(Clone, Debug, Default)]
pub struct KvSim {
    state: Rc<RefCell<State>>,
}

impl KvSim {
    /// A KV layer with no node state yet. Feed it with [`KvSim::on_apply`]
    /// (or use [`KvSim::install`]).
    pub fn new() -> KvSim {
        KvSim::default()
    }

    /// Creates a KV layer and installs it as `c`'s apply hook (replacing any
    /// other hook; to combine hooks, install your own that calls
    /// [`KvSim::on_apply`]). Install it before the first entry is applied.
    pub fn install(c: &mut Cluster) -> KvSim {
        let kv = KvSim::new();
        let hook = kv.clone();
        c.set_apply_hook(Some(Box::new(move |now, id, lifetime, applied| hook.on_apply(now, id, lifetime, applied))));
        let hook = kv.clone();
        c.set_read_hook(Some(Box::new(move |done| hook.on_read(done))));
        kv
    }

    /// Starts a linearizable read of `key` for `(client, seq)` at `node`
    /// through `Node::read_index` (no log entry). The node answers with the
    /// value in its store once the store has applied the read index, or with
    /// [`ReplyResult::ReadFailed`]. An `Err` is the node's immediate refusal
    /// (no reply follows).
    pub fn read(&self, c: &mut Cluster, node: NodeId, client: u64, seq: u64, key: &str) -> Result<(), ReadError> {
        let lifetime = c.lifetime(node);
        let id = {
            let mut st = self.state.borrow_mut();
            st.next_read += 1;
            let id = st.next_read;
            st.reads.insert((node, lifetime, id), ReadRequest { client, seq, key: key.to_owned() });
            id
        };
        let r = c.read_index(node, ReadId(id));
        let mut st = self.state.borrow_mut();
        match r {
            Ok(()) => st.stats.reads_started += 1,
            Err(_) => {
                st.reads.remove(&(node, lifetime, id));
            }
        }
        r
    }

    /// Feeds one read outcome (the read hook [`KvSim::install`] sets).
    pub fn on_read(&self, done: &ReadDone) {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let Some(req) = st.reads.remove(&(done.node, done.lifetime, done.id.0)) else {
            return; // not a KV read
        };
        match &done.result {
            Ok(index) => {
                st.reads_ready.push((done.node, done.lifetime, *index, req));
                Self::serve_reads(st, done.at, done.node);
            }
            Err(e) => {
                st.stats.reads_failed += 1;
                st.stats.replies += 1;
                let result = ReplyResult::ReadFailed(e.clone());
                let (client, seq) = (req.client, req.seq);
                st.replies.push_back(Reply { at: done.at, node: done.node, index: LogIndex(0), client, seq, result });
            }
        }
    }

    /// Answers the node's reads whose index its store has applied.
    fn serve_reads(st: &mut State, now: Instant, id: NodeId) {
        let Some(node) = st.nodes.get(&id) else {
            return;
        };
        let (lifetime, applied) = (node.lifetime, node.store.last_applied());
        let mut k = 0;
        while k < st.reads_ready.len() {
            let (n, l, index, _) = &st.reads_ready[k];
            if *n != id || *l != lifetime || *index > applied {
                k += 1;
                continue;
            }
            let (_, _, index, req) = st.reads_ready.swap_remove(k);
            let value = node.store.get_local(&req.key).map(str::to_owned);
            st.stats.reads_served += 1;
            st.stats.replies += 1;
            let result = ReplyResult::Output(KvOutput::Get(value));
            st.replies.push_back(Reply { at: now, node: id, index, client: req.client, seq: req.seq, result });
        }
    }

    /// Feeds one apply-hook call: applies entries to the node's store (a new
    /// lifetime starts from an empty store) or restores a snapshot, and
    /// answers the pending requests of those indexes.
    ///
    /// Panics if the stream has a gap or a snapshot's data is not a
    /// [`KvStore`] snapshot ending at the snapshot's index.
    pub fn on_apply(&self, now: Instant, id: NodeId, lifetime: u32, applied: Applied<'_>) {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let node = st.nodes.entry(id).or_default();
        if node.lifetime != lifetime {
            *node = NodeKv { lifetime, store: KvStore::new() };
            st.pending.retain(|&(n, l, _), _| n != id || l == lifetime);
            st.reads.retain(|&(n, l, _), _| n != id || l == lifetime);
            st.reads_ready.retain(|&(n, l, _, _)| n != id || l == lifetime);
        }
        match applied {
            Applied::Snapshot(snap) => {
                let store = KvStore::restore(&snap.data).unwrap_or_else(|e| {
                    panic!("n{id} restored a snapshot that is not a KvStore snapshot ({e}); take snapshots with KvSim::snapshot_data")
                });
                assert_eq!(
                    store.last_applied(),
                    snap.meta.index,
                    "n{id}: the KV snapshot's last applied index differs from the snapshot's index"
                );
                node.store = store;
                st.stats.snapshots_restored += 1;
                // Requests at indexes the snapshot covers will never be answered.
                st.pending.retain(|&(n, l, i), _| n != id || l != lifetime || i > snap.meta.index);
            }
            Applied::Entries(entries) => {
                for e in entries {
                    let expected = LogIndex(node.store.last_applied().0 + 1);
                    assert_eq!(e.index, expected, "n{id} lifetime {lifetime}: apply stream gap");
                    let cmd = match &e.payload {
                        Payload::Command(b) => decode_command(b).ok(),
                        _ => None,
                    };
                    let out = match &cmd {
                        Some(cmd) => Some(node.store.apply_command(e.index, cmd)),
                        None => node.store.apply_entry(e),
                    };
                    if matches!(e.payload, Payload::Command(_)) {
                        st.stats.commands_applied += 1;
                    }
                    let key = cmd.as_ref().map(|c| (c.client, c.seq));
                    if e.index > st.scanned {
                        st.scanned = e.index;
                        if let Some(key) = key
                            && !st.committed.insert(key)
                        {
                            st.stats.duplicate_entries += 1;
                        }
                    }
                    let Some((client, seq)) = st.pending.remove(&(id, lifetime, e.index)) else {
                        continue;
                    };
                    let result = match (key, out) {
                        (Some(k), Some(Ok(o))) if k == (client, seq) => ReplyResult::Output(o),
                        (Some(k), Some(Err(err))) if k == (client, seq) => ReplyResult::Error(err),
                        _ => ReplyResult::Replaced,
                    };
                    st.stats.replies += 1;
                    st.replies.push_back(Reply { at: now, node: id, index: e.index, client, seq, result });
                }
            }
        }
        Self::serve_reads(st, now, id);
    }

    /// Registers that `node` accepted `(client, seq)` at `index` just now (in
    /// its current lifetime): it answers when it applies that index.
    ///
    /// Panics if the node is down or already applied `index` (the simulator's
    /// disk is asynchronous, so a proposal is never applied within `propose`).
    pub fn expect(&self, c: &Cluster, node: NodeId, index: LogIndex, client: u64, seq: u64) {
        assert!(c.is_up(node), "n{node} is down: it cannot have accepted a proposal");
        let lifetime = c.lifetime(node);
        let mut st = self.state.borrow_mut();
        if let Some(n) = st.nodes.get(&node)
            && n.lifetime == lifetime
        {
            assert!(n.store.last_applied() < index, "n{node} applied i{index} before its proposal was registered");
        }
        st.pending.insert((node, lifetime, index), (client, seq));
    }

    /// True if replies are waiting in the queue.
    pub fn has_replies(&self) -> bool {
        !self.state.borrow().replies.is_empty()
    }

    /// Takes every queued reply, oldest first.
    pub fn take_replies(&self) -> Vec<Reply> {
        self.state.borrow_mut().replies.drain(..).collect()
    }

    /// The node's store in its current (or, while crashed, last) lifetime;
    /// `None` if it never applied anything.
    pub fn store(&self, id: NodeId) -> Option<KvStore> {
        self.state.borrow().nodes.get(&id).map(|n| n.store.clone())
    }

    /// The value of `key` in the node's store, read locally (possibly stale).
    pub fn get_local(&self, id: NodeId, key: &str) -> Option<String> {
        self.state.borrow().nodes.get(&id).and_then(|n| n.store.get_local(key).map(str::to_owned))
    }

    /// The node's last applied index in its current (or last) lifetime.
    pub fn last_applied(&self, id: NodeId) -> LogIndex {
        self.state.borrow().nodes.get(&id).map_or(LogIndex(0), |n| n.store.last_applied())
    }

    /// What to hand to [`Cluster::compact`] for a snapshot of the node's store:
    /// its last applied index and [`KvStore::snapshot`] bytes.
    pub fn snapshot_data(&self, id: NodeId) -> Option<(LogIndex, Vec<u8>)> {
        self.state.borrow().nodes.get(&id).map(|n| (n.store.last_applied(), n.store.snapshot()))
    }

    /// Counters.
    pub fn stats(&self) -> KvStats {
        self.state.borrow().stats.clone()
    }

    /// Checks that every pair of live nodes that applied up to the same index
    /// hold equal stores (same map, same sessions). Panics with the seed otherwise.
    pub fn check_replicas_agree(&self, c: &Cluster) {
        let st = self.state.borrow();
        let mut by_index: HashMap<LogIndex, (NodeId, &KvStore)> = HashMap::new();
        for id in c.ids().into_iter().filter(|&id| c.is_up(id)) {
            let Some(n) = st.nodes.get(&id).filter(|n| n.lifetime == c.lifetime(id)) else {
                continue;
            };
            match by_index.get(&n.store.last_applied()) {
                Some((other, s)) if *s != &n.store => c.fail(format_args!(
                    "KV replicas diverge: n{other} and n{id} both applied up to i{} but hold different stores",
                    n.store.last_applied()
                )),
                Some(_) => {}
                None => {
                    by_index.insert(n.store.last_applied(), (id, &n.store));
                }
            }
        }
    }
}
