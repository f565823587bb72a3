//! The inbound connections of a TCP node: a bounded set of slots, at most
//! one authenticated connection per peer (the newest wins), and the oldest
//! connection that has not authenticated yet making room for a new one.

use crate::sync::{Stop, Watch};
use raft_core::NodeId;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct Slot {
    id: u64,
    peer: Option<NodeId>,
    kill: Stop,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    /// In the order they were admitted.
    slots: Vec<Slot>,
}

/// The slots of one listener.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    open: Mutex<Open>,
}

/// One admitted connection's slot: freed when dropped. Its connection
/// must end once [`Ticket::killed`] completes.
#[derive(Debug)]
pub(crate) struct Ticket {
    id: u64,
    kill: Stop,
    slots: Arc<Slots>,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots { max: max.max(1), open: Mutex::default() })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection. When every slot is taken, the oldest
    /// connection that has not authenticated is told to end and gives up
    /// its slot; if every connection has authenticated, the new one is
    /// refused (`None`).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut open = self.lock();
        if open.slots.len() >= self.max {
            let at = open.slots.iter().position(|s| s.peer.is_none())?;
            open.slots.remove(at).kill.close();
        }
        let id = open.next;
        open.next += 1;
        let kill: Stop = Arc::new(Watch::new(()));
        open.slots.push(Slot { id, peer: None, kill: kill.clone() });
        Some(Ticket { id, kill, slots: self.clone() })
    }

    /// Connections held, and how many of them authenticated.
    #[cfg(test)]
    fn count(&self) -> (usize, usize) {
        let open = self.lock();
        (open.slots.len(), open.slots.iter().filter(|s| s.peer.is_some()).count())
    }
}

impl Ticket {
    /// The connection proved it comes from `peer`: any older connection of
    /// `peer` is told to end.
    pub(crate) fn authenticated(&self, peer: NodeId) {
        let mut open = self.slots.lock();
        open.slots.retain(|s| {
            let older = s.id != self.id && s.peer == Some(peer);
            if older {
                s.kill.close();
            }
            !older
        });
        if let Some(s) = open.slots.iter_mut().find(|s| s.id == self.id) {
            s.peer = Some(peer);
        }
    }

    /// Completes once this connection must end (its slot was given to
    /// another one).
    pub(crate) async fn killed(&self) {
        self.kill.closed().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slots.lock().slots.retain(|s| s.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll, Waker};

    fn is_killed(t: &Ticket) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        t.kill.waiting().poll_check(&mut cx, |_, _, closed| closed.then_some(())) == Poll::Ready(())
    }

    #[test]
    fn full_slots_evict_the_oldest_unauthenticated_and_never_an_authenticated_one() {
        let slots = Slots::new(3);
        let a = slots.admit().unwrap();
        let b = slots.admit().unwrap();
        let c = slots.admit().unwrap();
        a.authenticated(NodeId(2));
        let d = slots.admit().unwrap();
        assert!(!is_killed(&a), "authenticated connections keep their slot");
        assert!(is_killed(&b), "the oldest unauthenticated one makes room");
        assert!(!is_killed(&c));
        assert_eq!(slots.count(), (3, 1));
        c.authenticated(NodeId(3));
        d.authenticated(NodeId(4));
        assert!(slots.admit().is_none(), "every slot authenticated: refused");
        drop(d);
        assert_eq!(slots.count(), (2, 2));
        assert!(slots.admit().is_some());
    }

    #[test]
    fn one_authenticated_connection_per_peer_and_the_newest_wins() {
        let slots = Slots::new(8);
        let old = slots.admit().unwrap();
        old.authenticated(NodeId(2));
        let other = slots.admit().unwrap();
        other.authenticated(NodeId(3));
        let new = slots.admit().unwrap();
        new.authenticated(NodeId(2));
        assert!(is_killed(&old));
        assert!(!is_killed(&new) && !is_killed(&other));
        assert_eq!(slots.count(), (2, 2));
        drop(old); // its task ends later: frees nothing it no longer holds
        assert_eq!(slots.count(), (2, 2));
    }
}
