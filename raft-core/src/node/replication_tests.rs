//! One test per replication rule (paper §5.3, §5.4), plus hostile input.

use super::super::test_harness::{Harness, ids};
use crate::message::*;
use crate::message::{AppendResponse, Body};
use crate::output::Outgoing;
use crate::types::{Bytes, Entry, HardState, LogIndex, NodeId, Payload, Term};
use crate::{Config, Membership, ProposeError, Restored, Role};
use alloc::vec;
use alloc::vec::Vec;

fn e(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(Bytes::from(alloc::format!("c{index}").as_str())),
    }
}

fn append(prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Body {
    Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries,
        leader_commit: LogIndex(commit),
        round: 0,
    })
}

fn responses(sent: &[Outgoing]) -> Vec<AppendResult> {
    sent.iter()
        .filter_map(|o| match &o.message.body {
            Body::AppendEntriesResponse(r) => Some(r.result.clone()),
            _ => None,
        })
        .collect()
}

fn follower_with(terms: &[u64], current: u64) -> Harness {
    node_with(1, terms, current)
}

fn node_with(id: u64, terms: &[u64], current: u64) -> Harness {
    let entries = terms.iter().enumerate().map(|(i, &t)| e(i as u64 + 1, t)).collect();
    let hs = HardState { term: Term(current), voted_for: None, catching_up: false };
    Harness::with(Config::new(NodeId(id), ids(3)), Restored::new(hs, entries))
}

#[test]
fn follower_acks_only_after_entries_are_durable_and_commits_min_of_leader_commit_and_last_new() {
    // §5.3 and Figure 2 (AppendEntries receiver rule 5).
    let mut h = follower_with(&[], 1);
    h.recv(2, 1, append((0, 0), vec![e(1, 1), e(2, 1)], 9));
    assert!(h.sent.is_empty(), "ack before durable");
    assert_eq!(h.writes.last().unwrap().entries.len(), 2);
    assert_eq!(h.node.commit_index(), LogIndex(2));
    assert!(h.applied.is_empty(), "applied before durable");
    h.persist();
    assert_eq!(responses(&h.sent), vec![AppendResult::Success { match_index: LogIndex(2) }]);
    assert_eq!(h.applied.len(), 2);
}

#[test]
fn short_log_rejects_with_its_length_as_the_hint() {
    let mut h = follower_with(&[1, 1], 2);
    h.recv(2, 2, append((5, 2), vec![e(6, 2)], 0));
    h.persist();
    assert_eq!(
        responses(&h.sent),
        vec![AppendResult::Reject {
            prev_log_index: LogIndex(5),
            last_log_index: LogIndex(2),
            conflict_term: None,
            conflict_index: LogIndex(3),
        }]
    );
}

#[test]
fn term_mismatch_rejects_with_conflict_term_and_its_first_index() {
    let mut h = follower_with(&[1, 2, 2, 2], 3);
    h.recv(2, 3, append((4, 3), vec![], 0));
    h.persist();
    assert_eq!(
        responses(&h.sent),
        vec![AppendResult::Reject {
            prev_log_index: LogIndex(4),
            last_log_index: LogIndex(4),
            conflict_term: Some(Term(2)),
            conflict_index: LogIndex(2),
        }]
    );
}

#[test]
fn conflicting_suffix_is_truncated_and_replaced() {
    // Figure 2, receiver rule 3: delete the existing entry and all that follow it.
    let mut h = follower_with(&[1, 1, 2, 2], 3);
    h.recv(2, 3, append((2, 1), vec![e(3, 3)], 0));
    let w = h.writes.last().unwrap();
    assert_eq!(w.truncate_from, Some(LogIndex(3)));
    assert_eq!(w.entries, vec![e(3, 3)]);
    assert_eq!(h.node.last_log_index(), LogIndex(3));
    assert_eq!(h.node.log_term(LogIndex(3)), Some(Term(3)));
}

#[test]
fn a_stale_shorter_append_never_truncates_matching_entries() {
    // Receiver rule 3 only deletes on conflict: a reordered older message is harmless.
    let mut h = follower_with(&[1, 1, 1], 1);
    h.recv(2, 1, append((0, 0), vec![e(1, 1)], 0));
    assert_eq!(h.node.last_log_index(), LogIndex(3));
    h.persist();
    assert_eq!(responses(&h.sent), vec![AppendResult::Success { match_index: LogIndex(1) }]);
}

