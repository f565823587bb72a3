//! The outgoing queue of one peer: two bounded lanes, drop-oldest on
//! overflow, drained by the peer's writer task.
//!
//! * The **control** lane carries everything small and urgent: votes,
//!   heartbeats and commit notices (AppendEntries without entries), and all
//!   responses.
//! * The **bulk** lane carries AppendEntries with entries and
//!   InstallSnapshot chunks.
//!
//! The writer always takes the whole control lane before any bulk message,
//! and at most [`BATCH_BYTES`] of bulk per write, so a heartbeat waits behind
//! at most one write's worth of bulk (one message of at most
//! `Config::max_message_bytes` when bulk messages are large), never behind a
//! backlog. Overtaking is safe: Raft tolerates reordering and loss, and the
//! core anchors heartbeats at what the follower is known to hold.

use crate::api::PeerStatus;
use raft_core::{Body, Message, NodeId};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Bytes of bulk messages (by estimate) the writer takes in one batch; at
/// least one message is always taken.
pub(crate) const BATCH_BYTES: usize = 256 << 10;

/// Counters of one peer link, readable at any time.
#[derive(Debug, Default)]
pub(crate) struct PeerStats {
    pub(crate) connected: AtomicBool,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) connects: AtomicU64,
}

#[derive(Debug, Default)]
struct Lanes {
    control: VecDeque<Message>,
    bulk: VecDeque<Message>,
    waker: Option<Waker>,
    closed: bool,
}

/// The queue of messages for one peer (single consumer: its writer task).
#[derive(Debug)]
pub(crate) struct PeerQueue {
    pub(crate) id: NodeId,
    /// Where the peer is reached; a configuration may move it.
    addr: Mutex<SocketAddr>,
    capacity: usize,
    lanes: Mutex<Lanes>,
    pub(crate) stats: PeerStats,
}

/// True for messages that go in the bulk lane.
pub(crate) fn is_bulk(msg: &Message) -> bool {
    match &msg.body {
        Body::AppendEntries(a) => !a.entries.is_empty(),
        Body::InstallSnapshot(_) => true,
        _ => false,
    }
}

/// An upper estimate of a message's encoded size.
pub(crate) fn size_estimate(msg: &Message) -> usize {
    match &msg.body {
        Body::AppendEntries(a) => {
            raft_core::APPEND_OVERHEAD_BYTES + a.entries.iter().map(|e| e.size_bound()).sum::<usize>()
        }
        Body::InstallSnapshot(s) => 64 + s.data.len(),
        _ => 64,
    }
}

impl PeerQueue {
    /// A queue holding at most `capacity` messages per lane.
    pub(crate) fn new(id: NodeId, addr: SocketAddr, capacity: usize) -> PeerQueue {
        PeerQueue {
            id,
            addr: Mutex::new(addr),
            capacity: capacity.max(1),
            lanes: Mutex::default(),
            stats: PeerStats::default(),
        }
    }

    /// Where the peer is reached now.
    pub(crate) fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the peer (the next datagram or connection goes to `addr`).
    pub(crate) fn set_addr(&self, addr: SocketAddr) {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = addr;
    }

