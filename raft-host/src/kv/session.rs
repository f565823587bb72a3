//! The client session table: who has applied what, when each client was
//! last active in log time, and a bound on the table's size.
//!
//! Every decision here depends only on the entries applied (the leader's
//! timestamps and limits carried in them), never on a replica's own clock or
//! configuration, so all replicas expire the same sessions at the same index.

use super::command::KvOutput;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What one session costs in [`KvStore::session_bytes`](super::KvStore::session_bytes) before its cached
/// output: the record and its two index entries, rounded up.
pub const SESSION_OVERHEAD_BYTES: u64 = 96;

/// How far past a session's last applied sequence number a command may be
/// (see [`KvError::SeqOutOfWindow`](super::KvError::SeqOutOfWindow)).
pub const SEQ_WINDOW: u64 = 1 << 16;

/// How sessions expire. A leader writes its limits into every session
/// registration it proposes ([`KvEntry::Register`](super::KvEntry::Register));
/// the store follows the limits of the latest registration applied, so
/// replicas configured differently still agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionLimits {
    /// A session with no command applied for this long, in log time
    /// (milliseconds), expires.
    pub idle_timeout_ms: u64,
    /// The table's size ([`KvStore::session_bytes`](super::KvStore::session_bytes))
    /// is kept at or below this by expiring the sessions idle the longest
    /// (one session is always kept, whatever its size).
    pub max_bytes: u64,
}

impl SessionLimits {
    /// One hour of idleness, 64 MiB of sessions (about 700,000).
    pub const DEFAULT: SessionLimits = SessionLimits { idle_timeout_ms: 3_600_000, max_bytes: 64 << 20 };

    /// The limits made usable: a timeout of at least 1 ms and room for at
    /// least one session.
    pub fn sanitized(self) -> SessionLimits {
        SessionLimits {
            idle_timeout_ms: self.idle_timeout_ms.max(1),
            max_bytes: self.max_bytes.max(SESSION_OVERHEAD_BYTES),
        }
    }
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits::DEFAULT
    }
}

/// What the store remembers about one client session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// The highest sequence number applied (0: none yet).
    pub(crate) last_seq: u64,
    /// The output of `last_seq`, kept to answer a retry. Reads are never
    /// kept (a retried read is simply read again).
    pub(crate) last_output: Option<KvOutput>,
    /// Log time (ms) of the last command applied in the session.
    pub(crate) last_active_ms: u64,
}

impl Session {
    /// The bytes this session counts for in the table.
    fn bytes(&self) -> u64 {
        let output = match &self.last_output {
            Some(KvOutput::Cas { current: Some(v), .. }) => v.len() as u64,
            _ => 0,
        };
        SESSION_OVERHEAD_BYTES + output
    }
}

/// Sessions by id, with an index by idleness and a running byte count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionTable {
    sessions: BTreeMap<u64, Session>,
    /// `(last_active_ms, id)` of every session: the first is idle the longest.
    idle: BTreeSet<(u64, u64)>,
    bytes: u64,
    limits: SessionLimits,
    /// The latest leader timestamp applied (log time never goes back).
    now_ms: u64,
}

impl Default for SessionTable {
    fn default() -> Self {
        SessionTable::new(SessionLimits::DEFAULT, 0)
    }
}

impl SessionTable {
    pub(crate) fn new(limits: SessionLimits, now_ms: u64) -> SessionTable {
        SessionTable { sessions: BTreeMap::new(), idle: BTreeSet::new(), bytes: 0, limits: limits.sanitized(), now_ms }
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn limits(&self) -> SessionLimits {
        self.limits
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &Session)> {
        self.sessions.iter()
    }

    /// Whether `s` has been idle past the timeout at log time `now_ms`.
    pub(crate) fn is_expired(&self, s: &Session, now_ms: u64) -> bool {
        s.last_active_ms.saturating_add(self.limits.idle_timeout_ms) <= now_ms
    }

    /// Moves log time to `time_ms` (if later) and expires the sessions idle
    /// for the timeout or longer.
    pub(crate) fn advance(&mut self, time_ms: u64) {
        self.now_ms = self.now_ms.max(time_ms);
        while let Some(&(active, id)) = self.idle.first() {
            if active.saturating_add(self.limits.idle_timeout_ms) > self.now_ms {
                break;
            }
            self.remove(id);
        }
    }

    /// Adopts new limits (sanitized) and enforces them.
    pub(crate) fn set_limits(&mut self, limits: SessionLimits) {
        self.limits = limits.sanitized();
        self.advance(self.now_ms);
        self.enforce_bound();
    }

    /// Opens session `id` (or resets it), active now.
    pub(crate) fn open(&mut self, id: u64) {
        self.put(id, Session { last_seq: 0, last_output: None, last_active_ms: self.now_ms });
    }

    /// Records that `id` applied `seq` with `output` (`None`: nothing to
    /// keep), active now. Creates the session if needed.
    pub(crate) fn record(&mut self, id: u64, seq: u64, output: Option<KvOutput>) {
        self.put(id, Session { last_seq: seq, last_output: output, last_active_ms: self.now_ms });
    }

    /// Marks `id` active now (a read in the session), if it exists.
    pub(crate) fn touch(&mut self, id: u64) {
        if let Some(mut s) = self.sessions.get(&id).cloned() {
            s.last_active_ms = self.now_ms;
            self.put(id, s);
        }
    }

    /// Inserts a session restored from a snapshot, without enforcing limits.
    pub(crate) fn restore(&mut self, id: u64, s: Session) {
        self.insert(id, s);
    }

    fn put(&mut self, id: u64, s: Session) {
        self.insert(id, s);
        self.enforce_bound();
    }

    fn insert(&mut self, id: u64, s: Session) {
        self.remove(id);
        self.bytes += s.bytes();
        self.idle.insert((s.last_active_ms, id));
        self.sessions.insert(id, s);
    }

    fn remove(&mut self, id: u64) {
        if let Some(old) = self.sessions.remove(&id) {
            self.bytes -= old.bytes();
            self.idle.remove(&(old.last_active_ms, id));
        }
    }

    /// Expires the sessions idle the longest until the table fits.
    fn enforce_bound(&mut self) {
        while self.bytes > self.limits.max_bytes && self.sessions.len() > 1 {
            let Some(&(_, id)) = self.idle.first() else { break };
            self.remove(id);
        }
    }
}