#[test]
fn leader_commits_only_entries_of_its_own_term_by_counting_replicas() {
    // §5.4.2 / Figure 8: an old-term entry is committed only indirectly.
    let mut h = follower_with(&[1], 1);
    h.elect(); // term 2; log [t1, t2 noop]
    assert_eq!(h.node.term(), Term(2));
    h.recv(
        2,
        2,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(1) },
        }),
    );
    assert_eq!(h.node.commit_index(), LogIndex(0), "term-1 entry must not commit by counting");
    h.recv(
        2,
        2,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(2) },
        }),
    );
    assert_eq!(h.node.commit_index(), LogIndex(2));
}

#[test]
fn leader_counts_itself_only_once_its_own_write_is_durable() {
    let mut h = Harness::new(1, 3);
    h.elect();
    let i = h.node.propose(h.now, "v").unwrap();
    h.drain(); // leader's write issued, not durable
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: i },
        }),
    );
    assert!(h.node.commit_index() < i, "one follower + a non-durable leader is not 2 of 3");
    h.recv(
        3,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: i },
        }),
    );
    assert_eq!(h.node.commit_index(), i, "two durable followers are 2 of 3 without the leader");
    assert!(h.applied.iter().all(|e| e.index < i), "the leader applies only what it holds durably");
    h.persist();
    assert_eq!(h.applied.last().unwrap().index, i);
    let mut h = Harness::new(1, 5);
    h.elect();
    let i = h.node.propose(h.now, "v").unwrap();
    h.drain();
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: i },
        }),
    );
    h.recv(
        3,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: i },
        }),
    );
    assert!(h.node.commit_index() < i, "2 followers + non-durable leader is not 3 of 5");
    h.persist();
    assert_eq!(h.node.commit_index(), i);
}

#[test]
fn fast_backtracking_skips_a_whole_term_per_round_trip() {
    // Leader log [1,1,1,1,1] + its term-3 no-op; follower log [1,1,2,2,2] (term 2
    // never reached the leader). The first probe (prev 5) is rejected with
    // conflict term 2 starting at 3: the next probe goes straight to prev 2.
    let mut h = follower_with(&[1, 1, 1, 1, 1], 2);
    h.elect();
    assert_eq!(h.node.term(), Term(3));
    let is_append_to_2 = |o: &Outgoing| o.to == NodeId(2) && matches!(o.message.body, Body::AppendEntries(..));
    let first = h.take_sent().into_iter().find(is_append_to_2).unwrap();
    assert!(matches!(first.message.body, Body::AppendEntries(AppendEntries { prev_log_index: LogIndex(5), .. })));
    let mut f = node_with(2, &[1, 1, 2, 2, 2], 2);
    f.node.handle_message(h.now, NodeId(1), first.message);
    f.persist();
    let reply = f.take_sent().pop().unwrap();
    h.recv(2, 3, reply.message.body);
    let second = h.take_sent().into_iter().find(is_append_to_2).unwrap();
    assert!(matches!(second.message.body, Body::AppendEntries(AppendEntries { prev_log_index: LogIndex(2), .. })));
    f.node.handle_message(h.now, NodeId(1), second.message);
    f.persist();
    assert_eq!(responses(&f.sent), vec![AppendResult::Success { match_index: LogIndex(6) }]);
    assert_eq!(f.node.log_term(LogIndex(5)), Some(Term(1)));
    assert_eq!(f.node.log_term(LogIndex(6)), Some(Term(3)));
}

#[test]
fn stale_rejections_are_ignored() {
    let mut h = Harness::new(1, 3);
    h.elect();
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(1) },
        }),
    );
    h.take_sent();
    // A reject for a prev index at or below match is from an older exchange.
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Reject {
                prev_log_index: LogIndex(0),
                last_log_index: LogIndex(0),
                conflict_term: None,
                conflict_index: LogIndex(1),
            },
        }),
    );
    assert!(h.take_sent().is_empty());
}

