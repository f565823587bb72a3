//! The host side of snapshots in the simulator: one state machine (an
//! "applier", like the MIT 6.5840 tester's `applierSnap`) per node.
//!
//! [`Appliers::install`] hooks a [`Cluster`]: every node's apply stream goes
//! to its applier, which
//!
//! * checks that the stream is gap-free: each lifetime starts at index 1 or
//!   right after a restored snapshot, every `Apply` continues at the last
//!   applied index + 1, and a restored snapshot is newer than anything applied;
//! * records what it applied, either every command ([`ApplierMode::Full`],
//!   the MIT tester's `cfg.logs`) or a hash chain over them
//!   ([`ApplierMode::Digest`], for runs with millions of entries), and checks
//!   it against what every other node applied or restored at that index;
//! * takes a snapshot by calling the node's `compact` with an encoding of its
//!   state, every [`ApplierConfig::every`] applied entries (MIT: 10) and/or
//!   whenever the core emits `Event::SnapshotWanted`;
//! * on `RestoreSnapshot` decodes that state, checks it against the
//!   committed history and continues from it.
//!
//! Because the applier knows the commands a node received inside a
//! snapshot, [`Appliers::n_committed`] and [`Appliers::one`] (the MIT
//! helpers) count them, unlike [`Cluster::n_committed`].
//!
//! [`KvSnapshots`] does the same for the key-value state machines of
//! [`super::kv`], so that client histories can be checked for
//! linearizability across snapshots.
//!
//! A step observer checks, after every simulator step, that no hook saw a
//! violation and that every node's durable Raft state ([`durable_size`]) and
//! in-memory log stay under the configured [`Bounds`]. Violations panic via
//! [`Cluster::fail`] (seed and trace tail included).

use super::cluster::{Applied, Cluster};
use super::disk::DurableState;
use super::kv::KvSim;
use super::rng::mix64;
use raft_core::codec::{decode_value, encode_value};
use raft_core::{Bytes, Entry, LogIndex, NodeId, Payload, Snapshot};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;

/// What an applier remembers of the commands it applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ApplierMode {
    /// Every payload, in index order; the snapshot holds them all (like the
    /// MIT tester's). Needed by [`Appliers::n_committed`] and [`Appliers::one`].
    Full,
    /// A hash chain over `(index, payload)`; the snapshot is 16 bytes.
    Digest,
}

/// Limits checked after every step. `None` disables a check.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Most bytes of a node's durable Raft state, as [`durable_size`] measures it.
    pub durable_bytes: Option<usize>,
    /// Most entries in a node's durable log.
    pub durable_entries: Option<usize>,
    /// Most entries in a live node's in-memory log (`Node::log_len`).
    pub log_len: Option<usize>,
    /// Most bytes in a live node's in-memory log (`Node::log_bytes`).
    pub log_bytes: Option<usize>,
}

/// How the appliers behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplierConfig {
    /// Snapshot each time the applied index reaches a new multiple of this
    /// (MIT: every 10 applied entries). `None`: only when the core asks.
    pub every: Option<u64>,
    /// Snapshot when the core emits `Event::SnapshotWanted`.
    pub on_wanted: bool,
    /// What each applier keeps.
    pub mode: ApplierMode,
    /// Checked after every step.
    pub bounds: Bounds,
}

impl ApplierConfig {
    /// The MIT 2D applier: full history, a snapshot every `every` entries.
    pub fn mit(every: u64) -> ApplierConfig {
        ApplierConfig { every: Some(every), on_wanted: true, mode: ApplierMode::Full, bounds: Bounds::default() }
    }

    /// A digest applier that snapshots only when the core's policy asks.
    pub fn policy() -> ApplierConfig {
        ApplierConfig { every: None, on_wanted: true, mode: ApplierMode::Digest, bounds: Bounds::default() }
    }
}

