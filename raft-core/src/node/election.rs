//! Terms and leader election (paper §5.1, §5.2, §5.4.1), with pre-vote,
//! vote stickiness and check-quorum (dissertation §9.6, §6.2).

use super::leader::{LeaderState, ReadTarget};
use super::{MAX_TERM, Node, RoleState};
use crate::message::{AppendResult, Body, Message, RequestVote, SnapshotResponse, VoteResponse};
use crate::output::{Event, Outgoing, Output, TransferOutcome};
use crate::quorum::VoteResult;
use crate::time::Instant;
use crate::types::{HardState, NodeId, Payload, Term};
use crate::{AppendResponse, ReadError, ReadIndexResponse};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use core::cmp::Ordering;

impl Node {
    /// The term rules, applied once before any message is looked at (§5.1):
    /// a higher term is adopted (this node becomes a follower), a lower one is
    /// answered so that its sender catches up, and the message is dropped.
    /// Three exceptions keep a node cut off from the cluster from disrupting
    /// it: a pre-vote request, or a granted pre-vote answer, never changes a
    /// term; and while this node still hears from a leader (check-quorum), a
    /// vote request of a higher term is ignored unless a leadership transfer
    /// asked for it. Returns false if the message must be dropped.
    pub(super) fn apply_term_rules(&mut self, now: Instant, from: NodeId, msg: &Message) -> bool {
        match msg.term.cmp(&self.hard.term) {
            Ordering::Greater => {
                match &msg.body {
                    Body::RequestVote(r) if r.pre_vote => {}
                    Body::RequestVoteResponse(r) if r.pre_vote && r.granted => {}
                    Body::RequestVote(r) if !r.transfer && self.in_lease(now) => return false,
                    body => {
                        let leader =
                            matches!(body, Body::AppendEntries(_) | Body::InstallSnapshot(_) | Body::TimeoutNow)
                                .then_some(from);
                        self.become_follower(now, msg.term, leader);
                    }
                }
                true
            }
            Ordering::Less => {
                self.answer_stale(from, &msg.body);
                false
            }
            Ordering::Equal => true,
        }
    }

    /// True while this node still hears from a leader: it is a follower that
    /// heard from the leader within `election_timeout_min`, or a leader that
    /// a majority answered within that time. Only with check-quorum. A node
    /// that started less than `election_timeout_min` ago counts as in lease
    /// too: it may have answered a leader a moment before it crashed, and that
    /// leader's lease counts on it not voting yet.
    pub(super) fn in_lease(&mut self, now: Instant) -> bool {
        let window = self.config.election_timeout_min;
        let just_started = now < self.started_at + window && !matches!(self.role, RoleState::Leader(_));
        self.config.check_quorum && (just_started || self.heard_from_leader_within(now, window))
    }

    fn heard_from_leader_within(&mut self, now: Instant, window: crate::Duration) -> bool {
        let me = self.config.id;
        match &self.role {
            RoleState::Leader(l) => now < l.quorum_contact(&self.quorum, me) + window,
            _ => self.leader.is_some() && self.leader_contact.is_some_and(|t| now < t + window),
        }
    }

    /// Adopts `term` (if newer, forgetting the vote) and follows `leader`.
    ///
    /// The election timer keeps running (§5.2: only AppendEntries from the
    /// current leader or a granted vote restart it), so a stream of refused
    /// RequestVotes from stale candidates cannot starve the node whose log
    /// could win. A former leader, whose deadline is stale, gets a fresh one.
    pub(super) fn become_follower(&mut self, now: Instant, term: Term, leader: Option<NodeId>) {
        let newer = term > self.hard.term;
        if newer {
            self.set_hard_state(HardState { term, voted_for: None, ..self.hard });
        }
        let was_leader = matches!(self.role, RoleState::Leader(_));
        if was_leader {
            let outcome = if newer { TransferOutcome::HandedOver } else { TransferOutcome::LeadershipLost };
            self.end_leadership(outcome);
            self.reset_election_timer(now);
        }
        self.role = RoleState::Follower;
        self.set_leader(leader);
    }

    /// Records the leader of the current term. Reads this node asked a
    /// previous leader to confirm fail: that leader may never answer.
    pub(super) fn set_leader(&mut self, leader: Option<NodeId>) {
        if leader != self.leader {
            self.change_leader(leader);
        }
    }

    /// Out of line: `set_leader` runs for every AppendEntries, a change of
    /// leader rarely.
    #[cold]
    #[inline(never)]
    fn change_leader(&mut self, leader: Option<NodeId>) {
        self.leader_contact = None;
        self.fail_remote_reads(ReadError::LeaderChanged);
        self.expire_forwards(None);
        self.leader = leader;
    }

