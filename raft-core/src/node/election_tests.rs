//! One test per election rule, citing the Raft paper (Ongaro & Ousterhout, 2014).

use super::super::test_harness::{Harness, granted, vote_req};
use crate::message::Body;
use crate::message::*;
use crate::output::Event;
use crate::time::Duration;
use crate::types::{HardState, NodeId, Term};
use crate::{Config, Role};

#[test]
fn follower_waits_a_randomized_timeout_in_range_and_early_calls_are_no_ops() {
    // §5.2: election timeouts are chosen randomly from a fixed interval.
    let mut h = Harness::new(1, 3);
    let deadline = h.node.poll_timeout().unwrap();
    let wait = deadline.as_micros();
    assert!((300_000..600_000).contains(&wait), "{wait}");
    h.now = crate::Instant::from_micros(wait - 1);
    h.node.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.node.role(), Role::Follower);
    assert!(h.writes.is_empty() && h.sent.is_empty());
    assert_eq!(h.node.poll_timeout(), Some(deadline), "a spurious call keeps the deadline");
}

#[test]
fn timeouts_are_redrawn_for_every_election() {
    let mut h = Harness::new(1, 3);
    let mut waits = alloc::vec::Vec::new();
    for _ in 0..6 {
        let before = h.now;
        h.fire_timeout();
        waits.push((h.node.poll_timeout().unwrap() - h.now).as_micros());
        assert!(h.now > before);
    }
    waits.sort_unstable();
    waits.dedup();
    assert!(waits.len() > 3, "timeouts repeat: {waits:?}");
}

#[test]
fn candidate_increments_term_votes_for_itself_and_asks_only_after_persisting() {
    // §5.2 + Figure 2 ("persist before responding"): the term and self-vote are
    // durable before any RequestVote leaves.
    let mut h = Harness::new(1, 3);
    h.fire_timeout();
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(h.node.voted_for(), Some(NodeId(1)));
    assert_eq!(
        h.writes[0].hard_state,
        Some(HardState { term: Term(1), voted_for: Some(NodeId(1)), catching_up: false })
    );
    assert!(h.sent.is_empty(), "RequestVote sent before the vote was durable");
    h.persist();
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|o| o.message.term == Term(1) && matches!(o.message.body, Body::RequestVote(..))));
}

#[test]
fn majority_of_votes_makes_a_leader_that_appends_a_noop_and_sends_appends() {
    // §5.2: a candidate wins with votes from a majority; §8: no-op at term start.
    let mut h = Harness::new(1, 5);
    h.fire_timeout();
    h.persist();
    h.take_sent();
    h.recv(2, 1, Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: false }));
    assert_eq!(h.node.role(), Role::Candidate, "2 of 5 is not a majority");
    h.recv(3, 1, Body::RequestVoteResponse(VoteResponse { granted: false, pre_vote: false }));
    h.recv(3, 1, Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: false })); // duplicate from 3 changes its answer, still one vote
    h.recv(4, 1, Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: false }));
    assert_eq!(h.node.role(), Role::Leader);
    assert_eq!(h.node.leader(), Some(NodeId(1)));
    assert_eq!(h.node.last_log_index().0, 1);
    let appends = h.take_sent();
    assert_eq!(appends.iter().filter(|o| matches!(o.message.body, Body::AppendEntries(..))).count(), 4);
    assert!(h.events.contains(&Event::RoleChanged { role: Role::Leader, term: Term(1), leader: Some(NodeId(1)) }));
}

#[test]
fn one_vote_per_term_first_come_first_served() {
    // §5.2: each server votes for at most one candidate in a term.
    let mut h = Harness::new(1, 3);
    h.recv(2, 1, vote_req(0, 0));
    h.persist();
    assert_eq!(granted(&h.take_sent(), 2), Some(true));
    h.recv(3, 1, vote_req(5, 1));
    h.persist();
    assert_eq!(granted(&h.take_sent(), 3), Some(false), "second candidate in the same term");
    h.recv(2, 1, vote_req(0, 0));
    h.persist();
    assert_eq!(granted(&h.take_sent(), 2), Some(true), "a retried request from the same candidate");
}