/// The largest values seen by the step observer, over the whole run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Peaks {
    /// Durable Raft state bytes ([`durable_size`]).
    pub durable_bytes: usize,
    /// Durable log entries.
    pub durable_entries: usize,
    /// In-memory log entries.
    pub log_len: usize,
    /// In-memory log bytes.
    pub log_bytes: usize,
}

/// Counters over the whole run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplierStats {
    /// Snapshots the appliers handed to `compact`.
    pub taken: u64,
    /// Snapshots restored (installed from a leader or at restart).
    pub restored: u64,
    /// Largest snapshot data handed to `compact`, in bytes.
    pub max_snapshot_bytes: usize,
    /// Peak sizes seen after steps.
    pub peaks: Peaks,
}

/// The encoded size of a node's durable Raft state: hard state, snapshot
/// metadata and retained entries, with the wire codec
/// (`raft_core::codec::encode_value`); the snapshot's data is not counted,
/// as in the MIT tester's `RaftStateSize`.
pub fn durable_size(d: &DurableState) -> usize {
    let meta = d.snapshot.as_ref().map(|s| s.meta);
    encode_value(&(d.hard_state, meta, &d.entries)).map_or(usize::MAX, |v| v.len())
}

/// One step of the hash chain of [`ApplierMode::Digest`].
fn chain(digest: u64, e: &Entry) -> u64 {
    let mut h = mix64(digest ^ e.index.0);
    if let Payload::Command(b) = &e.payload {
        for chunk in b.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = mix64(h ^ u64::from_le_bytes(w));
        }
        h = mix64(h ^ b.len() as u64);
    }
    h
}

#[derive(Clone, Debug, Default)]
struct NodeState {
    lifetime: u32,
    last_applied: LogIndex,
    /// Last snapshot taken or restored in this lifetime.
    snap_index: LogIndex,
    /// Full mode: payloads of indexes `1..=last_applied`.
    log: Vec<Payload>,
    /// Digest mode: the chain up to `last_applied`.
    digest: u64,
}

type Fingerprint = (raft_core::HardState, LogIndex, usize, Option<(LogIndex, raft_core::Term)>);

fn fingerprint(d: &DurableState) -> Fingerprint {
    (d.hard_state, d.snapshot_index(), d.entries.len(), d.entries.last().map(|e| (e.index, e.term)))
}

/// The step observer's bound checks and what they saw.
#[derive(Debug)]
struct BoundsState {
    bounds: Bounds,
    peaks: Peaks,
    /// Per node: the durable state's fingerprint and encoded size, to skip
    /// re-encoding an unchanged state.
    cache: Vec<Option<(Fingerprint, usize)>>,
}

impl BoundsState {
    fn new(bounds: Bounds, nodes: usize) -> BoundsState {
        BoundsState { bounds, peaks: Peaks::default(), cache: vec![None; nodes] }
    }

    /// Checks every node against the bounds; an error names each one broken.
    fn check(&mut self, c: &Cluster) -> Result<(), String> {
        let (b, peaks) = (self.bounds, &mut self.peaks);
        let mut err = String::new();
        self.cache.resize(c.len(), None); // nodes added since
        for (k, id) in c.ids().into_iter().enumerate() {
            let d = c.durable(id);
            if b.durable_bytes.is_some() {
                let fp = fingerprint(d);
                let size = match self.cache[k] {
                    Some((f, s)) if f == fp => s,
                    _ => {
                        let s = durable_size(d);
                        self.cache[k] = Some((fp, s));
                        s
                    }
                };
                peaks.durable_bytes = peaks.durable_bytes.max(size);
                if b.durable_bytes.is_some_and(|m| size > m) {
                    let (n, m) = (d.entries.len(), b.durable_bytes);
                    let _ = write!(err, "n{id}'s durable Raft state is {size} bytes ({n} entries) > {m:?}; ");
                }
            }
            let n = d.entries.len();
            peaks.durable_entries = peaks.durable_entries.max(n);
            if b.durable_entries.is_some_and(|m| n > m) {
                let _ = write!(err, "n{id}'s durable log holds {n} entries > {:?}; ", b.durable_entries);
            }
            if let Some(node) = c.node(id) {
                let (len, bytes) = (node.log_len(), node.log_bytes());
                peaks.log_len = peaks.log_len.max(len);
                peaks.log_bytes = peaks.log_bytes.max(bytes);
                if b.log_len.is_some_and(|m| len > m) || b.log_bytes.is_some_and(|m| bytes > m) {
                    let (ml, mb) = (b.log_len, b.log_bytes);
                    let _ = write!(err, "n{id}'s log holds {len} entries, {bytes} bytes > {ml:?}, {mb:?}; ");
                }
            }
        }
        if err.is_empty() { Ok(()) } else { Err(err) }
    }
}