    /// Leaves the leader role: waiting reads fail (remote ones are told), a
    /// transfer in progress reports `outcome`.
    pub(super) fn end_leadership(&mut self, outcome: TransferOutcome) {
        let RoleState::Leader(l) = core::mem::replace(&mut self.role, RoleState::Follower) else {
            return;
        };
        let targets = l.reads.iter().map(|r| r.target).chain(l.early_reads.iter().copied());
        for target in targets {
            match target {
                ReadTarget::Local(id) => {
                    self.out.push_back(Output::Read { id, result: Err(ReadError::LeaderChanged) });
                }
                ReadTarget::Remote(to, id) => {
                    self.send(to, Body::ReadIndexResponse(ReadIndexResponse { id, index: None }));
                }
            }
        }
        if let Some(t) = l.transfer {
            self.out.push_back(Output::Event(Event::TransferFinished { to: t.to, outcome }));
        }
    }

    /// Answers a message from an older term so that its sender catches up (§5.1).
    pub(super) fn answer_stale(&mut self, from: NodeId, body: &Body) {
        match body {
            Body::RequestVote(r) => {
                let refusal = VoteResponse { granted: false, pre_vote: r.pre_vote };
                self.send_after_persist(from, Body::RequestVoteResponse(refusal));
            }
            Body::AppendEntries(req) => {
                let last = self.log.last_index();
                let result = AppendResult::Reject {
                    prev_log_index: req.prev_log_index,
                    last_log_index: last,
                    conflict_term: None,
                    conflict_index: last.next(),
                };
                // Round 0: this answer proves nothing about any round of the
                // (newer) leadership that may receive it.
                let resp = AppendResponse { round: 0, result };
                self.send_after_persist(from, Body::AppendEntriesResponse(resp));
            }
            Body::InstallSnapshot(req) => {
                let resp =
                    SnapshotResponse { index: req.index, next_offset: 0, done: false, too_large: false, round: 0 };
                self.send_after_persist(from, Body::InstallSnapshotResponse(resp));
            }
            Body::ReadIndex(req) => {
                self.send(from, Body::ReadIndexResponse(ReadIndexResponse { id: req.id, index: None }));
            }
            Body::Forward(req) => {
                let outcome = crate::message::ForwardOutcome::NotLeader;
                self.send(from, Body::ForwardResponse(crate::message::ForwardResponse { id: req.id, outcome }));
            }
            Body::RequestVoteResponse(_)
            | Body::AppendEntriesResponse(_)
            | Body::InstallSnapshotResponse(_)
            | Body::TimeoutNow
            | Body::ReadIndexResponse(_)
            | Body::ForwardResponse(_) => {}
        }
    }

    /// May this node campaign at all? Only voters that lost nothing do: of
    /// the configuration in force, or of the newest committed one. A node
    /// whose removal is not committed yet is not removed: the configuration
    /// that removes it may exist only in its own log, and the joint
    /// configuration still in force elsewhere may need it to lead (and so
    /// finish the change) before anyone else can.
    fn may_campaign(&self) -> bool {
        let me = self.config.id;
        let voter = self.membership.is_voter(me) || self.committed_membership().is_voter(me);
        voter && !self.hard.catching_up && self.hard.term < MAX_TERM
    }

    /// Election timeout (or `TimeoutNow` with `transfer`): with pre-vote, ask
    /// first whether a majority would vote, without changing the term;
    /// otherwise (or when a transfer asks) start a real election.
    pub(super) fn campaign(&mut self, now: Instant, transfer: bool) {
        self.reset_election_timer(now);
        if !self.may_campaign() {
            return;
        }
        if !self.config.pre_vote || transfer {
            self.start_election(now, transfer);
            return;
        }
        let me = self.config.id;
        self.role = RoleState::PreCandidate { votes: BTreeMap::from([(me, true)]) };
        self.set_leader(None);
        if self.tally() == VoteResult::Won {
            self.start_election(now, false);
            return;
        }
        // Nothing to persist: the term and vote are unchanged.
        let proposed = self.hard.term.next();
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let req = RequestVote { last_log_index, last_log_term, pre_vote: true, transfer: false };
        for peer in self.vote_targets() {
            let message = Message { term: proposed, body: Body::RequestVote(req.clone()) };
            self.out.push_back(Output::Send(Outgoing { to: peer, message }));
        }
    }

