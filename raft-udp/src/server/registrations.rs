//! The registration ids a node proposed lately, so that a registration
//! datagram seen again (a client's retry, or a replay) is answered instead of
//! proposed again.
//!
//! An id is kept for as long as the cookie its request carried can be valid
//! (a replay after that fails the cookie check). The memory is bounded:
//! beyond [`MAX_REMEMBERED`] ids the oldest are forgotten early.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most registration ids remembered.
pub(crate) const MAX_REMEMBERED: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Registrations {
    keep: Duration,
    /// Id -> the session it opened (`None`: proposed, outcome not known yet).
    ids: HashMap<u64, Option<u64>>,
    /// Ids by the time they were first seen, oldest first.
    order: VecDeque<(Instant, u64)>,
}

impl Registrations {
    pub(crate) fn new(keep: Duration) -> Registrations {
        Registrations { keep, ids: HashMap::new(), order: VecDeque::new() }
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.order.front() {
            if now.saturating_duration_since(at) < self.keep && self.order.len() <= MAX_REMEMBERED {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&id);
        }
    }

    /// The session registration `id` opened, if it was applied lately.
    pub(crate) fn session(&mut self, id: u64, now: Instant) -> Option<u64> {
        self.forget_old(now);
        self.ids.get(&id).copied().flatten()
    }

    /// Registration `id` was proposed.
    pub(crate) fn proposed(&mut self, id: u64, now: Instant) {
        self.forget_old(now);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.ids.entry(id) {
            slot.insert(None);
            self.order.push_back((now, id));
        }
    }

    /// Registration `id` was applied and opened `session`.
    pub(crate) fn applied(&mut self, id: u64, session: u64, now: Instant) {
        self.forget_old(now);
        if let Some(slot) = self.ids.get_mut(&id) {
            *slot = Some(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_for_a_while() {
        let t = Instant::now();
        let mut r = Registrations::new(Duration::from_secs(10));
        r.proposed(7, t);
        assert_eq!(r.session(7, t), None);
        r.applied(7, 42, t);
        assert_eq!(r.session(7, t + Duration::from_secs(9)), Some(42));
        assert_eq!(r.session(7, t + Duration::from_secs(10)), None);
        r.applied(8, 1, t);
        assert_eq!(r.session(8, t), None, "never proposed here");
    }
}