#[derive(Debug)]
struct Shared {
    cfg: ApplierConfig,
    nodes: Vec<NodeState>,
    /// Full mode: the payload committed at each index (index 1 first).
    committed: Vec<Payload>,
    /// Digest mode: the chain value at each index.
    digests: Vec<u64>,
    failure: Option<String>,
    stats: ApplierStats,
    bounds: BoundsState,
}

impl Shared {
    fn fail(&mut self, what: String) {
        if self.failure.is_none() {
            self.failure = Some(what);
        }
    }

    fn node(&mut self, id: NodeId, lifetime: u32) -> &mut NodeState {
        let k = (id.0 - 1) as usize;
        if self.nodes.len() <= k {
            self.nodes.resize_with(k + 1, NodeState::default); // a node added since
        }
        let st = &mut self.nodes[k];
        if st.lifetime != lifetime {
            *st = NodeState { lifetime, ..NodeState::default() };
        }
        st
    }

    /// Records `value` as what index `k + 1` holds, or checks it against the record.
    fn agree<T: PartialEq + Clone + std::fmt::Debug>(record: &mut Vec<T>, k: usize, value: &T) -> Result<(), (T, T)> {
        match record.get(k) {
            Some(have) if have != value => Err((have.clone(), value.clone())),
            Some(_) => Ok(()),
            None if record.len() == k => {
                record.push(value.clone());
                Ok(())
            }
            None => Ok(()), // cannot happen: every node's stream is gap-free from 1
        }
    }

    /// Digest mode's [`Shared::agree`]: 0 marks an index whose chain value
    /// is not known yet (it was only ever restored inside a snapshot).
    fn agree_digest(digests: &mut Vec<u64>, k: usize, value: u64) -> Result<(), String> {
        if digests.len() <= k {
            digests.resize(k + 1, 0);
        }
        match digests[k] {
            0 => {
                digests[k] = value;
                Ok(())
            }
            have if have == value => Ok(()),
            have => Err(format!("chain {have:016x} vs {value:016x}")),
        }
    }

    fn on_entries(&mut self, id: NodeId, lifetime: u32, entries: &[Entry]) {
        let mode = self.cfg.mode;
        let mut err = None;
        let st = self.node(id, lifetime);
        let mut checks = Vec::with_capacity(entries.len());
        for e in entries {
            if e.index.0 != st.last_applied.0 + 1 {
                err = Some(format!(
                    "apply gap: n{id} (lifetime {lifetime}) applied i{} after i{} (last snapshot i{})",
                    e.index, st.last_applied, st.snap_index
                ));
                break;
            }
            st.last_applied = e.index;
            match mode {
                ApplierMode::Full => st.log.push(e.payload.clone()),
                ApplierMode::Digest => {
                    st.digest = chain(st.digest, e);
                    checks.push(st.digest);
                }
            }
        }
        if let Some(e) = err {
            return self.fail(e);
        }
        for (n, e) in entries.iter().enumerate() {
            let k = (e.index.0 - 1) as usize;
            let r = match mode {
                ApplierMode::Full => {
                    Self::agree(&mut self.committed, k, &e.payload).map_err(|(a, b)| format!("{a:?} vs {b:?}"))
                }
                ApplierMode::Digest => Self::agree_digest(&mut self.digests, k, checks[n]),
            };
            if let Err(d) = r {
                return self.fail(format!("n{id} applied a different state at i{}: {d}", e.index));
            }
        }
    }

