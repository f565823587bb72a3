//! Findings of a review of the protocol changes (leases, rounds, transfer,
//! catching up, follower reads, check-quorum, membership): one test each,
//! each failing on the code as it was reviewed.

use super::test_harness::{Harness, ack, elect_by_pre_vote, granted, ids, leader_round, node};
use crate::message::*;
use crate::output::{Event, ReadId, TransferOutcome};
use crate::types::{Entry, HardState, LogIndex, NodeId, Payload, Term};
use crate::{Config, Duration, ReadMode, Restored, Role};
use alloc::vec;
use alloc::vec::Vec;

fn real_vote_request(last: (u64, u64), transfer: bool) -> Body {
    Body::RequestVote(RequestVote {
        last_log_index: LogIndex(last.0),
        last_log_term: Term(last.1),
        pre_vote: false,
        transfer,
    })
}

fn append(prev: (u64, u64), entries: Vec<Entry>, commit: u64, round: u64) -> Body {
    Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries,
        leader_commit: LogIndex(commit),
        round,
    })
}

fn entry(index: u64, term: u64) -> Entry {
    Entry { term: Term(term), index: LogIndex(index), payload: Payload::Noop }
}

fn lease_config(id: u64) -> Config {
    let mut c = Config::new(NodeId(id), ids(3));
    c.read_mode = ReadMode::Lease { max_clock_drift: Duration::from_millis(50) };
    c
}

/// Finding 1. Once TimeoutNow went out, the target may win the next term
/// at any time with votes that bypass stickiness (transfer = true). When
/// the transfer times out on the old leader, `l.transfer` is cleared and the
/// lease comes back, although the voters that acked its rounds will still
/// vote for the target.
#[test]
fn no_lease_after_timeout_now_was_sent_even_when_the_transfer_times_out() {
    let mut h = Harness::exact(lease_config(1), Restored::fresh());
    elect_by_pre_vote(&mut h);
    h.node.transfer_leadership(h.now, NodeId(2)).unwrap();
    h.drain();
    assert!(h.take_sent().iter().any(|o| o.to == NodeId(2) && o.message.body == Body::TimeoutNow));
    // Node 2 got TimeoutNow (or will: it may be delayed in the network) and
    // campaigns in term 2; node 3 still acks the old leader's rounds until it
    // grants node 2's transfer vote (stickiness is bypassed by design).
    while h.node.transfer_target().is_some() {
        h.fire_timeout();
        let round = leader_round(&h);
        h.recv(3, 1, ack(round, 1));
    }
    assert!(h.events.contains(&Event::TransferFinished { to: NodeId(2), outcome: TransferOutcome::TimedOut }));
    // Node 3 now votes for node 2 in term 2 (transfer vote, granted in lease):
    let mut n3 = Harness::exact(lease_config(3), Restored::fresh());
    n3.recv(1, 1, append((0, 0), vec![entry(1, 1)], 1, 1));
    n3.persist();
    n3.take_sent();
    n3.recv(2, 2, real_vote_request((1, 1), true));
    n3.persist();
    assert_eq!(granted(&n3.take_sent(), 2), Some(true), "a transfer vote is granted inside the lease");
    // ...so node 2 leads term 2 and may commit writes; the old leader must not
    // answer a read from its lease.
    h.node.read_index(h.now, ReadId(1)).unwrap();
    h.drain();
    assert!(h.reads.is_empty(), "read answered from a lease after TimeoutNow was sent: {:?}", h.reads);
}

