//! Pre-vote, stickiness, check-quorum, leadership transfer, ReadIndex and
//! lease reads, catching-up nodes and out-of-range terms: one test per rule,
//! under the default configuration (pre-vote and check-quorum on).

use super::test_harness::{
    Harness, ack, elect_by_pre_vote, heartbeat, ids, leader_round, node, pre_grant, vote_grant, vote_request,
};
use super::{MAX_TERM, RoleState};
use crate::message::*;
use crate::output::{Event, ReadId, TransferOutcome};
use crate::types::{HardState, LogIndex, NodeId, Term};
use crate::{Config, Duration, ProposeError, ReadError, ReadMode, Restored, Role, TransferError};
use alloc::vec::Vec;

fn sent_kinds(h: &mut Harness) -> Vec<(u64, &'static str, Term)> {
    h.take_sent().into_iter().map(|o| (o.to.0, o.message.body.kind(), o.message.term)).collect()
}

#[test]
fn pre_vote_changes_no_term_and_a_cut_off_node_never_raises_its_term() {
    let mut h = node(1, 3);
    for _ in 0..10 {
        h.fire_timeout();
        assert_eq!(h.node.role(), Role::PreCandidate);
        assert_eq!(h.node.term(), Term(0), "a pre-vote raised the term");
        assert!(h.writes.is_empty(), "a pre-vote wrote something");
        let sent = sent_kinds(&mut h);
        assert_eq!(sent, [(2, "PreVote", Term(1)), (3, "PreVote", Term(1))]);
    }
    // One refusal and one grant: a majority of 3 (with itself) is enough.
    h.recv(2, 1, pre_grant(true));
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(1));
}

#[test]
fn without_pre_vote_a_cut_off_node_raises_its_term_at_every_timeout() {
    // The mechanism switched off: the test above fails this way.
    let mut c = Config::new(NodeId(1), ids(3));
    c.pre_vote = false;
    let mut h = Harness::exact(c, Restored::fresh());
    for t in 1..=3 {
        h.fire_timeout();
        assert_eq!(h.node.term(), Term(t));
    }
}

#[test]
fn pre_vote_is_granted_only_to_an_up_to_date_log_by_a_voter_that_lost_its_leader() {
    let mut h = node(2, 3);
    // Heard from leader 1 in term 1: sticky for election_timeout_min.
    h.recv(1, 1, heartbeat(1, 0));
    h.take_sent();
    h.persist();
    h.take_sent();
    h.recv(3, 2, vote_request((0, 0), true, false));
    let refused = h.take_sent();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].message.body, pre_grant(false));
    assert_eq!(refused[0].message.term, Term(1), "a refusal carries the voter's own term");
    // After the minimum election timeout without news from the leader it grants.
    h.now += Duration::from_millis(300);
    h.recv(3, 2, vote_request((0, 0), true, false));
    let granted = h.take_sent();
    assert_eq!(granted[0].message.body, pre_grant(true));
    assert_eq!(granted[0].message.term, Term(2), "a grant echoes the proposed term");
    assert_eq!((h.node.term(), h.node.voted_for()), (Term(1), None), "a pre-vote changed the voter");
    assert!(h.writes.iter().all(|w| w.hard_state.is_none_or(|hs| hs.term == Term(1))));
    // A candidate whose log is behind is refused even then.
    h.recv(
        1,
        1,
        Body::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: alloc::vec![crate::Entry { term: Term(1), index: LogIndex(1), payload: crate::Payload::Noop }],
            leader_commit: LogIndex(0),
            round: 2,
        }),
    );
    h.persist();
    h.take_sent();
    h.now += Duration::from_millis(300);
    h.recv(3, 2, vote_request((0, 0), true, false));
    assert_eq!(h.take_sent()[0].message.body, pre_grant(false));
}