#[test]
fn hostile_messages_are_ignored_without_panicking() {
    let mut h = follower_with(&[1, 1], 1);
    // Commit 1 legitimately.
    h.recv(2, 1, append((2, 1), vec![], 1));
    h.persist();
    let before = (h.node.last_log_index(), h.node.commit_index());
    // Non-contiguous entries.
    h.recv(2, 1, append((2, 1), vec![e(4, 1)], 1));
    // Entry term above the message term.
    h.recv(2, 1, append((2, 1), vec![e(3, 5)], 1));
    // Index overflow.
    h.recv(2, 1, append((u64::MAX, 1), vec![e(1, 1)], u64::MAX));
    // Overwrites a committed entry with another term.
    h.recv(2, 1, append((0, 0), vec![e(1, 0)], 0));
    assert_eq!((h.node.last_log_index(), h.node.commit_index()), before);
    // prev far beyond the log: answered with a reject, commit capped by what matches.
    h.recv(2, 1, append((1 << 60, 1), vec![], u64::MAX));
    assert_eq!(h.node.commit_index(), LogIndex(1));
    // Leader side: a success claiming entries the leader never had.
    let mut l = Harness::new(1, 3);
    l.elect();
    l.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(1 << 40) },
        }),
    );
    assert_eq!(l.node.commit_index(), LogIndex(0));
}

#[test]
fn propose_errors_are_clear() {
    let mut h = Harness::new(1, 3);
    assert_eq!(h.node.propose(h.now, "x"), Err(ProposeError::NotLeader { leader_hint: None }));
    h.recv(2, 1, append((0, 0), vec![], 0));
    assert_eq!(h.node.propose(h.now, "x"), Err(ProposeError::NotLeader { leader_hint: Some(NodeId(2)) }));
    let mut c = Config::new(NodeId(1), ids(1));
    c.max_entry_bytes = 10;
    c.max_message_bytes = 200;
    c.max_inflight_bytes = 200;
    let mut l = Harness::with(c, Restored::fresh());
    l.fire_timeout();
    assert_eq!(l.node.propose(l.now, &[0u8; 11]), Err(ProposeError::TooLarge { size: 11, max: 10 }));
    assert!(l.node.propose(l.now, &[0u8; 10]).is_ok());
}

#[test]
fn proposals_between_polls_are_batched_and_messages_respect_the_size_limit() {
    let mut c = Config::new(NodeId(1), ids(3));
    c.max_entry_bytes = 1000;
    c.max_message_bytes = 4000;
    c.max_inflight_bytes = 1 << 20;
    let mut h = Harness::with(c, Restored::fresh());
    h.elect();
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(1) },
        }),
    );
    h.take_sent();
    // 90 entries of 42 bytes (bound) fit one 4000-byte message.
    for _ in 0..90 {
        h.node.propose(h.now, &[7u8; 10]).unwrap();
    }
    h.drain();
    let to2: Vec<_> = h.sent.iter().filter(|o| o.to == NodeId(2)).collect();
    assert_eq!(to2.len(), 1, "90 small proposals fit one message");
    for _ in 0..20 {
        h.node.propose(h.now, &[7u8; 1000]).unwrap();
    }
    h.take_sent();
    h.drain();
    let to2: Vec<_> = h.sent.iter().filter(|o| o.to == NodeId(2)).collect();
    assert!(to2.len() >= 6, "20 KB cannot fit in fewer than 6 messages of 4 KB");
    for o in to2 {
        assert!(crate::codec::encode_message(&o.message).len() <= 4000);
    }
    // Node 3 never answered its probe: it gets nothing more until the next heartbeat.
    assert_eq!(h.sent.iter().filter(|o| o.to == NodeId(3)).count(), 0);
}

#[test]
fn inflight_window_bounds_messages_per_follower() {
    let mut c = Config::new(NodeId(1), ids(3));
    c.max_inflight_messages = 3;
    c.max_entry_bytes = 100;
    c.max_message_bytes = 300;
    c.max_inflight_bytes = 1 << 20;
    let mut h = Harness::with(c, Restored::fresh());
    h.elect();
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(1) },
        }),
    );
    h.take_sent();
    for _ in 0..30 {
        h.node.propose(h.now, &[1u8; 100]).unwrap();
    }
    h.drain();
    assert_eq!(h.take_sent().iter().filter(|o| o.to == NodeId(2)).count(), 3);
    // One entry per message (132-byte bound, 236-byte budget); acking 2..=3 frees two slots.
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(3) },
        }),
    );
    assert_eq!(h.take_sent().iter().filter(|o| o.to == NodeId(2)).count(), 2);
    assert_eq!(h.node.role(), Role::Leader);
}