#[test]
fn vote_reply_waits_until_the_vote_is_durable() {
    let mut h = Harness::new(1, 3);
    h.recv(2, 4, vote_req(0, 0));
    assert!(h.sent.is_empty());
    assert_eq!(
        h.writes.last().unwrap().hard_state,
        Some(HardState { term: Term(4), voted_for: Some(NodeId(2)), catching_up: false })
    );
    h.persist();
    assert_eq!(granted(&h.sent, 2), Some(true));
}

#[test]
fn vote_refused_to_a_candidate_with_a_less_up_to_date_log() {
    // §5.4.1: compare last terms, then lengths.
    let mut h = Harness::new(1, 3);
    h.elect();
    h.node.propose(h.now, "x").unwrap();
    h.persist();
    // Node 1's log: [t1 noop, t1 "x"]. It steps down on term 5 but refuses.
    h.recv(2, 5, vote_req(1, 1));
    h.persist();
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(granted(&h.take_sent(), 2), Some(false));
    // Same last term and as long: granted.
    h.recv(3, 5, vote_req(2, 1));
    h.persist();
    assert_eq!(granted(&h.take_sent(), 3), Some(true));
}

#[test]
fn any_message_with_a_higher_term_makes_a_leader_step_down_and_forget_its_vote() {
    // §5.1: if a server learns of a larger term it becomes follower.
    let mut h = Harness::new(1, 3);
    h.elect();
    h.recv(3, 7, Body::RequestVoteResponse(VoteResponse { granted: false, pre_vote: false }));
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.term(), Term(7));
    assert_eq!(h.node.voted_for(), None);
    assert_eq!(h.node.leader(), None);
    assert_eq!(
        h.writes.last().unwrap().hard_state,
        Some(HardState { term: Term(7), voted_for: None, catching_up: false })
    );
}

#[test]
fn stale_term_requests_are_refused_with_the_current_term() {
    // §5.1: a request with a stale term is rejected; the reply teaches the sender the term.
    let mut h = Harness::new(1, 3);
    h.recv(2, 3, vote_req(0, 0));
    h.persist();
    h.take_sent();
    h.recv(3, 2, vote_req(9, 2));
    h.persist();
    let sent = h.take_sent();
    assert_eq!(granted(&sent, 3), Some(false));
    assert_eq!(sent[0].message.term, Term(3));
    assert_eq!(h.node.voted_for(), Some(NodeId(2)));
}

#[test]
fn candidate_yields_to_a_leader_of_its_own_term() {
    // §5.2: a candidate that receives AppendEntries from a leader of its term becomes follower.
    let mut h = Harness::new(1, 3);
    h.fire_timeout();
    h.persist();
    h.recv(
        2,
        1,
        Body::AppendEntries(AppendEntries {
            prev_log_index: crate::LogIndex(0),
            prev_log_term: Term(0),
            entries: alloc::vec::Vec::new(),
            leader_commit: crate::LogIndex(0),
            round: 0,
        }),
    );
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.leader(), Some(NodeId(2)));
    assert_eq!(h.node.term(), Term(1));
}

#[test]
fn leader_heartbeats_exactly_every_interval_and_never_times_out() {
    // §5.2: leaders send periodic heartbeats (empty AppendEntries).
    let mut h = Harness::new(1, 3);
    h.elect();
    for peer in [2, 3] {
        let ok = AppendResult::Success { match_index: crate::LogIndex(1) };
        h.recv(peer, 1, Body::AppendEntriesResponse(crate::AppendResponse { round: 0, result: ok }));
    }
    h.take_sent();
    let start = h.now;
    for k in 1..=5u64 {
        let at = h.node.poll_timeout().unwrap();
        assert_eq!(at, start + Duration::from_millis(110 * k));
        h.fire_timeout();
        let beats = h.take_sent();
        assert_eq!(beats.len(), 2, "one message per follower per interval");
        assert_eq!(h.node.role(), Role::Leader);
    }
}