#[test]
fn a_node_that_hears_from_its_leader_ignores_higher_term_votes_unless_a_transfer_asks() {
    let mut h = node(2, 3);
    h.recv(1, 1, heartbeat(1, 0));
    h.persist();
    h.take_sent();
    h.recv(3, 5, vote_request((9, 4), false, false));
    assert_eq!(h.node.term(), Term(1), "stickiness: the higher term was adopted");
    assert!(h.take_sent().is_empty());
    h.recv(3, 5, vote_request((9, 4), false, true));
    assert_eq!(h.node.term(), Term(5));
    assert_eq!(h.node.voted_for(), Some(NodeId(3)));
}

#[test]
fn check_quorum_steps_a_leader_down_once_a_majority_is_silent_for_an_election_timeout() {
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    let elected_at = h.now;
    // Node 2 keeps answering every heartbeat round: the leader stays.
    for _ in 0..20 {
        h.fire_timeout();
        let round = match &h.node.role {
            RoleState::Leader(l) => l.round,
            _ => panic!("stepped down at {:?} although node 2 answers", h.now),
        };
        h.recv(2, 1, ack(round, 1));
        h.take_sent();
    }
    // Now nobody answers.
    let silent_from = h.now;
    while h.node.role() == Role::Leader {
        h.fire_timeout();
        assert!(h.now - silent_from <= Duration::from_millis(600 + 110), "still leader at {:?}", h.now);
    }
    assert!(h.now - silent_from >= Duration::from_millis(600 - 110));
    assert!(h.now > elected_at);
    assert_eq!((h.node.role(), h.node.term(), h.node.leader()), (Role::Follower, Term(1), None));
}

#[test]
fn without_check_quorum_an_isolated_leader_leads_forever() {
    let mut c = Config::new(NodeId(1), ids(3));
    c.check_quorum = false;
    let mut h = Harness::exact(c, Restored::fresh());
    elect_by_pre_vote(&mut h);
    for _ in 0..100 {
        h.fire_timeout();
    }
    assert_eq!(h.node.role(), Role::Leader);
}

#[test]
fn transfer_refuses_proposals_catches_the_target_up_then_sends_timeout_now() {
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    let index = h.node.propose(h.now, "x").unwrap();
    h.persist();
    h.take_sent();
    assert_eq!(h.node.transfer_leadership(h.now, NodeId(1)), Err(TransferError::NotAVoter(NodeId(1))));
    assert_eq!(h.node.transfer_leadership(h.now, NodeId(9)), Err(TransferError::NotAVoter(NodeId(9))));
    h.node.transfer_leadership(h.now, NodeId(2)).unwrap();
    assert_eq!(h.node.transfer_leadership(h.now, NodeId(3)), Err(TransferError::InProgress { to: NodeId(2) }));
    assert_eq!(h.node.propose(h.now, "y"), Err(ProposeError::TransferInProgress { to: NodeId(2) }));
    assert_eq!(h.node.transfer_target(), Some(NodeId(2)));
    h.drain();
    assert!(sent_kinds(&mut h).iter().all(|&(_, k, _)| k != "TimeoutNow"), "target not caught up yet");
    h.recv(2, 1, ack(0, index.0));
    let sent = sent_kinds(&mut h);
    assert_eq!(sent.iter().filter(|&&(to, k, _)| to == 2 && k == "TimeoutNow").count(), 1);
    // The target's election (a higher term) ends the transfer.
    h.recv(2, 2, vote_request((index.0, 1), false, true));
    assert_eq!(h.node.role(), Role::Follower);
    let finished = Event::TransferFinished { to: NodeId(2), outcome: TransferOutcome::HandedOver };
    assert!(h.events.contains(&finished));
}

#[test]
fn an_unfinished_transfer_times_out_and_the_leader_accepts_proposals_again() {
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    h.node.transfer_leadership(h.now, NodeId(3)).unwrap();
    let start = h.now;
    while h.node.transfer_target().is_some() {
        h.fire_timeout();
        // Node 2 keeps the leader's quorum alive; node 3 never answers.
        let round = match &h.node.role {
            RoleState::Leader(l) => l.round,
            _ => panic!("lost leadership"),
        };
        h.recv(2, 1, ack(round, 1));
        assert!(h.now - start <= Duration::from_millis(600 + 110));
    }
    // ...and not before the target had a whole election timeout to catch up.
    assert!(h.now - start >= h.node.config().election_timeout_max);
    let finished = Event::TransferFinished { to: NodeId(3), outcome: TransferOutcome::TimedOut };
    assert!(h.events.contains(&finished));
    assert!(h.node.propose(h.now, "z").is_ok());
}