/// Finding 2. `acked_round` clamps an echoed round to the current one. A
/// reply that echoes a round this leader never sent in this term (a follower
/// answering a delayed AppendEntries of the same node's earlier leadership,
/// with its current term) then counts as an ack of the current round, so a
/// read registered after the reply was sent is confirmed by it.
#[test]
fn a_reply_echoing_a_round_never_sent_in_this_term_confirms_no_read() {
    // Node 2 is in term 2 and receives a delayed AppendEntries from node 1's
    // leadership of term 1, round 99: it answers (stale) in term 2, echoing 99.
    let hs2 = HardState { term: Term(2), voted_for: Some(NodeId(1)), catching_up: false };
    let mut f = Harness::exact(Config::new(NodeId(2), ids(3)), Restored::new(hs2, vec![entry(1, 1)]));
    f.recv(1, 1, append((1, 1), Vec::new(), 1, 99));
    f.persist();
    let stale = f.take_sent().pop().expect("stale answer").message;
    assert_eq!(stale.term, Term(2));
    // Node 1 leads term 2 (elected from term 1). The stale answer is in flight.
    let hs1 = HardState { term: Term(1), voted_for: None, catching_up: false };
    let mut h = Harness::exact(Config::new(NodeId(1), ids(3)), Restored::new(hs1, vec![entry(1, 1)]));
    elect_by_pre_vote(&mut h);
    assert_eq!(h.node.term(), Term(2));
    // A read starts now; its round is 1. Node 2 may meanwhile have moved on
    // (voted for node 3 in term 3, which committed writes).
    h.node.read_index(h.now, ReadId(1)).unwrap();
    h.drain();
    assert_eq!(leader_round(&h), 1);
    h.node.handle_message(h.now, NodeId(2), stale);
    h.drain();
    assert!(h.reads.is_empty(), "a reply sent before the read confirmed it: {:?}", h.reads);
}

/// Finding 3. A repaired node stops catching up on an entry of the term it
/// was repaired in. The leader of that very term may still count an ack the
/// node sent before losing the entry (delayed in the network), and commit
/// with it; the node then votes although it lacks a committed entry.
#[test]
fn catching_up_is_not_cleared_by_an_entry_of_the_term_the_node_lost_acks_in() {
    let mut l = node(1, 3);
    elect_by_pre_vote(&mut l); // term 1, index 1 committed everywhere
    let x = l.node.propose(l.now, "x").unwrap(); // index 2
    l.persist();
    let to2: Vec<Message> = l.take_sent().into_iter().filter(|o| o.to == NodeId(2)).map(|o| o.message).collect();
    // Node 2 stores index 2 and acks it; the ack is delayed in the network.
    let mut n2 = node(2, 3);
    n2.recv(1, 1, append((0, 0), vec![l.node.log_entry(LogIndex(1)).cloned().unwrap()], 1, 0));
    n2.persist();
    n2.take_sent();
    for m in to2 {
        n2.node.handle_message(n2.now, NodeId(1), m);
    }
    n2.persist();
    let delayed_ack = n2.take_sent().pop().unwrap().message;
    assert!(
        matches!(&delayed_ack.body, Body::AppendEntriesResponse(r) if r.result == AppendResult::Success { match_index: x })
    );
    // Node 2's disk loses index 2; it restarts repaired, in term 1.
    let hs = HardState { term: Term(1), voted_for: Some(NodeId(1)), catching_up: true };
    let first = l.node.log_entry(LogIndex(1)).cloned().unwrap();
    let mut n2 = Harness::exact(Config::new(NodeId(2), ids(3)), Restored::new(hs, vec![first]));
    // The leader's heartbeat, anchored at index 1 (commit 1), reaches it.
    l.fire_timeout();
    let beat = l.take_sent().into_iter().find(|o| o.to == NodeId(2)).unwrap().message;
    n2.node.handle_message(n2.now, NodeId(1), beat);
    n2.persist();
    // The delayed ack arrives: the leader commits index 2 with nodes 1 and 2.
    l.node.handle_message(l.now, NodeId(2), delayed_ack);
    l.drain();
    assert_eq!(l.node.commit_index(), x, "index 2 committed using node 2's lost copy");
    // Leader 1 dies. Node 3 (log: index 1 only) campaigns in term 2.
    n2.now += Duration::from_secs(1);
    n2.recv(3, 2, real_vote_request((1, 1), false));
    n2.persist();
    assert_ne!(granted(&n2.take_sent(), 3), Some(true), "node 2 helped elect a leader without committed index 2");
}