#[test]
fn messages_from_self_are_ignored_and_unknown_candidates_need_a_newer_log() {
    // Any authenticated sender is heard. A candidate this node's
    // configurations do not list gets a vote only with a strictly newer log:
    // only then may it be a voter of a configuration this node has not
    // received (dissertation §4.1). Otherwise it may be a removed node whose
    // removal a snapshot compacted away (found by the membership schedules).
    let mut h = Harness::new(1, 3);
    h.recv(1, 50, vote_req(0, 0));
    h.persist();
    assert_eq!(h.node.term(), Term(0));
    assert!(h.sent.is_empty());
    h.recv(9, 50, vote_req(0, 0));
    h.persist();
    assert_eq!((h.node.term(), h.node.voted_for()), (Term(50), None));
    assert_eq!(super::super::test_harness::granted(&h.sent, 9), Some(false));
    h.sent.clear();
    h.recv(8, 51, vote_req(1, 50));
    h.persist();
    assert_eq!((h.node.term(), h.node.voted_for()), (Term(51), Some(NodeId(8))));
    assert_eq!(super::super::test_harness::granted(&h.sent, 8), Some(true));
}

#[test]
fn a_single_node_cluster_elects_itself_and_commits_alone() {
    let mut h = Harness::with(Config::new(NodeId(4), [NodeId(4)]), crate::Restored::fresh());
    h.fire_timeout();
    assert_eq!(h.node.role(), Role::Leader);
    let i = h.node.propose(h.now, "a").unwrap();
    h.drain();
    assert!(h.node.commit_index() < i, "must not commit before its own write is durable");
    h.persist();
    assert_eq!(h.node.commit_index(), i);
    assert_eq!(h.applied.len(), 2);
}

#[test]
fn restart_keeps_term_and_vote_so_no_second_vote_in_a_term() {
    // Figure 2: currentTerm and votedFor are persistent state.
    let restored = crate::Restored::new(
        HardState { term: Term(3), voted_for: Some(NodeId(2)), catching_up: false },
        alloc::vec::Vec::new(),
    );
    let mut h = Harness::with(Config::new(NodeId(1), super::super::test_harness::ids(3)), restored);
    h.recv(3, 3, vote_req(0, 0));
    h.persist();
    assert_eq!(granted(&h.sent, 3), Some(false));
}

#[test]
fn a_refused_vote_request_with_a_higher_term_does_not_restart_the_election_timer() {
    // §5.2: the timer restarts only on AppendEntries from the current leader or
    // on granting a vote. Otherwise stale candidates could keep the one node
    // whose log can win from ever standing (found by the simulator, seed 3008).
    let mut h = Harness::new(1, 3);
    h.elect();
    h.node.propose(h.now, "x").unwrap();
    h.persist();
    h.recv(2, 5, vote_req(0, 0)); // higher term, stale log: refused; leader steps down
    let deadline = h.node.poll_timeout().unwrap();
    h.now = deadline - Duration::from_micros(1);
    h.recv(3, 6, vote_req(0, 0)); // again, just before the deadline
    h.persist();
    assert_eq!(granted(&h.sent, 3), Some(false));
    assert_eq!(h.node.poll_timeout(), Some(deadline), "refused request restarted the timer");
    h.fire_timeout();
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(7));
}

#[test]
fn a_leader_that_steps_down_keeps_its_vote_in_that_term() {
    // §5.2: at most one vote per term. A leader that check-quorum deposes
    // stays in its term, where it voted for itself: another candidate of
    // that term is refused.
    let mut h = super::super::test_harness::node(1, 3);
    super::super::test_harness::elect_by_pre_vote(&mut h);
    let term = h.node.term();
    for _ in 0..20 {
        if h.node.role() != Role::Leader {
            break;
        }
        h.fire_timeout(); // nobody answers
    }
    assert_eq!((h.node.role(), h.node.term(), h.node.voted_for()), (Role::Follower, term, Some(NodeId(1))));
    h.take_sent();
    h.recv(2, term.0, super::super::test_harness::vote_request((9, term.0), false, false));
    h.persist();
    assert_eq!(granted(&h.take_sent(), 2), Some(false));
}

#[test]
fn a_refused_pre_vote_of_a_higher_term_brings_the_pre_candidate_to_that_term() {
    // Only a *granted* pre-vote answer leaves the term alone; a refusal from
    // a node of a later term makes this one adopt it, as any message would.
    let mut h = super::super::test_harness::node(1, 3);
    h.fire_timeout();
    assert_eq!((h.node.role(), h.node.term()), (Role::PreCandidate, Term(0)));
    h.recv(2, 5, super::super::test_harness::pre_grant(false));
    assert_eq!((h.node.role(), h.node.term()), (Role::Follower, Term(5)));
}