#[test]
fn a_timeout_now_the_target_did_not_act_on_is_sent_again_once_per_later_round() {
    // The target is caught up, so `TimeoutNow` goes out at once; it is lost
    // (in the simulator: the target was down, and restarted right after).
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    let (term, last) = (h.node.term().0, h.node.last_log_index().0);
    h.node.transfer_leadership(h.now, NodeId(2)).unwrap();
    h.drain();
    let timeout_nows =
        |h: &mut Harness| sent_kinds(h).iter().filter(|&&(to, k, _)| to == 2 && k == "TimeoutNow").count();
    assert_eq!(timeout_nows(&mut h), 1);
    // Answers to the round in which it went out prove nothing: it may be on its way.
    let sent_in = leader_round(&h);
    h.recv(2, term, ack(sent_in, last));
    assert_eq!(timeout_nows(&mut h), 0, "sent again before a later round");
    // The target answers a later round in this term, holding the whole log:
    // it never acted on `TimeoutNow`. Without this, the leader would refuse
    // proposals until the transfer times out.
    h.fire_timeout();
    let round = leader_round(&h);
    assert!(round > sent_in);
    h.recv(2, term, ack(round, last));
    assert_eq!(timeout_nows(&mut h), 1, "TimeoutNow not sent again");
    h.recv(2, term, ack(round, last));
    assert_eq!(timeout_nows(&mut h), 0, "sent twice in one round");
    assert_eq!(h.node.transfer_target(), Some(NodeId(2)));
}

#[test]
fn timeout_now_makes_the_target_campaign_at_once_without_pre_vote() {
    let mut h = node(2, 3);
    h.recv(1, 1, heartbeat(1, 0));
    h.persist();
    h.take_sent();
    h.recv(3, 1, Body::TimeoutNow);
    assert_eq!(h.node.role(), Role::Follower, "only the leader can hand over");
    h.recv(1, 1, Body::TimeoutNow);
    assert_eq!((h.node.role(), h.node.term()), (Role::Candidate, Term(2)));
    h.persist();
    let sent = h.take_sent();
    assert!(
        sent.iter().all(|o| matches!(&o.message.body, Body::RequestVote(r) if r.transfer && !r.pre_vote)),
        "{sent:?}"
    );
}

#[test]
fn a_read_waits_for_an_entry_of_the_leaders_term_then_for_a_round_that_started_after_it() {
    let mut h = node(1, 3);
    h.fire_timeout();
    h.recv(2, 1, pre_grant(true));
    h.persist();
    h.recv(2, 1, vote_grant());
    assert_eq!(h.node.role(), Role::Leader);
    h.persist();
    h.take_sent();
    // The no-op is not committed yet: the read must wait (etcd #7331).
    h.node.read_index(h.now, ReadId(7)).unwrap();
    h.drain();
    assert_eq!(h.node.read_index(h.now, ReadId(7)), Err(ReadError::DuplicateId));
    let before = leader_round(&h);
    h.recv(2, 1, ack(before, 1)); // commits the no-op; the read now needs a new round
    assert!(h.reads.is_empty(), "answered by a round that started before it was registered");
    let round = leader_round(&h);
    assert!(round > before, "no round started for the read");
    let beats = h.take_sent();
    assert!(beats.iter().any(|o| matches!(&o.message.body, Body::AppendEntries(a) if a.round == round)));
    h.recv(3, 1, ack(before, 1));
    assert!(h.reads.is_empty(), "an older round confirmed a newer read (etcd #20418)");
    h.recv(3, 1, ack(round, 1));
    assert_eq!(h.reads, [(ReadId(7), Ok(LogIndex(1)))]);
    // No entry was written for the read.
    assert_eq!(h.node.last_log_index(), LogIndex(1));
}