    /// Become a candidate in the next term and vote for self (§5.2).
    fn start_election(&mut self, now: Instant, transfer: bool) {
        let term = self.hard.term.next();
        let me = self.config.id;
        self.set_hard_state(HardState { term, voted_for: Some(me), ..self.hard });
        self.role = RoleState::Candidate { votes: BTreeMap::from([(me, true)]) };
        self.set_leader(None);
        self.reset_election_timer(now);
        if self.tally() == VoteResult::Won {
            self.become_leader(now);
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let req = RequestVote { last_log_index, last_log_term, pre_vote: false, transfer };
        for peer in self.vote_targets() {
            // The request waits for the term and self-vote to be durable.
            self.send_after_persist(peer, Body::RequestVote(req.clone()));
        }
    }

    fn tally(&self) -> VoteResult {
        match &self.role {
            RoleState::PreCandidate { votes } | RoleState::Candidate { votes } => {
                self.quorum.vote_result(|id| votes.get(&id).copied())
            }
            _ => VoteResult::Pending,
        }
    }

    /// A (pre-)vote request. A real one is answered in the current term: at
    /// most one vote per term, only for a candidate whose log is at least as
    /// up-to-date (§5.2, §5.4.1); a grant resets the election timer and
    /// leaves only once the vote is durable. A pre-vote (for `term`, above
    /// ours) is granted with the same log check, only if this node has not
    /// heard from a leader within `election_timeout_min`, and changes nothing.
    pub(super) fn handle_request_vote(&mut self, now: Instant, from: NodeId, term: Term, req: RequestVote) {
        let up_to_date = self.log.is_up_to_date(req.last_log_index, req.last_log_term);
        // A candidate that an earlier configuration in this node's log lists
        // and the newest one removed is refused: had that removal committed,
        // every majority of the new voters holds it, so a removed node that
        // never learned the commit cannot win. A candidate that neither this
        // node's newest nor its committed configuration lists as a voter is
        // refused too, unless its log is strictly newer: only then may it
        // hold a configuration this node has not received (dissertation
        // §4.1). (Once a snapshot has compacted a removal away, the first
        // rule no longer sees it; the second still refuses the removed node.)
        let listed = self.membership.is_voter(from) || self.committed_membership().is_voter(from);
        let newer = (req.last_log_term, req.last_log_index) > (self.log.last_term(), self.log.last_index());
        let may_vote = !self.hard.catching_up && !self.removed_voter(from) && (listed || newer);
        if req.pre_vote {
            let quiet = !self.heard_from_leader_within(now, self.config.election_timeout_min);
            let granted = term > self.hard.term && up_to_date && may_vote && quiet;
            let reply_term = if granted { term } else { self.hard.term };
            let body = Body::RequestVoteResponse(VoteResponse { granted, pre_vote: true });
            let message = Message { term: reply_term, body };
            self.out.push_back(Output::Send(Outgoing { to: from, message }));
            return;
        }
        let free = self.hard.voted_for.is_none_or(|v| v == from);
        let granted = free && up_to_date && may_vote;
        if granted {
            self.set_hard_state(HardState { voted_for: Some(from), ..self.hard });
            self.reset_election_timer(now);
        }
        let body = Body::RequestVoteResponse(VoteResponse { granted, pre_vote: false });
        self.send_after_persist(from, body);
    }

    pub(super) fn handle_vote_response(&mut self, now: Instant, from: NodeId, term: Term, resp: VoteResponse) {
        let votes = match &mut self.role {
            // A pre-vote answer counts only for the term this node proposed.
            RoleState::PreCandidate { votes } if resp.pre_vote && term == self.hard.term.next() => votes,
            RoleState::Candidate { votes } if !resp.pre_vote && term == self.hard.term => votes,
            _ => return,
        };
        votes.insert(from, resp.granted);
        if self.tally() == VoteResult::Won {
            match self.role {
                RoleState::PreCandidate { .. } => self.start_election(now, false),
                _ => self.become_leader(now),
            }
        }
    }

    /// The leader asks this node to take over now (a leadership transfer):
    /// campaign at once, without pre-vote, and with voters told to ignore
    /// their leader stickiness.
    pub(super) fn handle_timeout_now(&mut self, now: Instant, from: NodeId) {
        if matches!(self.role, RoleState::Leader(_)) || self.leader != Some(from) {
            return;
        }
        self.campaign(now, true);
    }

    /// Won the election: lead, and append a no-op of the new term so that
    /// entries of earlier terms can commit (§5.4.2, §8).
    fn become_leader(&mut self, now: Instant) {
        let next = self.log.last_index().next();
        let heartbeat = now + self.config.heartbeat_interval;
        self.role = RoleState::Leader(Box::new(LeaderState::new(&self.peers, next, now, heartbeat)));
        self.set_leader(Some(self.config.id));
        // The first leader of a cluster writes its bootstrap configuration
        // into the log, which governs from then on.
        let first =
            if self.config_logged() { Payload::Noop } else { Payload::Membership(self.membership.clone().into()) };
        self.append_as_leader(first);
    }

    /// A heartbeat interval passed: check-quorum and the transfer deadline,
    /// then a new heartbeat round to every follower.
    pub(super) fn leader_tick(&mut self, now: Instant) {
        let me = self.config.id;
        let window = self.config.election_timeout_max;
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        l.heartbeat_deadline = now + self.config.heartbeat_interval;
        let lost = self.config.check_quorum && now >= l.quorum_contact(&self.quorum, me) + window;
        if lost {
            // A majority has not answered for an election timeout: another
            // leader may exist. Step down rather than serve clients in vain.
            self.become_follower(now, self.hard.term, None);
            return;
        }
        if let Some(t) = l.transfer.filter(|t| now >= t.deadline) {
            l.transfer = None;
            let outcome = TransferOutcome::TimedOut;
            self.out.push_back(Output::Event(Event::TransferFinished { to: t.to, outcome }));
        }
        self.broadcast_heartbeat(now);
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;
