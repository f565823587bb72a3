//! Terms and leader election (paper §5.1, §5.2, §5.4.1).

use super::{Node, RoleState};
use crate::message::{AppendResponse, Body};
use crate::progress::Progress;
use crate::quorum::VoteResult;
use crate::time::Instant;
use crate::types::{HardState, LogIndex, NodeId, Payload, Term};
use alloc::collections::BTreeMap;

impl Node {
    /// Adopts `term` (if newer, forgetting the vote) and follows `leader`.
    ///
    /// The election timer keeps running (§5.2: only AppendEntries from the
    /// current leader or a granted vote restart it), so a stream of refused
    /// RequestVotes from stale candidates cannot starve the node whose log
    /// could win. A former leader, whose deadline is stale, gets a fresh one.
    pub(super) fn become_follower(&mut self, now: Instant, term: Term, leader: Option<NodeId>) {
        if term > self.hard.term {
            self.set_hard_state(HardState { term, voted_for: None, catching_up: self.hard.catching_up });
        }
        let was_leader = matches!(self.role, RoleState::Leader { .. });
        self.role = RoleState::Follower;
        self.leader = leader;
        if was_leader {
            self.reset_election_timer(now);
        }
    }

    /// Answers a message from an older term so that its sender catches up (§5.1).
    pub(super) fn answer_stale(&mut self, from: NodeId, body: &Body) {
        match body {
            Body::RequestVote { .. } => self.send_after_persist(from, Body::RequestVoteResponse { granted: false }),
            Body::AppendEntries { prev_log_index, .. } => {
                let last = self.log.last_index();
                let reject = AppendResponse::Reject {
                    prev_log_index: *prev_log_index,
                    last_log_index: last,
                    conflict_term: None,
                    conflict_index: last.next(),
                };
                self.send_after_persist(from, Body::AppendEntriesResponse(reject));
            }
            Body::InstallSnapshot { index, .. } => {
                let body = Body::InstallSnapshotResponse { index: *index, next_offset: 0, done: false };
                self.send_after_persist(from, body);
            }
            Body::RequestVoteResponse { .. }
            | Body::AppendEntriesResponse(_)
            | Body::InstallSnapshotResponse { .. } => {}
        }
    }

    /// Election timeout: become a candidate in the next term and vote for self (§5.2).
    pub(super) fn start_election(&mut self, now: Instant) {
        let term = self.hard.term.next();
        let me = self.config.id;
        self.set_hard_state(HardState { term, voted_for: Some(me), catching_up: self.hard.catching_up });
        self.role = RoleState::Candidate { votes: BTreeMap::from([(me, true)]) };
        self.leader = None;
        self.reset_election_timer(now);
        if self.tally() == VoteResult::Won {
            self.become_leader(now);
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.peers.clone() {
            // The request waits for the term and self-vote to be durable.
            self.send_after_persist(peer, Body::RequestVote { last_log_index, last_log_term });
        }
    }

    fn tally(&self) -> VoteResult {
        match &self.role {
            RoleState::Candidate { votes } => self.voters.vote_result(|id| votes.get(&id).copied()),
            _ => VoteResult::Pending,
        }
    }

    /// RequestVote in the current term: at most one vote per term, only for a
    /// candidate whose log is at least as up-to-date (§5.2, §5.4.1). A grant
    /// resets the election timer and leaves only once the vote is durable.
    pub(super) fn handle_request_vote(
        &mut self,
        now: Instant,
        from: NodeId,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let free = self.hard.voted_for.is_none_or(|v| v == from);
        let granted = free && self.log.is_up_to_date(last_log_index, last_log_term);
        if granted {
            self.set_hard_state(HardState {
                term: self.hard.term,
                voted_for: Some(from),
                catching_up: self.hard.catching_up,
            });
            self.reset_election_timer(now);
        }
        self.send_after_persist(from, Body::RequestVoteResponse { granted });
    }

    pub(super) fn handle_vote_response(&mut self, now: Instant, from: NodeId, granted: bool) {
        let RoleState::Candidate { votes } = &mut self.role else {
            return;
        };
        votes.insert(from, granted);
        if self.tally() == VoteResult::Won {
            self.become_leader(now);
        }
    }

    /// Won the election: lead, and append a no-op of the new term so that
    /// entries of earlier terms can commit (§5.4.2, §8).
    fn become_leader(&mut self, now: Instant) {
        let next = self.log.last_index().next();
        let progress = self.peers.iter().map(|&p| (p, Progress::new(next))).collect();
        self.role = RoleState::Leader { progress, dirty: super::PeerSet::default() };
        self.leader = Some(self.config.id);
        self.heartbeat_deadline = now + self.config.heartbeat_interval;
        self.append_as_leader(Payload::Noop);
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;