#[test]
fn reads_of_one_step_share_a_round_and_a_lost_leadership_fails_them() {
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    for id in 0..5 {
        h.node.read_index(h.now, ReadId(id)).unwrap();
    }
    h.drain();
    let round = leader_round(&h);
    let beats = h.take_sent().into_iter().filter(|o| matches!(o.message.body, Body::AppendEntries(_))).count();
    assert_eq!(beats, 2, "one heartbeat per follower for five reads");
    h.recv(2, 1, ack(round, 1));
    assert_eq!(h.reads.len(), 5);
    assert!(h.reads.iter().all(|(_, r)| *r == Ok(LogIndex(1))));
    h.reads.clear();
    h.node.read_index(h.now, ReadId(9)).unwrap();
    h.drain();
    h.recv(2, 3, heartbeat(1, 0)); // a newer leader
    assert_eq!(h.reads, [(ReadId(9), Err(ReadError::LeaderChanged))]);
}

#[test]
fn a_follower_asks_its_leader_and_the_leader_confirms_for_it() {
    let mut leader = node(1, 3);
    elect_by_pre_vote(&mut leader);
    let mut f = node(2, 3);
    assert_eq!(f.node.read_index(f.now, ReadId(1)), Err(ReadError::NotLeader { leader_hint: None }));
    f.recv(1, 1, heartbeat(1, 0));
    f.persist();
    f.take_sent();
    f.node.read_index(f.now, ReadId(1)).unwrap();
    f.drain();
    let ask = f.take_sent();
    assert_eq!(ask.len(), 1);
    let Body::ReadIndex(ReadIndexRequest { id: wire }) = ask[0].message.body else { panic!("{ask:?}") };
    assert_ne!(wire, 1, "the wire id is the follower's own, not the host's");
    leader.node.handle_message(leader.now, NodeId(2), ask[0].message.clone());
    leader.drain();
    let round = leader_round(&leader);
    leader.take_sent();
    leader.recv(3, 1, ack(round, 1));
    let answer = leader.take_sent();
    assert_eq!(answer.len(), 1);
    assert_eq!(
        answer[0].message.body,
        Body::ReadIndexResponse(ReadIndexResponse { id: wire, index: Some(LogIndex(1)) })
    );
    f.node.handle_message(f.now, NodeId(1), answer[0].message.clone());
    f.drain();
    assert_eq!(f.reads, [(ReadId(1), Ok(LogIndex(1)))]);
    // An unanswered request fails after an election timeout.
    f.node.read_index(f.now, ReadId(2)).unwrap();
    f.drain();
    f.now += Duration::from_millis(600);
    f.node.handle_timeout(f.now);
    f.drain();
    assert_eq!(f.reads.last(), Some(&(ReadId(2), Err(ReadError::Timeout))));
    // Ids: one per read in progress, not one per follower.
    f.recv(1, 1, heartbeat(1, 0));
    f.node.read_index(f.now, ReadId(3)).unwrap();
    f.node.read_index(f.now, ReadId(4)).unwrap();
    assert_eq!(f.node.read_index(f.now, ReadId(3)), Err(ReadError::DuplicateId));
    f.drain();
    // A new leader: the old one may never answer, so both fail at once.
    f.recv(3, 2, heartbeat(1, 0));
    let failed: Vec<_> = f.reads.iter().filter(|(id, _)| id.0 >= 3).cloned().collect();
    assert_eq!(failed, [(ReadId(3), Err(ReadError::LeaderChanged)), (ReadId(4), Err(ReadError::LeaderChanged))]);
}

