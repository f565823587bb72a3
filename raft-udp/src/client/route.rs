//! Which node a client tries next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long an address that did not answer is avoided while others remain.
const AVOID_SILENT_FOR: Duration = Duration::from_secs(3);

/// The client's view of the cluster: the listed servers, the node ids learnt
/// from replies, and the addresses that recently did not answer.
#[derive(Debug)]
pub(crate) struct Route {
    servers: Vec<SocketAddr>,
    next: usize,
    target: SocketAddr,
    /// Node id -> the address that reached it.
    known: HashMap<u64, SocketAddr>,
    /// Address -> when it last failed to answer.
    silent: HashMap<SocketAddr, Instant>,
}

impl Route {
    /// Starts at `servers[start % len]`; `servers` must not be empty.
    pub(crate) fn new(servers: Vec<SocketAddr>, start: usize) -> Route {
        let next = start % servers.len();
        Route { target: servers[next], servers, next, known: HashMap::new(), silent: HashMap::new() }
    }

    /// Where to send the next attempt.
    pub(crate) fn target(&self) -> SocketAddr {
        self.target
    }

    fn is_silent(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.silent.get(addr).is_some_and(|t| now.saturating_duration_since(*t) < AVOID_SILENT_FOR)
    }

    /// Node `node` answered at `addr`.
    pub(crate) fn answered(&mut self, node: u64, addr: SocketAddr) {
        self.known.insert(node, addr);
        self.silent.remove(&addr);
    }

    /// The current target did not answer: note it and move on.
    pub(crate) fn no_answer(&mut self, now: Instant) {
        self.silent.insert(self.target, now);
        self.rotate(now);
    }

    /// The next listed server that answered lately (any, if none did).
    pub(crate) fn rotate(&mut self, now: Instant) {
        let n = self.servers.len();
        let step = (1..=n).find(|k| !self.is_silent(&self.servers[(self.next + k) % n], now)).unwrap_or(1);
        self.next = (self.next + step) % n;
        self.target = self.servers[self.next];
    }

    /// The current target said it does not lead and named `leader` (with
    /// its peer address `hint`), or no one. Prefers, among addresses that
    /// answered lately: the address known to reach that leader; then a
    /// listed server not yet identified (the hint is the leader's *peer*
    /// address, which need not be reachable from here); then the hint. If
    /// all of those were silent lately, tries them anyway in the same order
    /// (a node that just named the leader is better evidence than a
    /// timeout, which may date from before the leader started).
    pub(crate) fn redirect(&mut self, leader: Option<u64>, hint: Option<SocketAddr>, now: Instant) {
        let Some(leader) = leader else { return self.rotate(now) };
        for allow_silent in [false, true] {
            let usable = |a: &SocketAddr| allow_silent || !self.is_silent(a, now);
            if let Some(&a) = self.known.get(&leader).filter(|a| usable(a)) {
                self.target = a;
                return;
            }
            let current = self.target;
            let unidentified =
                self.servers.iter().position(|a| *a != current && usable(a) && !self.known.values().any(|k| k == a));
            if let Some(i) = unidentified {
                self.next = i;
                self.target = self.servers[i];
                return;
            }
            if let Some(a) = hint.filter(|a| usable(a) && *a != current) {
                self.target = a;
                return;
            }
        }
        self.rotate(now);
    }