    fn on_restore(&mut self, id: NodeId, lifetime: u32, snap: &Snapshot) {
        let index = snap.meta.index;
        let mode = self.cfg.mode;
        let st = self.node(id, lifetime);
        if index <= st.last_applied {
            let last = st.last_applied;
            return self.fail(format!("n{id} was told to restore a snapshot at i{index} after applying i{last}"));
        }
        let decoded = match mode {
            ApplierMode::Full => decode_value::<(LogIndex, Vec<Payload>)>(&snap.data).map(|(i, log)| (i, log, 0)),
            ApplierMode::Digest => decode_value::<(LogIndex, u64)>(&snap.data).map(|(i, d)| (i, Vec::new(), d)),
        };
        let (at, log, digest) = match decoded {
            Ok(v) => v,
            Err(e) => return self.fail(format!("n{id}: snapshot at i{index} does not decode: {e}")),
        };
        if at != index || (mode == ApplierMode::Full && log.len() as u64 != index.0) {
            return self
                .fail(format!("n{id}: snapshot meta says i{index} but its data holds i{at} ({} commands)", log.len()));
        }
        st.last_applied = index;
        st.snap_index = index;
        st.digest = digest;
        st.log = log;
        self.stats.restored += 1;
        let k = (index.0 - 1) as usize;
        let r = match mode {
            ApplierMode::Full => {
                let log = std::mem::take(&mut self.nodes[(id.0 - 1) as usize].log);
                let mut r = Ok(());
                for (j, p) in log.iter().enumerate() {
                    if let Err((a, b)) = Self::agree(&mut self.committed, j, p) {
                        r = Err(format!("i{}: committed {a:?}, snapshot {b:?}", j + 1));
                        break;
                    }
                }
                self.nodes[(id.0 - 1) as usize].log = log;
                r
            }
            ApplierMode::Digest => {
                Self::agree_digest(&mut self.digests, k, digest).map_err(|d| format!("i{index}: {d}"))
            }
        };
        if let Err(d) = r {
            self.fail(format!("n{id} restored a snapshot that disagrees with the committed history: {d}"));
        }
    }

    fn take(&mut self, id: NodeId, lifetime: u32, wanted: Option<LogIndex>) -> Option<(LogIndex, Bytes)> {
        if self.failure.is_some() {
            return None;
        }
        let (every, on_wanted, mode) = (self.cfg.every, self.cfg.on_wanted, self.cfg.mode);
        let st = self.node(id, lifetime);
        let (last, snap) = (st.last_applied.0, st.snap_index.0);
        let due = every.is_some_and(|n| last / n > snap / n) || (on_wanted && wanted.is_some());
        if !due || last <= snap {
            return None;
        }
        let data = match mode {
            ApplierMode::Full => encode_value(&(st.last_applied, &st.log)),
            ApplierMode::Digest => encode_value(&(st.last_applied, st.digest)),
        };
        let data = data.unwrap_or_default();
        st.snap_index = st.last_applied;
        let index = st.last_applied;
        self.stats.taken += 1;
        self.stats.max_snapshot_bytes = self.stats.max_snapshot_bytes.max(data.len());
        Some((index, Bytes::from(data)))
    }

    /// The step observer's checks. Also forgets the state of nodes
    /// restarted since their last event.
    fn after_step(&mut self, c: &Cluster) -> Result<(), String> {
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        for id in c.ids() {
            self.node(id, c.lifetime(id));
        }
        let r = self.bounds.check(c);
        self.stats.peaks = self.bounds.peaks;
        r
    }
}

/// The appliers of one cluster (a cheap handle; clones share the state).
#[derive(Clone, Debug)]
pub struct Appliers(Rc<RefCell<Shared>>);