#[test]
fn followers_learn_a_new_commit_index_at_once_not_a_heartbeat_later() {
    let mut h = Harness::new(1, 3);
    h.elect();
    for peer in [2, 3] {
        h.recv(
            peer,
            1,
            Body::AppendEntriesResponse(crate::AppendResponse {
                round: 0,
                result: AppendResult::Success { match_index: LogIndex(1) },
            }),
        );
    }
    h.take_sent();
    let i = h.node.propose(h.now, "v").unwrap();
    h.persist();
    h.take_sent(); // the entry itself, carrying commit 1
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: i },
        }),
    );
    assert_eq!(h.node.commit_index(), i);
    let news: Vec<_> = h.take_sent();
    let to2 = news.iter().find(|o| o.to == NodeId(2)).expect("node 2 is told");
    assert!(matches!(
        to2.message.body,
        Body::AppendEntries(AppendEntries { prev_log_index, leader_commit, ref entries, .. })
            if prev_log_index == i && leader_commit == i && entries.is_empty()
    ));
    // Node 3 has not acknowledged i: it can only learn commit 1, which it already knows.
    assert!(news.iter().all(|o| o.to != NodeId(3)), "{news:?}");
    // Nothing more to say: no repeated notice.
    h.persist();
    assert!(h.take_sent().is_empty());
}

#[test]
fn a_reordered_rejection_does_not_rewind_the_pipeline_and_a_real_loss_is_reprobed() {
    let mut c = Config::new(NodeId(1), ids(3));
    c.max_entry_bytes = 100;
    c.max_message_bytes = 300;
    let mut h = Harness::with(c, Restored::fresh());
    h.elect();
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(1) },
        }),
    );
    for _ in 0..3 {
        h.node.propose(h.now, &[1u8; 100]).unwrap(); // one entry per message: 2, 3, 4
    }
    h.persist();
    h.take_sent();
    // The message with prev 3 overtook the one with prev 1: node 2 rejects it.
    let short = AppendResult::Reject {
        prev_log_index: LogIndex(3),
        last_log_index: LogIndex(1),
        conflict_term: None,
        conflict_index: LogIndex(2),
    };
    h.recv(2, 1, Body::AppendEntriesResponse(AppendResponse { round: 0, result: short }));
    assert!(h.take_sent().iter().all(|o| o.to != NodeId(2)), "rewound on a reordered rejection");
    // The late messages arrive; their acks keep the pipeline going.
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(4) },
        }),
    );
    assert_eq!(h.node.commit_index(), LogIndex(4));
    // A message that is really lost: no progress for a whole heartbeat interval.
    h.node.propose(h.now, &[1u8; 100]).unwrap();
    h.persist();
    h.take_sent();
    h.fire_timeout(); // window opened less than an interval ago: heartbeat only
    h.fire_timeout(); // still no progress: re-probe from matched + 1
    let sent = h.take_sent();
    let resent = sent.iter().find(|o| {
        o.to == NodeId(2)
            && matches!(&o.message.body, Body::AppendEntries(AppendEntries { prev_log_index: LogIndex(4), entries, .. }) if !entries.is_empty())
    });
    assert!(resent.is_some(), "{sent:?}");
    // Node 2 rejects that probe, saying it lacks what it acknowledged:
    // `matched` keeps `next` where it is, so the leader waits for the next
    // tick instead of repeating the same probe at once.
    let lacks = AppendResult::Reject {
        prev_log_index: LogIndex(4),
        last_log_index: LogIndex(1),
        conflict_term: None,
        conflict_index: LogIndex(2),
    };
    h.recv(2, 1, Body::AppendEntriesResponse(AppendResponse { round: 0, result: lacks }));
    assert!(h.take_sent().iter().all(|o| o.to != NodeId(2)), "probed again at once");
}

#[test]
fn entries_may_end_at_max_index_but_not_past_it() {
    // The bound itself: a message whose entries end at MAX_INDEX is well
    // formed (this short log answers it with a rejection and a hint); one
    // entry further is malformed and dropped without an answer.
    let max = super::super::MAX_INDEX.0;
    let mut h = follower_with(&[1], 1);
    h.recv(2, 1, append((max - 1, 1), vec![e(max, 1)], 1));
    h.persist();
    let hint = AppendResult::Reject {
        prev_log_index: LogIndex(max - 1),
        last_log_index: LogIndex(1),
        conflict_term: None,
        conflict_index: LogIndex(2),
    };
    assert_eq!(responses(&h.take_sent()), vec![hint]);
    h.recv(2, 1, append((max, 1), vec![e(max + 1, 1)], 1));
    h.persist();
    assert_eq!(responses(&h.take_sent()), vec![]);
    // The same bound holds for the leader's commit index.
    h.recv(2, 1, append((1, 1), vec![], max));
    h.persist();
    assert_eq!(responses(&h.take_sent()), vec![AppendResult::Success { match_index: LogIndex(1) }]);
    assert_eq!(h.node.commit_index(), LogIndex(1));
    h.recv(2, 1, append((1, 1), vec![], max + 1));
    h.persist();
    assert_eq!(responses(&h.take_sent()), vec![]);
}