/// Finding 4 (etcd #20418 / #21399). The wire id of a follower's ReadIndex is
/// the host's ReadId, which the host may reuse once a read finished (here: timed
/// out). The leader's late answer to the first request then answers the
/// second read with an index computed before that read started.
#[test]
fn a_follower_read_is_not_answered_by_the_reply_to_an_earlier_request() {
    let mut f = node(2, 3);
    f.recv(1, 1, append((0, 0), vec![entry(1, 1)], 1, 1));
    f.persist();
    f.take_sent();
    f.node.read_index(f.now, ReadId(7)).unwrap();
    f.drain();
    let first = f.take_sent().pop().unwrap().message;
    // The leader is slow; heartbeats keep node 2 following it.
    for ms in [290u64, 580] {
        f.now = crate::Instant::ZERO + Duration::from_millis(ms);
        f.recv(1, 1, append((1, 1), Vec::new(), 1, 2));
    }
    f.now = crate::Instant::ZERO + Duration::from_millis(600);
    f.node.handle_timeout(f.now);
    f.drain();
    assert_eq!(f.reads, [(ReadId(7), Err(crate::ReadError::Timeout))]);
    f.reads.clear();
    // A write commits at index 2 and node 2 learns it; then the host retries with the same id.
    f.recv(1, 1, append((1, 1), vec![entry(2, 1)], 2, 3));
    f.persist();
    assert_eq!(f.node.commit_index(), LogIndex(2));
    f.take_sent();
    f.node.read_index(f.now, ReadId(7)).unwrap();
    f.drain();
    let second = f.take_sent().pop().unwrap().message;
    // The leader's answer to the FIRST request (index 1) arrives now.
    let Body::ReadIndex(ReadIndexRequest { id }) = first.body else { panic!() };
    f.recv(1, 1, Body::ReadIndexResponse(ReadIndexResponse { id, index: Some(LogIndex(1)) }));
    assert!(
        f.reads.is_empty(),
        "read started after index 2 committed was answered with index 1 ({:?}; second request {:?})",
        f.reads,
        second.body
    );
}

/// Finding 5. Lease safety assumes a voter refuses votes for
/// `election_timeout_min` after it last heard from the leader. A voter that
/// restarts forgets that and votes at once.
#[test]
fn a_restarted_voter_does_not_vote_inside_the_lease_window() {
    let hs = HardState { term: Term(1), voted_for: Some(NodeId(1)), catching_up: false };
    let mut n2 = Harness::exact(lease_config(2), Restored::new(hs, vec![entry(1, 1)]));
    n2.now = crate::Instant::ZERO + Duration::from_millis(10);
    n2.recv(3, 2, real_vote_request((1, 1), false));
    n2.persist();
    assert_ne!(granted(&n2.take_sent(), 3), Some(true), "voted 10 ms after a restart, inside the old leader's lease");
}

/// Finding 6. `round_started` keeps 1024 rounds; every step with a new read
/// starts a round. Under read load a healthy leader whose majority acks
/// lag by more than 1024 rounds finds no start time for its quorum round and
/// check-quorum deposes it.
#[test]
fn a_burst_of_reads_does_not_make_a_healthy_leader_step_down() {
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    for i in 0..1100 {
        h.node.read_index(h.now, ReadId(i)).unwrap();
        h.drain();
    }
    h.take_sent();
    // Node 2's answer to round 5 arrives (sent moments ago).
    h.recv(2, 1, ack(5, 1));
    assert!(!h.reads.is_empty());
    h.fire_timeout(); // one heartbeat interval later
    assert_eq!(h.node.role(), Role::Leader, "check-quorum deposed a leader a majority answered within 110 ms");
}