impl Appliers {
    /// Installs an applier on every node of `c` (replacing its apply hook,
    /// compact hook and step observer). Install before anything is applied.
    pub fn install(c: &mut Cluster, cfg: ApplierConfig) -> Appliers {
        let cfg_bounds = cfg.bounds;
        let nodes =
            (0..c.len()).map(|k| NodeState { lifetime: c.lifetime(NodeId(k as u64 + 1)), ..NodeState::default() });
        let shared = Shared {
            cfg,
            nodes: nodes.collect(),
            committed: Vec::new(),
            digests: Vec::new(),
            failure: None,
            stats: ApplierStats::default(),
            bounds: BoundsState::new(cfg_bounds, c.len()),
        };
        let a = Appliers(Rc::new(RefCell::new(shared)));
        let s = Rc::clone(&a.0);
        c.set_apply_hook(Some(Box::new(move |_, id, lifetime, what| match what {
            Applied::Entries(entries) => s.borrow_mut().on_entries(id, lifetime, entries),
            Applied::Snapshot(snap) => s.borrow_mut().on_restore(id, lifetime, snap),
        })));
        let s = Rc::clone(&a.0);
        c.set_compact_hook(Some(Box::new(move |_, id, lifetime, wanted| s.borrow_mut().take(id, lifetime, wanted))));
        let s = Rc::clone(&a.0);
        c.set_step_observer(Some(Box::new(move |c| {
            let r = s.borrow_mut().after_step(c);
            if let Err(e) = r {
                c.fail(e);
            }
        })));
        a
    }

    /// Runs the step observer's checks now (also useful after inputs that
    /// are not steps, like `propose` or `restart`).
    pub fn check(&self, c: &Cluster) {
        let r = self.0.borrow_mut().after_step(c);
        if let Err(e) = r {
            c.fail(e);
        }
    }

    /// The node's last applied index in its current (or, while crashed,
    /// last) lifetime, as of the last step or [`Appliers::check`].
    pub fn last_applied(&self, id: NodeId) -> LogIndex {
        self.0.borrow().nodes.get((id.0 - 1) as usize).map_or(LogIndex(0), |n| n.last_applied)
    }

    /// The last snapshot the node's applier took or restored in its current
    /// (or, while crashed, last) lifetime (0: none), as of the last step or
    /// [`Appliers::check`].
    pub fn snapshot_index(&self, id: NodeId) -> LogIndex {
        self.0.borrow().nodes.get((id.0 - 1) as usize).map_or(LogIndex(0), |n| n.snap_index)
    }

    /// Counters and peaks so far.
    pub fn stats(&self) -> ApplierStats {
        self.0.borrow().stats
    }

    /// MIT `nCommitted` over the appliers ([`ApplierMode::Full`] only): how
    /// many nodes (crashed ones included, with their last lifetime's state)
    /// have applied `index`, as an entry or inside a restored snapshot, and
    /// the command there. Disagreements are caught as they happen.
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<Payload>) {
        let s = self.0.borrow();
        assert_eq!(s.cfg.mode, ApplierMode::Full, "n_committed needs ApplierMode::Full");
        let count = s.nodes.iter().filter(|st| index.0 >= 1 && st.last_applied >= index).count();
        let k = index.0.checked_sub(1).and_then(|k| usize::try_from(k).ok());
        (count, k.and_then(|k| s.committed.get(k).cloned()))
    }

    /// MIT `one` over the appliers: for up to 10 s, proposes `cmd`
    /// round-robin at connected live nodes until one accepts, then waits up
    /// to 2 s for at least `expected` nodes to hold `cmd` at that index
    /// (counting snapshots, see [`Appliers::n_committed`]). Without `retry`
    /// the first failed wait is fatal. Returns the index.
    pub fn one(&self, c: &mut Cluster, cmd: impl Into<Bytes>, expected: usize, retry: bool) -> LogIndex {
        let cmd: Bytes = cmd.into();
        let want = Payload::Command(cmd.clone());
        c.one_where(cmd, retry, |_, index| {
            let (count, p) = self.n_committed(index);
            count > 0 && count >= expected && p.as_ref() == Some(&want)
        })
    }

    /// Digest mode: the chain value every node that applied `index` agreed on.
    pub fn digest_at(&self, index: LogIndex) -> Option<u64> {
        let s = self.0.borrow();
        let k = usize::try_from(index.0.checked_sub(1)?).ok()?;
        s.digests.get(k).copied().filter(|&d| d != 0)
    }
}

