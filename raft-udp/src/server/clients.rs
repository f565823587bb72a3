//! Client commands a leader proposed and has not answered yet: the engine
//! holds each one's [`Waiter`]; [`Clients`] finds the latest one of a client.

use raft_host::{Engine, KvStore, Ticket};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most proposals waiting for their outcome; beyond it clients are told to retry.
pub(crate) const MAX_PENDING: usize = 65_536;
/// A proposal whose outcome has not come after this long is forgotten (its
/// client gave up long ago; a retry proposes it again, and sessions keep
/// that exactly-once).
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Where to send the answer to one proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) client: u64,
    pub(crate) seq: u64,
    pub(crate) nonce: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) since: Instant,
}

/// The node's engine, holding a [`Waiter`] per proposal.
pub(crate) type KvEngine = Engine<KvStore, Waiter>;

/// The latest pending proposal of each client.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    latest: HashMap<u64, Ticket>,
}

impl Clients {
    /// If `(client, seq)` is already proposed here, points its answer at the
    /// newest request (`nonce`, `addr`) and returns true.
    pub(crate) fn refresh(&self, engine: &mut KvEngine, client: u64, seq: u64, nonce: u64, addr: SocketAddr) -> bool {
        let Some(&ticket) = self.latest.get(&client) else { return false };
        match engine.waiter_mut(ticket) {
            Some(w) if w.seq == seq => {
                w.nonce = nonce;
                w.addr = addr;
                true
            }
            _ => false,
        }
    }

    /// Records the ticket of a client's newest proposal.
    pub(crate) fn proposed(&mut self, client: u64, ticket: Ticket) {
        self.latest.insert(client, ticket);
    }

    /// A proposal is finished (answered or forgotten).
    pub(crate) fn finished(&mut self, ticket: Ticket, waiter: &Waiter) {
        if self.latest.get(&waiter.client) == Some(&ticket) {
            self.latest.remove(&waiter.client);
        }
    }

    /// Forgets proposals older than a minute.
    pub(crate) fn expire(&mut self, engine: &mut KvEngine, now: Instant) {
        let old: Vec<Ticket> = engine
            .waiting()
            .filter(|(_, w)| now.saturating_duration_since(w.since) >= FORGET_AFTER)
            .map(|(t, _)| t)
            .collect();
        for t in old {
            if let Some(w) = engine.forget(t) {
                self.finished(t, &w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Config, NodeId};
    use raft_host::{DiskLog, NodeMeta};

    /// A one-member engine that leads.
    fn leader(dir: &std::path::Path) -> KvEngine {
        let (log, recovered) = DiskLog::open(dir, NodeMeta::new(NodeId(1), 1)).unwrap();
        let config = Config::new(NodeId(1), [NodeId(1)]);
        let mut e = Engine::start(config, log, recovered, KvStore::new(), raft_core::Instant::ZERO, |_| {}).unwrap();
        let t = e.deadline().unwrap();
        e.handle_timer(t);
        assert_eq!(e.status().role, raft_core::Role::Leader);
        e
    }

    #[test]
    fn refresh_only_matches_the_same_seq_and_expiry_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = leader(dir.path());
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let now = Instant::now();
        let mut c = Clients::default();
        let waiter = |seq, nonce| Waiter { client: 5, seq, nonce, addr: a, since: now };
        let t10 = e.propose(raft_core::Instant::ZERO, vec![1u8], waiter(1, 100)).unwrap();
        c.proposed(5, t10);
        assert!(!c.refresh(&mut e, 5, 2, 101, b));
        assert!(!c.refresh(&mut e, 6, 1, 101, b));
        assert!(c.refresh(&mut e, 5, 1, 102, b));
        // A newer command of the same client replaces the latest, not the old waiter.
        let t11 = e.propose(raft_core::Instant::ZERO, vec![2u8], waiter(2, 103)).unwrap();
        c.proposed(5, t11);
        let old = e.forget(t10).unwrap();
        c.finished(t10, &old);
        assert_eq!((old.nonce, old.addr), (102, b));
        assert!(c.refresh(&mut e, 5, 2, 104, b));
        assert_eq!(e.waiting().len(), 1);
        c.expire(&mut e, now + FORGET_AFTER);
        assert_eq!(e.waiting().len(), 0);
        assert!(!c.refresh(&mut e, 5, 2, 105, b));
        drop(e.stop());
    }
}