    fn lock(&self) -> MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message; if its lane is full, the lane's oldest message is
    /// dropped (and counted). Ignored once the queue is closed.
    pub(crate) fn push(&self, msg: Message) {
        let waker = {
            let mut l = self.lock();
            if l.closed {
                return;
            }
            let lane = if is_bulk(&msg) { &mut l.bulk } else { &mut l.control };
            if lane.len() >= self.capacity {
                lane.pop_front();
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            lane.push_back(msg);
            l.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Closes the queue: the writer's next wait returns false at once.
    pub(crate) fn close(&self) {
        let waker = {
            let mut l = self.lock();
            l.closed = true;
            l.control.clear();
            l.bulk.clear();
            l.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Moves the next batch into `out` (control lane first, then bulk up to
    /// `max_bulk_bytes`); `Ready(false)` once closed.
    pub(crate) fn poll_batch(&self, cx: &mut Context<'_>, out: &mut Vec<Message>, max_bulk_bytes: usize) -> Poll<bool> {
        let mut l = self.lock();
        if l.closed {
            return Poll::Ready(false);
        }
        if l.control.is_empty() && l.bulk.is_empty() {
            l.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        out.extend(l.control.drain(..));
        let mut bytes = 0;
        while let Some(m) = l.bulk.front() {
            let size = size_estimate(m);
            if bytes > 0 && bytes + size > max_bulk_bytes {
                break;
            }
            bytes += size;
            out.extend(l.bulk.pop_front());
        }
        Poll::Ready(true)
    }

    /// Waits for the next batch (see [`PeerQueue::poll_batch`]). Cancel-safe:
    /// messages are only taken when it completes.
    pub(crate) async fn next_batch(&self, out: &mut Vec<Message>, max_bulk_bytes: usize) -> bool {
        poll_fn(|cx| self.poll_batch(cx, out, max_bulk_bytes)).await
    }

    /// Messages waiting.
    pub(crate) fn len(&self) -> usize {
        let l = self.lock();
        l.control.len() + l.bulk.len()
    }

    /// A snapshot of the counters.
    pub(crate) fn status(&self) -> PeerStatus {
        PeerStatus {
            id: self.id,
            addr: self.addr(),
            connected: self.stats.connected.load(Ordering::Relaxed),
            frames_sent: self.stats.frames_sent.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            connects: self.stats.connects.load(Ordering::Relaxed),
            queued: self.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Bytes, Entry, LogIndex, Payload, Term};
    use std::sync::Arc;
    use std::task::Wake;

    struct Nop;
    impl Wake for Nop {
        fn wake(self: Arc<Self>) {}
    }

    fn heartbeat(t: u64) -> Message {
        Message {
            term: Term(t),
            body: Body::AppendEntries(raft_core::AppendEntries {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![],
                leader_commit: LogIndex(0),
                round: 0,
            }),
        }
    }

    fn append(t: u64, bytes: usize) -> Message {
        Message {
            term: Term(t),
            body: Body::AppendEntries(raft_core::AppendEntries {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![Entry {
                    term: Term(t),
                    index: LogIndex(1),
                    payload: Payload::Command(Bytes::from(vec![0; bytes])),
                }],
                leader_commit: LogIndex(0),
                round: 0,
            }),
        }
    }

    fn batch(q: &PeerQueue) -> Vec<Message> {
        let waker = Waker::from(Arc::new(Nop));
        let mut out = Vec::new();
        match q.poll_batch(&mut Context::from_waker(&waker), &mut out, BATCH_BYTES) {
            Poll::Ready(true) => out,
            other => panic!("no batch: {other:?}"),
        }
    }

    #[test]
    fn heartbeats_overtake_a_bulk_backlog() {
        let q = PeerQueue::new(NodeId(2), "127.0.0.1:1".parse().unwrap(), 100);
        for t in 1..=10 {
            q.push(append(t, 100 << 10)); // 10 x 100 KiB
        }
        q.push(heartbeat(99));
        let first = batch(&q);
        assert_eq!(first[0].term, Term(99), "the heartbeat goes first");
        assert_eq!(first.len(), 1 + 2, "then bulk up to the batch budget");
        q.push(heartbeat(100));
        assert_eq!(batch(&q)[0].term, Term(100));
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts() {
        let q = PeerQueue::new(NodeId(2), "127.0.0.1:1".parse().unwrap(), 3);
        for t in 1..=5 {
            q.push(heartbeat(t));
        }
        assert_eq!(q.status().dropped, 2);
        let terms: Vec<u64> = batch(&q).iter().map(|m| m.term.0).collect();
        assert_eq!(terms, vec![3, 4, 5]);
        q.close();
        q.push(heartbeat(9));
        let waker = Waker::from(Arc::new(Nop));
        assert_eq!(q.poll_batch(&mut Context::from_waker(&waker), &mut vec![], 1), Poll::Ready(false));
    }
}