#[derive(Debug)]
struct KvShared {
    every: u64,
    /// Per node: lifetime and the last snapshot taken or restored in it.
    nodes: Vec<(u32, LogIndex)>,
    stats: ApplierStats,
    bounds: BoundsState,
}

impl KvShared {
    fn node(&mut self, id: NodeId, lifetime: u32) -> &mut LogIndex {
        let k = (id.0 - 1) as usize;
        if self.nodes.len() <= k {
            self.nodes.resize(k + 1, (0, LogIndex(0))); // a node added since
        }
        let st = &mut self.nodes[k];
        if st.0 != lifetime {
            *st = (lifetime, LogIndex(0));
        }
        &mut st.1
    }
}

/// Snapshots for a cluster whose state machines are a [`KvSim`]'s stores:
/// each node's store is snapshotted (with [`KvSim::snapshot_data`]) every
/// `every` applied entries and when the core asks, and restored by the
/// [`KvSim`]; the same [`Bounds`] are checked after every step as with
/// [`Appliers`]. The [`KvSim`] checks that each apply stream is gap-free.
#[derive(Clone, Debug)]
pub struct KvSnapshots(Rc<RefCell<KvShared>>);

impl KvSnapshots {
    /// Feeds `kv` from `c`'s apply stream (replacing the apply hook, the
    /// compact hook and the step observer). Install before anything is applied.
    pub fn install(c: &mut Cluster, kv: &KvSim, every: u64, bounds: Bounds) -> KvSnapshots {
        let nodes = (0..c.len()).map(|k| (c.lifetime(NodeId(k as u64 + 1)), LogIndex(0))).collect();
        let shared =
            KvShared { every, nodes, stats: ApplierStats::default(), bounds: BoundsState::new(bounds, c.len()) };
        let h = KvSnapshots(Rc::new(RefCell::new(shared)));
        let (s, k) = (Rc::clone(&h.0), kv.clone());
        c.set_apply_hook(Some(Box::new(move |now, id, lifetime, what| {
            if let Applied::Snapshot(snap) = what {
                let mut s = s.borrow_mut();
                *s.node(id, lifetime) = snap.meta.index;
                s.stats.restored += 1;
            }
            k.on_apply(now, id, lifetime, what);
        })));
        let (s, k) = (Rc::clone(&h.0), kv.clone());
        c.set_compact_hook(Some(Box::new(move |_, id, lifetime, wanted| {
            // The apply hook ran first: the store is this lifetime's.
            let last = k.last_applied(id);
            let mut s = s.borrow_mut();
            let every = s.every;
            let snap = s.node(id, lifetime);
            let due = last.0 / every > snap.0 / every || wanted.is_some();
            if !due || last <= *snap {
                return None;
            }
            let (last, data) = k.snapshot_data(id)?;
            *snap = last;
            s.stats.taken += 1;
            s.stats.max_snapshot_bytes = s.stats.max_snapshot_bytes.max(data.len());
            Some((last, Bytes::from(data)))
        })));
        let s = Rc::clone(&h.0);
        c.set_step_observer(Some(Box::new(move |c| {
            let mut s = s.borrow_mut();
            let r = s.bounds.check(c);
            s.stats.peaks = s.bounds.peaks;
            if let Err(e) = r {
                c.fail(e);
            }
        })));
        h
    }

    /// Counters and peaks so far.
    pub fn stats(&self) -> ApplierStats {
        self.0.borrow().stats
    }
}