#[test]
fn a_lease_answers_reads_at_once_until_it_runs_out() {
    let mut c = Config::new(NodeId(1), ids(3));
    c.read_mode = ReadMode::Lease { max_clock_drift: Duration::from_millis(50) };
    let mut h = Harness::exact(c, Restored::fresh());
    elect_by_pre_vote(&mut h);
    h.fire_timeout();
    let round = leader_round(&h);
    let sent_at = h.now;
    h.recv(2, 1, ack(round, 1));
    h.node.read_index(h.now, ReadId(1)).unwrap();
    h.drain();
    assert_eq!(h.reads, [(ReadId(1), Ok(LogIndex(1)))], "no round needed inside the lease");
    // Lease = 300 ms - 50 ms from when the acknowledged round started.
    h.now = sent_at + Duration::from_millis(250);
    h.node.read_index(h.now, ReadId(2)).unwrap();
    h.drain();
    assert_eq!(h.reads.len(), 1, "answered from an expired lease");
}

#[test]
fn a_catching_up_node_neither_votes_nor_campaigns_until_it_holds_a_committed_entry_of_its_leader() {
    let hs = HardState { term: Term(1), voted_for: None, catching_up: true };
    let mut h = Harness::exact(Config::new(NodeId(2), ids(3)), Restored::new(hs, Vec::new()));
    for _ in 0..5 {
        h.fire_timeout();
        assert_eq!(h.node.role(), Role::Follower, "a catching-up node campaigned");
    }
    h.recv(3, 2, vote_request((5, 1), false, false));
    h.persist();
    let answer = h.take_sent();
    assert_eq!(answer[0].message.body, Body::RequestVoteResponse(VoteResponse { granted: false, pre_vote: false }));
    // The leader of term 2 sends an entry of its term and then its commit.
    let entry = crate::Entry { term: Term(2), index: LogIndex(1), payload: crate::Payload::Noop };
    let append = |commit| {
        Body::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: alloc::vec![entry.clone()],
            leader_commit: LogIndex(commit),
            round: 1,
        })
    };
    h.recv(1, 2, append(0));
    h.persist();
    assert!(h.node.catching_up());
    h.recv(1, 2, append(1));
    h.persist();
    assert!(!h.node.catching_up());
    assert_eq!(h.writes.last().and_then(|w| w.hard_state).map(|hs| hs.catching_up), Some(false));
}

#[test]
fn terms_near_the_top_of_the_range_are_refused() {
    let mut h = node(1, 3);
    h.recv(2, MAX_TERM.0 + 1, heartbeat(1, 0));
    assert_eq!(h.node.term(), Term(0));
    let hs = HardState { term: MAX_TERM, voted_for: Some(NodeId(2)), catching_up: false };
    let mut h = Harness::exact(Config::new(NodeId(1), ids(3)), Restored::new(hs, Vec::new()));
    h.fire_timeout();
    h.fire_timeout();
    assert_eq!((h.node.term(), h.node.voted_for()), (MAX_TERM, Some(NodeId(2))), "the vote was replaced");
    // It does not even ask for pre-votes: no election could follow.
    assert_eq!(h.node.role(), Role::Follower);
    assert!(!h.sent.iter().any(|o| matches!(o.message.body, Body::RequestVote(_))), "{:?}", h.sent);
}

#[test]
fn a_leader_ignores_higher_term_votes_while_a_majority_answered_within_the_minimum_timeout() {
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    let term = h.node.term();
    let contact = match &h.node.role {
        RoleState::Leader(l) => l.quorum_contact(&h.node.quorum, NodeId(1)),
        _ => panic!("not leader"),
    };
    let window = h.node.config().election_timeout_min;
    let request = vote_request((9, term.0), false, false);
    h.now = contact + (window - Duration::from_micros(1));
    h.recv(3, term.0 + 1, request.clone());
    assert_eq!((h.node.role(), h.node.term()), (Role::Leader, term), "a disruptive candidate deposed the leader");
    // From the end of that window on, the leader cannot count on its
    // majority any more: it adopts the term (and the vote is considered).
    h.now = contact + window;
    h.recv(3, term.0 + 1, request);
    assert_eq!((h.node.role(), h.node.term()), (Role::Follower, Term(term.0 + 1)));
}