/// Finding 8 (liveness, catching-up nodes). The leader never sends below
/// `matched + 1` (`probe_from` clamps), but a repaired node lost entries up
/// to `matched`. It used to re-probe the same `prev_log_index` at once after
/// each rejection, without end (a message storm). Now a repaired node moves
/// to a term of its own at start-up, so its first answer deposes that
/// leader, and the next leader (of a later term, fresh progress) sends it
/// everything; and a probe that cannot move waits for the next heartbeat.
#[test]
fn a_follower_that_lost_acknowledged_entries_is_not_flooded_and_deposes_its_leader() {
    let mut l = node(1, 3);
    elect_by_pre_vote(&mut l);
    l.node.propose(l.now, "x").unwrap();
    l.persist();
    l.take_sent();
    l.recv(2, 1, ack(0, 2)); // node 2 had index 2, then lost it in a disk repair
    assert_eq!(l.node.commit_index(), LogIndex(2));
    l.take_sent();
    let hs = HardState { term: Term(1), voted_for: Some(NodeId(1)), catching_up: true };
    let first = l.node.log_entry(LogIndex(1)).cloned().unwrap();
    let mut n2 = Harness::exact(Config::new(NodeId(2), ids(3)), Restored::new(hs, vec![first]));
    l.node.propose(l.now, "y").unwrap(); // traffic goes on
    l.persist();
    let mut most_in_one_instant = 0;
    for _ in 0..5 {
        l.fire_timeout(); // a heartbeat interval passes
        let mut exchanged = 0;
        for _ in 0..50 {
            let to2: Vec<Message> =
                l.take_sent().into_iter().filter(|o| o.to == NodeId(2)).map(|o| o.message).collect();
            if to2.is_empty() {
                break;
            }
            for m in to2 {
                exchanged += 1;
                n2.node.handle_message(n2.now, NodeId(1), m);
            }
            n2.persist();
            for o in n2.take_sent() {
                l.node.handle_message(l.now, NodeId(2), o.message);
            }
            l.drain();
        }
        most_in_one_instant = most_in_one_instant.max(exchanged);
    }
    let exchanged = most_in_one_instant;
    assert!(exchanged < 20, "{exchanged} AppendEntries to one follower without any time passing: a probe storm");
    assert_eq!(n2.node.term(), Term(2), "the repaired node did not move to a term of its own");
    assert_ne!(l.node.role(), Role::Leader, "the leader that counted the lost acknowledgement still leads");
}

/// Finding 6b. The same pruning of round start times: promoting a learner
/// whose acks trail the other follower's by a round or two lowers the
/// quorum round below the pruned front, and check-quorum deposes the leader
/// at the next tick although a majority of both halves answered recently.
#[test]
fn promoting_a_slightly_lagging_learner_does_not_depose_the_leader() {
    use crate::membership::MembershipChange;
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    let addr = crate::types::Bytes::from("h4:1");
    let at = h.node.change_membership(h.now, MembershipChange::AddLearner { id: NodeId(4), addr }).unwrap();
    h.persist();
    h.recv(2, 1, ack(0, at.0));
    h.recv(4, 1, ack(0, at.0));
    assert_eq!(h.node.commit_index(), at);
    // Node 3 is down. Node 2 answers every round; the learner's answers lag by two rounds.
    for _ in 0..3 {
        h.fire_timeout();
        let round = leader_round(&h);
        h.recv(2, 1, ack(round, at.0));
        h.recv(4, 1, ack(round.saturating_sub(2), at.0));
    }
    h.node.change_membership(h.now, MembershipChange::Promote { id: NodeId(4) }).unwrap();
    h.persist();
    h.fire_timeout(); // 110 ms later; the learner's last answer is < 400 ms old
    assert_eq!(h.node.role(), Role::Leader, "check-quorum deposed the leader right after a promotion");
}