    /// A follower served the last command through `leader`, configured
    /// there at `addr`. The next command goes straight to the leader if
    /// this client can count on reaching it: at the address that answered
    /// as `leader`, or else at `addr` if it is a listed server; either way
    /// one that answered lately. Otherwise the client stays where it is
    /// (the follower serves it, one hop longer).
    pub(crate) fn follow(&mut self, leader: u64, addr: Option<SocketAddr>, now: Instant) {
        let known = self.known.get(&leader).copied();
        let listed = addr.filter(|a| self.servers.contains(a));
        if let Some(a) = known.or(listed).filter(|a| !self.is_silent(a, now)) {
            if let Some(i) = self.servers.iter().position(|s| *s == a) {
                self.next = i;
            }
            self.target = a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_dead_unidentified_server_is_not_retried_forever() {
        // Servers 1 (dead), 2 and 3 (leader); the client starts at 2.
        let now = Instant::now();
        let mut r = Route::new(vec![addr(1), addr(2), addr(3)], 1);
        r.answered(2, addr(2));
        r.redirect(Some(3), Some(addr(93)), now);
        assert_eq!(r.target(), addr(1));
        r.no_answer(now);
        assert_eq!(r.target(), addr(2));
        r.answered(2, addr(2));
        r.redirect(Some(3), Some(addr(93)), now);
        assert_eq!(r.target(), addr(3));
        r.answered(3, addr(3));
        // Later redirects to 3 go straight there.
        r.rotate(now);
        r.redirect(Some(3), None, now);
        assert_eq!(r.target(), addr(3));
    }

    #[test]
    fn a_client_served_by_a_follower_moves_to_a_leader_it_can_reach() {
        let now = Instant::now();
        let mut r = Route::new(vec![addr(1), addr(2), addr(3)], 0);
        r.answered(1, addr(1));
        // The leader's configured address is not one the client was given:
        // it stays with the follower.
        r.follow(3, Some(addr(93)), now);
        assert_eq!(r.target(), addr(1));
        r.follow(3, None, now);
        assert_eq!(r.target(), addr(1));
        // A listed address that timed out lately is not tried either.
        r.no_answer(now);
        assert_eq!(r.target(), addr(2));
        r.answered(2, addr(2));
        r.follow(1, Some(addr(1)), now);
        assert_eq!(r.target(), addr(2));
        // A listed one that did not: the next command goes there.
        r.follow(3, Some(addr(3)), now);
        assert_eq!(r.target(), addr(3));
        // An address that answered as the leader wins over the configured one.
        r.answered(4, addr(2));
        r.follow(4, Some(addr(3)), now);
        assert_eq!(r.target(), addr(2));
        // Rotation goes on from the leader's place in the list.
        r.rotate(now);
        assert_eq!(r.target(), addr(3));
    }

    #[test]
    fn the_hint_is_used_when_no_listed_server_is_left() {
        let now = Instant::now();
        let mut r = Route::new(vec![addr(1)], 0);
        r.answered(1, addr(1));
        r.redirect(Some(2), Some(addr(2)), now);
        assert_eq!(r.target(), addr(2));
        r.no_answer(now);
        assert_eq!(r.target(), addr(1));
        r.redirect(Some(2), Some(addr(2)), now);
        assert_eq!(r.target(), addr(2), "a silent hint is still better than nothing");
    }

    #[test]
    fn a_leader_silent_since_before_it_started_is_tried_when_named() {
        // All three timed out while the nodes were starting; then 1 and 2
        // answer and name 3 the leader.
        let now = Instant::now();
        let mut r = Route::new(vec![addr(1), addr(2), addr(3)], 0);
        for _ in 0..3 {
            r.no_answer(now);
        }
        assert_eq!(r.target(), addr(1));
        r.answered(1, addr(1));
        r.redirect(Some(3), None, now);
        assert_eq!(r.target(), addr(2), "an unidentified server that may lead");
        r.answered(2, addr(2));
        r.redirect(Some(3), None, now);
        assert_eq!(r.target(), addr(3));
    }

    #[test]
    fn rotation_skips_silent_servers_unless_all_are() {
        let now = Instant::now();
        let mut r = Route::new(vec![addr(1), addr(2), addr(3)], 0);
        r.no_answer(now);
        assert_eq!(r.target(), addr(2));
        r.no_answer(now);
        assert_eq!(r.target(), addr(3));
        r.no_answer(now);
        assert_eq!(r.target(), addr(1));
    }
}