#[test]
fn truncating_a_configuration_entry_restores_the_one_before_it() {
    // Configurations take effect when appended (dissertation §4.1), so one
    // that a new leader overwrites must stop counting, and the newest
    // surviving one counts again.
    let four = Membership::with_voters(ids(4));
    let five = Membership::with_voters(ids(5));
    let config = |index: u64, m: &Membership| Entry {
        term: Term(1),
        index: LogIndex(index),
        payload: Payload::Membership(m.clone().into()),
    };
    let hs = HardState { term: Term(1), voted_for: None, catching_up: false };
    let log = vec![config(1, &four), config(2, &five)];
    let mut h = Harness::with(Config::new(NodeId(1), ids(3)), Restored::new(hs, log));
    assert_eq!(h.node.membership(), &five);
    h.recv(2, 2, append((1, 1), vec![e(2, 2)], 0));
    h.persist();
    assert_eq!(responses(&h.sent), vec![AppendResult::Success { match_index: LogIndex(2) }]);
    assert_eq!(h.node.membership(), &four);
}

#[test]
fn a_leader_reports_each_followers_match_index() {
    let mut h = Harness::new(1, 3);
    h.elect();
    h.recv(
        2,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: LogIndex(1) },
        }),
    );
    assert_eq!(h.node.match_index(NodeId(2)), Some(LogIndex(1)));
    assert_eq!(h.node.match_index(NodeId(3)), Some(LogIndex(0)));
    assert_eq!(h.node.match_index(NodeId(9)), None);
    let f = follower_with(&[1], 1);
    assert_eq!(f.node.match_index(NodeId(2)), None);
}

#[test]
fn a_commit_notice_waits_until_the_followers_window_has_drained() {
    use super::super::test_harness::{ack, elect_by_pre_vote, leader_round, node};
    let mut h = node(1, 3);
    elect_by_pre_vote(&mut h);
    let first = h.node.last_log_index().0 + 1;
    for c in ["a", "b", "c"] {
        h.node.propose(h.now, c).unwrap();
        h.persist();
    }
    let to3 = |sent: &[Outgoing]| -> Vec<(u64, usize, u64)> {
        sent.iter()
            .filter(|o| o.to == NodeId(3))
            .filter_map(|o| match &o.message.body {
                Body::AppendEntries(a) => Some((a.prev_log_index.0, a.entries.len(), a.leader_commit.0)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(to3(&h.take_sent()).len(), 3, "three messages pipelined to node 3");
    // Node 3 acknowledges the first: it commits, but two messages are still
    // in flight to node 3 and each answer will bring news of its own.
    let round = leader_round(&h);
    h.recv(3, h.node.term().0, ack(round, first));
    assert_eq!(h.node.commit_index(), LogIndex(first));
    assert_eq!(to3(&h.take_sent()), []);
    h.recv(3, h.node.term().0, ack(round, first + 2));
    assert_eq!(h.node.commit_index(), LogIndex(first + 2));
    // The window drained: one notice of the new commit index.
    assert_eq!(to3(&h.take_sent()), [(first + 2, 0, first + 2)]);
}

#[test]
fn one_input_delivers_every_committed_entry_even_beyond_one_apply_batch() {
    // An `Output::Apply` holds at most APPLY_BATCH entries; the rest must
    // come out of the same drain, with no further input.
    let n = super::super::APPLY_BATCH as u64 + 10;
    let mut h = Harness::new(2, 3);
    h.recv(1, 1, append((0, 0), (1..=n).map(|i| e(i, 1)).collect(), n));
    assert!(h.applied.is_empty(), "nothing is durable yet");
    h.persist();
    let applied: Vec<u64> = h.applied.iter().map(|e| e.index.0).collect();
    assert_eq!(applied, (1..=n).collect::<Vec<_>>());
    assert_eq!(h.node.last_applied(), LogIndex(n));
}
