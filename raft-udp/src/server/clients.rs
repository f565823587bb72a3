//! Client commands a leader proposed and has not answered yet.

use raft_host::Ticket;
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
    since: Instant,
}

/// Pending proposals by ticket, and the latest one of each client.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    by_ticket: HashMap<Ticket, Waiter>,
    by_client: HashMap<u64, Ticket>,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.by_ticket.len()
    }

    /// If `(client, seq)` is already proposed here, points its answer at the
    /// newest request (`nonce`, `addr`) and returns true.
    pub(crate) fn refresh(&mut self, client: u64, seq: u64, nonce: u64, addr: SocketAddr) -> bool {
        let Some(ticket) = self.by_client.get(&client) else { return false };
        match self.by_ticket.get_mut(ticket) {
            Some(w) if w.seq == seq => {
                w.nonce = nonce;
                w.addr = addr;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn insert(&mut self, ticket: Ticket, client: u64, seq: u64, nonce: u64, addr: SocketAddr, now: Instant) {
        self.by_ticket.insert(ticket, Waiter { client, seq, nonce, addr, since: now });
        self.by_client.insert(client, ticket);
    }

    /// The waiter of a finished proposal.
    pub(crate) fn take(&mut self, ticket: Ticket) -> Option<Waiter> {
        let w = self.by_ticket.remove(&ticket)?;
        if self.by_client.get(&w.client) == Some(&ticket) {
            self.by_client.remove(&w.client);
        }
        Some(w)
    }

    /// Forgets proposals older than a minute.
    pub(crate) fn expire(&mut self, now: Instant) {
        let old: Vec<Ticket> = self
            .by_ticket
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.since) >= FORGET_AFTER)
            .map(|(t, _)| *t)
            .collect();
        for t in old {
            self.take(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_only_matches_the_same_seq_and_take_cleans_up() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let now = Instant::now();
        let mut p = Pending::default();
        p.insert(10, 5, 1, 100, a, now);
        assert!(!p.refresh(5, 2, 101, b));
        assert!(!p.refresh(6, 1, 101, b));
        assert!(p.refresh(5, 1, 102, b));
        // A newer command of the same client replaces the index, not the old waiter.
        p.insert(11, 5, 2, 103, a, now);
        assert_eq!(p.take(10).map(|w| (w.nonce, w.addr)), Some((102, b)));
        assert!(p.refresh(5, 2, 104, b));
        assert_eq!(p.len(), 1);
        p.expire(now + FORGET_AFTER);
        assert_eq!(p.len(), 0);
        assert!(!p.refresh(5, 2, 105, b));
    }
}