#[test]
fn a_node_ignores_higher_term_votes_for_the_minimum_timeout_after_it_starts() {
    // It may have acknowledged a leader just before it restarted.
    let mut h = node(2, 3);
    let window = h.node.config().election_timeout_min;
    h.now = crate::Instant::ZERO + (window - Duration::from_micros(1));
    h.recv(1, 1, vote_request((0, 0), false, false));
    h.persist();
    assert_eq!(h.node.term(), Term(0));
    assert!(h.take_sent().is_empty());
    h.now = crate::Instant::ZERO + window;
    h.recv(1, 1, vote_request((0, 0), false, false));
    h.persist();
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(super::test_harness::granted(&h.take_sent(), 1), Some(true));
}

#[test]
fn a_follower_forwards_a_command_and_reports_where_the_leader_appended_it() {
    let mut leader = node(1, 3);
    elect_by_pre_vote(&mut leader);
    let mut c = Config::new(NodeId(2), ids(3));
    c.forward_proposals = true;
    let mut f = Harness::exact(c, Restored::fresh());
    let id = crate::ProposalId(5);
    assert_eq!(f.node.forward(f.now, id, "x"), Err(ProposeError::NotLeader { leader_hint: None }));
    f.recv(1, 1, heartbeat(1, 0));
    f.persist();
    f.take_sent();
    f.node.forward(f.now, id, "x").unwrap();
    f.drain();
    let ask = f.take_sent();
    assert_eq!(ask.len(), 1);
    // The wire carries an id of the follower's own, not the host's.
    assert!(
        matches!(&ask[0].message.body, Body::Forward(ForwardProposal { id, command }) if *id != 5 && command.as_slice() == b"x"),
        "{ask:?}"
    );
    leader.node.handle_message(leader.now, NodeId(2), ask[0].message.clone());
    leader.drain();
    let last = leader.node.last_log_index();
    let answer: Vec<_> =
        leader.take_sent().into_iter().filter(|o| matches!(o.message.body, Body::ForwardResponse(_))).collect();
    assert_eq!(answer.len(), 1);
    assert_eq!(
        leader.node.log_entry(last).map(|e| e.payload.clone()),
        Some(crate::Payload::Command(crate::Bytes::from("x")))
    );
    f.node.handle_message(f.now, NodeId(1), answer[0].message.clone());
    f.drain();
    let got: Vec<_> = f.outputs_forwarded();
    assert_eq!(got, [(id, Ok((last, Term(1))))]);
    // Unanswered: unknown after an election timeout.
    f.node.forward(f.now, crate::ProposalId(6), "y").unwrap();
    f.now += Duration::from_millis(600);
    f.node.handle_timeout(f.now);
    f.drain();
    assert_eq!(f.outputs_forwarded().last(), Some(&(crate::ProposalId(6), Err(crate::ForwardError::Unknown))));
}

#[test]
fn without_forwarding_a_follower_refuses_with_the_leader_hint() {
    let mut f = node(2, 3);
    f.recv(1, 1, heartbeat(1, 0));
    f.persist();
    assert_eq!(
        f.node.forward(f.now, crate::ProposalId(1), "x"),
        Err(ProposeError::NotLeader { leader_hint: Some(NodeId(1)) })
    );
}

#[test]
fn a_pre_vote_is_granted_only_for_a_term_above_the_voters() {
    let hs = HardState { term: Term(2), voted_for: None, catching_up: false };
    let mut h = Harness::exact(Config::new(NodeId(2), ids(3)), Restored::new(hs, Vec::new()));
    h.now = crate::Instant::ZERO + Duration::from_millis(1000);
    let pre_votes = |h: &mut Harness| -> Vec<bool> {
        h.take_sent()
            .into_iter()
            .filter_map(|o| match o.message.body {
                Body::RequestVoteResponse(VoteResponse { granted, pre_vote: true }) => Some(granted),
                _ => None,
            })
            .collect()
    };
    // From a node of term 1: its next term is not above this voter's.
    h.recv(1, 2, vote_request((0, 0), true, false));
    assert_eq!(pre_votes(&mut h), alloc::vec![false]);
    h.recv(1, 3, vote_request((0, 0), true, false));
    assert_eq!(pre_votes(&mut h), alloc::vec![true]);
    assert_eq!(h.node.term(), Term(2));
}

