//! What the leader knows about each follower's log, and the flow control
//! that bounds what it sends (paper §5.3; etcd's probe/replicate states).

use crate::types::LogIndex;
use alloc::collections::VecDeque;

/// How the leader is sending to one follower.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The follower's log position is unknown: one AppendEntries at a time,
    /// resent each heartbeat until one is answered.
    Probe {
        /// A probe is outstanding; wait for its answer or the next heartbeat.
        paused: bool,
    },
    /// The follower is known to match up to `matched`: pipeline messages
    /// optimistically, bounded by the in-flight window.
    Replicate,
    /// The follower needs entries the leader compacted: send the snapshot at
    /// `index` chunk by chunk, one chunk in flight, resent each heartbeat.
    Snapshot {
        /// The snapshot being sent.
        index: LogIndex,
        /// Where the next chunk starts.
        offset: u64,
        /// A chunk is outstanding.
        paused: bool,
        /// The follower refused it as too large: nothing is resent until
        /// there is a newer snapshot.
        refused: bool,
    },
}

/// The leader's view of one follower.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to be durably replicated on the follower.
    pub(crate) matched: LogIndex,
    /// Next index to send.
    pub(crate) next: LogIndex,
    /// The highest commit index this follower can have learned from us
    /// (`min(leader_commit, last index in the message)` of what we sent).
    pub(crate) commit_told: LogIndex,
    /// The highest heartbeat round the follower has answered.
    pub(crate) acked_round: u64,
    pub(crate) mode: Mode,
    /// Pipelined messages not yet acknowledged: (last index, bytes).
    inflight: VecDeque<(LogIndex, usize)>,
    inflight_bytes: usize,
    /// `matched` moved since the last heartbeat tick.
    progressed_since_tick: bool,
    /// Messages were in flight at the last heartbeat tick.
    window_at_tick: bool,
}

impl Progress {
    pub(crate) fn new(next: LogIndex) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            commit_told: LogIndex(0),
            acked_round: 0,
            mode: Mode::Probe { paused: false },
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            progressed_since_tick: false,
            window_at_tick: false,
        }
    }

    /// True if a message may be sent now under the window (count and bytes).
    pub(crate) fn can_send(&self, max_msgs: usize, max_bytes: usize) -> bool {
        match self.mode {
            Mode::Probe { paused } | Mode::Snapshot { paused, .. } => !paused,
            Mode::Replicate => self.inflight.len() < max_msgs && self.inflight_bytes < max_bytes,
        }
    }

    /// True if no pipelined message awaits an acknowledgement.
    pub(crate) fn idle(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Records that entries up to `last` (`bytes` of them) were sent.
    pub(crate) fn sent(&mut self, last: LogIndex, bytes: usize) {
        match &mut self.mode {
            Mode::Probe { paused } | Mode::Snapshot { paused, .. } => *paused = true,
            Mode::Replicate => {
                if last >= self.next {
                    self.inflight.push_back((last, bytes));
                    self.inflight_bytes += bytes;
                    self.next = last.next();
                }
            }
        }
    }

    /// A success acknowledgement up to `index`. Returns true if `matched` moved.
    pub(crate) fn acked(&mut self, index: LogIndex) -> bool {
        let moved = index > self.matched;
        if moved {
            self.matched = index;
            self.progressed_since_tick = true;
        }
        if self.next <= self.matched {
            self.next = self.matched.next();
        }
        while let Some(&(last, bytes)) = self.inflight.front() {
            if last > self.matched {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        // (An ack while sending a snapshot changes nothing but `matched`: the
        // snapshot answer decides.) An answer at or past the probe's position
        // tells the follower's position; an answer below it (a heartbeat
        // anchored lower) does not.
        if let Mode::Probe { .. } = self.mode
            && index.next() >= self.next
        {
            self.mode = Mode::Replicate;
            self.next = self.matched.next();
            self.clear_inflight();
        }
        moved
    }

    /// Falls back to probing from `next` (after a rejection or suspected loss).
    pub(crate) fn probe_from(&mut self, next: LogIndex) {
        self.mode = Mode::Probe { paused: false };
        self.next = next.max(self.matched.next());
        self.clear_inflight();
    }

    /// Called at each heartbeat tick. Unpauses a probe; in replicate mode, a
    /// window that made no progress for a whole heartbeat interval is presumed
    /// lost and the follower is probed again from `matched + 1`.
    /// Returns true if the peer needs an AppendEntries now.
    pub(crate) fn tick(&mut self) -> bool {
        let stalled = self.window_at_tick && !self.progressed_since_tick && !self.inflight.is_empty();
        self.progressed_since_tick = false;
        self.window_at_tick = !self.inflight.is_empty();
        match self.mode {
            Mode::Probe { .. } => {
                self.mode = Mode::Probe { paused: false };
                true
            }
            Mode::Snapshot { refused: true, .. } => false,
            Mode::Snapshot { index, offset, .. } => {
                self.mode = Mode::Snapshot { index, offset, paused: false, refused: false };
                true
            }
            Mode::Replicate if stalled => {
                let next = self.matched.next();
                self.probe_from(next);
                self.window_at_tick = false;
                true
            }
            Mode::Replicate => false,
        }
    }

    /// Starts (or restarts) sending the snapshot at `index` from offset 0.
    pub(crate) fn start_snapshot(&mut self, index: LogIndex) {
        self.mode = Mode::Snapshot { index, offset: 0, paused: false, refused: false };
        self.clear_inflight();
    }

    /// The follower answered a chunk of the snapshot at `index`. Returns true
    /// if the follower now holds it (then it is probed right after it).
    pub(crate) fn snapshot_answered(&mut self, index: LogIndex, next_offset: u64, done: bool) -> bool {
        let Mode::Snapshot { index: sending, .. } = self.mode else {
            return false;
        };
        if sending != index {
            return false; // an answer about an older snapshot
        }
        if done {
            if index > self.matched {
                self.matched = index;
                self.progressed_since_tick = true;
            }
            self.mode = Mode::Probe { paused: false };
            self.next = self.matched.next();
            return true;
        }
        self.mode = Mode::Snapshot { index, offset: next_offset, paused: false, refused: false };
        false
    }

    /// The follower refused the snapshot at `index` as too large.
    pub(crate) fn snapshot_refused(&mut self, index: LogIndex) {
        if let Mode::Snapshot { index: sending, offset, .. } = self.mode
            && sending == index
        {
            self.mode = Mode::Snapshot { index, offset, paused: true, refused: true };
        }
    }

    fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    #[cfg(test)]
    pub(crate) fn inflight_len(&self) -> usize {
        self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_then_waits_for_answer_or_tick() {
        let mut p = Progress::new(LogIndex(10));
        assert!(p.can_send(4, 100));
        p.sent(LogIndex(12), 10);
        assert!(!p.can_send(4, 100));
        assert_eq!(p.next, LogIndex(10), "probe does not advance next optimistically");
        assert!(p.tick());
        assert!(p.can_send(4, 100));
    }

    #[test]
    fn ack_switches_to_replicate_and_window_bounds_count_and_bytes() {
        let mut p = Progress::new(LogIndex(1));
        p.sent(LogIndex(3), 30);
        assert!(p.acked(LogIndex(3)));
        assert_eq!(p.mode, Mode::Replicate);
        assert_eq!(p.next, LogIndex(4));
        p.sent(LogIndex(5), 40);
        p.sent(LogIndex(7), 40);
        assert!(!p.can_send(2, 1000), "count window full");
        assert!(!p.can_send(10, 80), "byte window full");
        assert!(p.can_send(10, 81));
        assert_eq!(p.next, LogIndex(8));
        assert!(p.acked(LogIndex(5)));
        assert_eq!(p.inflight_len(), 1);
        assert!(p.can_send(2, 1000));
        assert!(!p.can_send(10, 40), "the 40 bytes still in flight fill a 40-byte window");
        assert!(p.can_send(10, 41));
        assert!(!p.acked(LogIndex(4)), "stale ack does not move match");
        assert_eq!(p.matched, LogIndex(5));
    }

    #[test]
    fn stalled_window_falls_back_to_probe_after_a_silent_tick() {
        let mut p = Progress::new(LogIndex(1));
        p.acked(LogIndex(0));
        assert_eq!(p.mode, Mode::Replicate);
        p.sent(LogIndex(4), 10);
        assert!(!p.tick(), "the window opened less than an interval ago");
        // No ack during a whole interval: presumed lost.
        assert!(p.tick());
        assert_eq!(p.mode, Mode::Probe { paused: false });
        assert_eq!(p.next, LogIndex(1));
    }

    #[test]
    fn snapshot_chunks_resume_and_finish_into_probe() {
        let mut p = Progress::new(LogIndex(1));
        p.start_snapshot(LogIndex(50));
        assert!(p.can_send(1, 1));
        p.sent(LogIndex(50), 0);
        assert!(!p.can_send(1, 1), "one chunk at a time");
        assert!(!p.snapshot_answered(LogIndex(40), 0, true), "answer about another snapshot");
        assert!(!p.snapshot_answered(LogIndex(50), 4096, false));
        assert_eq!(p.mode, Mode::Snapshot { index: LogIndex(50), offset: 4096, paused: false, refused: false });
        p.sent(LogIndex(50), 0);
        assert!(p.tick(), "a lost chunk is resent at the next heartbeat");
        assert!(p.snapshot_answered(LogIndex(50), 8192, true));
        assert_eq!((p.matched, p.next, p.mode), (LogIndex(50), LogIndex(51), Mode::Probe { paused: false }));
    }

    #[test]
    fn probe_from_never_goes_below_match() {
        let mut p = Progress::new(LogIndex(1));
        p.acked(LogIndex(6));
        p.probe_from(LogIndex(2));
        assert_eq!(p.next, LogIndex(7));
    }
}