#[test]
fn a_pre_candidate_counts_only_pre_votes_for_the_term_it_proposed() {
    let hs = HardState { term: Term(2), voted_for: None, catching_up: false };
    let mut h = Harness::exact(Config::new(NodeId(1), ids(3)), Restored::new(hs, Vec::new()));
    h.fire_timeout();
    assert_eq!(h.node.role(), Role::PreCandidate);
    // A real vote (of this term, from some earlier candidacy) is no pre-vote.
    h.recv(2, 2, vote_grant());
    // A pre-vote granted for term 2, by a voter of term 1: a late answer
    // from when this node proposed term 2.
    h.recv(2, 2, pre_grant(true));
    assert_eq!((h.node.role(), h.node.term()), (Role::PreCandidate, Term(2)));
    h.recv(2, 3, pre_grant(true));
    assert_eq!((h.node.role(), h.node.term()), (Role::Candidate, Term(3)));
}

/// A follower that knows its leader (node 1 of 3), with forwarding on, at a
/// time well past zero.
fn forwarding_follower() -> Harness {
    let mut c = Config::new(NodeId(2), ids(3));
    c.forward_proposals = true;
    let mut f = Harness::exact(c, Restored::fresh());
    f.now = crate::Instant::ZERO + Duration::from_millis(5000);
    f.recv(1, 1, heartbeat(1, 0));
    f.persist();
    f.take_sent();
    f
}

#[test]
fn a_follower_forwards_a_command_of_exactly_max_entry_bytes_and_refuses_one_byte_more() {
    let mut f = forwarding_follower();
    let max = f.node.config().max_entry_bytes;
    let id = crate::ProposalId(1);
    assert_eq!(
        f.node.forward(f.now, id, alloc::vec![7u8; max + 1]),
        Err(ProposeError::TooLarge { size: max + 1, max })
    );
    f.drain();
    assert!(f.take_sent().is_empty(), "an oversize command was sent");
    f.node.forward(f.now, id, alloc::vec![7u8; max]).unwrap();
    f.drain();
    let sent = f.take_sent();
    assert!(
        matches!(&sent[..], [o] if matches!(&o.message.body, Body::Forward(p) if p.command.len() == max)),
        "{sent:?}"
    );
    // One byte under the bound goes too.
    f.node.forward(f.now, crate::ProposalId(2), alloc::vec![7u8; max - 1]).unwrap();
}

#[test]
fn a_forward_waits_an_election_timeout_for_its_answer() {
    let mut f = forwarding_follower();
    let max = f.node.config().election_timeout_max;
    let sent_at = f.now;
    f.node.forward(f.now, crate::ProposalId(3), "x").unwrap();
    f.drain();
    // The leader keeps in touch; the answer is late but not yet given up on.
    f.now = sent_at + max - Duration::from_millis(1);
    f.recv(1, 1, heartbeat(1, 0));
    f.node.handle_timeout(f.now);
    f.drain();
    assert!(f.outputs_forwarded().is_empty(), "{:?}", f.outputs_forwarded());
    f.now = sent_at + max;
    f.recv(1, 1, heartbeat(1, 0));
    f.node.handle_timeout(f.now);
    f.drain();
    assert_eq!(f.outputs_forwarded(), [(crate::ProposalId(3), Err(crate::ForwardError::Unknown))]);
}

/// Forwards `command` from `f` to `leader` and hands the leader's answer
/// back; returns what `f` reported.
fn forward_through(
    f: &mut Harness,
    leader: &mut Harness,
    id: u64,
    command: &str,
) -> Vec<super::test_harness::Forwarded> {
    f.forwarded.clear();
    f.node.forward(f.now, crate::ProposalId(id), command).unwrap();
    f.drain();
    for o in f.take_sent() {
        leader.node.handle_message(leader.now, NodeId(2), o.message);
    }
    leader.drain();
    for o in leader.take_sent().into_iter().filter(|o| matches!(o.message.body, Body::ForwardResponse(_))) {
        f.node.handle_message(f.now, NodeId(1), o.message);
    }
    f.drain();
    f.outputs_forwarded()
}

#[test]
fn a_leaders_refusal_of_a_forwarded_command_reaches_the_follower() {
    // The leader's limit is lower than the follower's.
    let mut c = Config::new(NodeId(1), ids(3));
    c.max_entry_bytes = 4;
    let mut leader = Harness::exact(c, Restored::fresh());
    elect_by_pre_vote(&mut leader);
    let mut f = forwarding_follower();
    let max = f.node.config().max_entry_bytes;
    let got = forward_through(&mut f, &mut leader, 1, "hello");
    assert!(
        matches!(&got[..], [(crate::ProposalId(1), Err(crate::ForwardError::Refused(ProposeError::TooLarge { size, max: m })))]
            if *m == max && *size > max),
        "{got:?}"
    );
    let got = forward_through(&mut f, &mut leader, 2, "ok");
    assert!(matches!(&got[..], [(crate::ProposalId(2), Ok(_))]), "{got:?}");
    leader.node.transfer_leadership(leader.now, NodeId(3)).unwrap();
    let got = forward_through(&mut f, &mut leader, 3, "ok");
    let refused = crate::ForwardError::Refused(ProposeError::TransferInProgress { to: NodeId(1) });
    assert_eq!(got, [(crate::ProposalId(3), Err(refused))]);
}

#[test]
fn a_followers_read_waits_an_election_timeout_for_its_leader() {
    let mut f = forwarding_follower();
    let max = f.node.config().election_timeout_max;
    let asked_at = f.now;
    f.node.read_index(f.now, ReadId(4)).unwrap();
    f.drain();
    f.now = asked_at + max - Duration::from_millis(1);
    f.recv(1, 1, heartbeat(1, 0));
    f.node.handle_timeout(f.now);
    f.drain();
    assert!(f.reads.is_empty(), "{:?}", f.reads);
    f.now = asked_at + max;
    f.recv(1, 1, heartbeat(1, 0));
    f.node.handle_timeout(f.now);
    f.drain();
    assert_eq!(f.reads, [(ReadId(4), Err(ReadError::Timeout))]);
}

#[test]
fn an_answer_to_an_earlier_round_while_a_later_one_is_out_still_counts_as_contact() {
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    h.fire_timeout();
    let (first, first_at) = (leader_round(&h), h.now);
    h.fire_timeout();
    assert!(leader_round(&h) > first && h.now > first_at);
    // Node 2 answers the first round only after the second went out: the
    // leader still knows when that first round started.
    h.recv(2, 1, ack(first, 1));
    let contact = match &h.node.role {
        RoleState::Leader(l) => l.quorum_contact(&h.node.quorum, NodeId(1)),
        _ => panic!("not leader"),
    };
    assert_eq!(contact, first_at);
    // Check-quorum counts from there: the leader stays until an election
    // timeout after the first round's start, and no longer.
    let window = h.node.config().election_timeout_max;
    while h.node.role() == Role::Leader {
        h.fire_timeout();
        h.take_sent();
    }
    assert!(h.now >= first_at + window, "stepped down at {:?}, before {:?}", h.now, first_at + window);
}

#[test]
fn a_message_of_exactly_max_term_is_heard_and_one_above_is_not() {
    let mut h = node(2, 3);
    h.recv(1, MAX_TERM.0 + 1, heartbeat(0, 0));
    assert_eq!((h.node.term(), h.node.leader()), (Term(0), None));
    assert!(h.take_sent().is_empty(), "answered a message above MAX_TERM");
    h.recv(1, MAX_TERM.0, heartbeat(0, 0));
    assert_eq!((h.node.term(), h.node.leader()), (MAX_TERM, Some(NodeId(1))));
    h.persist();
    assert!(h.take_sent().iter().any(|o| o.to == NodeId(1) && o.message.term == MAX_TERM), "no answer to the leader");
}
