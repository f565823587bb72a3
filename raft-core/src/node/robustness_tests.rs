//! Edge cases a hostile peer, a slow link or a crash at the wrong moment can
//! produce (issue "Robustness"): each test reproduces one finding and fails
//! without its fix.

use super::test_harness::{Harness, ids};
use crate::message::*;
use crate::output::Event;
use crate::types::{Bytes, Entry, HardState, LogIndex, NodeId, Payload, Term};
use crate::{Config, Duration, Restored};
use alloc::vec;
use alloc::vec::Vec;

fn chunk(index: u64, offset: u64, data: &[u8], total: u64, checksum: u32) -> Body {
    Body::InstallSnapshot(InstallSnapshot {
        index: LogIndex(index),
        snapshot_term: Term(1),
        offset,
        total_len: total,
        data: Bytes::from(data),
        checksum,
        membership: Default::default(),
        round: 0,
    })
}

fn answers(h: &mut Harness) -> Vec<SnapshotResponse> {
    h.take_sent()
        .into_iter()
        .filter_map(|o| match o.message.body {
            Body::InstallSnapshotResponse(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn follower() -> Harness {
    Harness::with(Config::new(NodeId(2), ids(3)), Restored::fresh())
}

#[test]
fn a_snapshot_of_exactly_max_snapshot_bytes_is_taken_and_one_byte_more_refused() {
    let limited = || {
        let mut c = Config::new(NodeId(2), ids(3));
        c.max_snapshot_bytes = 4;
        Harness::with(c, Restored::fresh())
    };
    let mut h = limited();
    h.recv(1, 1, chunk(5, 0, b"abcd", 4, crc32fast::hash(b"abcd")));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(5));
    let taken = answers(&mut h);
    assert!(!taken.is_empty() && taken.iter().all(|a| a.done && !a.too_large), "{taken:?}");
    let mut h = limited();
    h.recv(1, 1, chunk(5, 0, b"abcde", 5, crc32fast::hash(b"abcde")));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(0));
    let refused = answers(&mut h);
    assert!(!refused.is_empty() && refused.iter().all(|a| a.too_large), "{refused:?}");
}

#[test]
fn a_snapshot_may_end_at_max_index_but_not_past_it() {
    let max = super::MAX_INDEX.0;
    let whole = b"x";
    let mut h = follower();
    h.recv(1, 1, chunk(max + 1, 0, whole, 1, crc32fast::hash(whole)));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(0));
    let mut h = follower();
    h.recv(1, 1, chunk(max, 0, whole, 1, crc32fast::hash(whole)));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(max));
}

#[test]
fn a_snapshot_index_near_the_top_of_the_range_is_refused() {
    // Installing it would make the next append overflow the log index.
    let mut h = follower();
    let whole = b"x";
    h.recv(1, 1, chunk(u64::MAX - 1, 0, whole, 1, crc32fast::hash(whole)));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(0));
    assert!(h.writes.iter().all(|w| w.snapshot.is_none()));
    let append = Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(u64::MAX - 1),
        prev_log_term: Term(1),
        entries: vec![Entry { term: Term(1), index: LogIndex(u64::MAX), payload: Payload::Noop }],
        leader_commit: LogIndex(u64::MAX),
        round: 0,
    });
    h.recv(1, 1, append);
    h.persist();
    assert_eq!((h.node.last_log_index(), h.node.commit_index()), (LogIndex(0), LogIndex(0)));
}

#[test]
fn a_partial_snapshot_is_never_resumed_with_another_leaders_chunks() {
    let mut h = follower();
    let (first, second) = (&[1u8; 100][..], &[2u8; 100][..]);
    let whole: Vec<u8> = first.iter().chain(second).copied().collect();
    let sum = crc32fast::hash(&whole);
    h.recv(1, 1, chunk(9, 0, first, 200, sum));
    assert_eq!(answers(&mut h)[0].next_offset, 100);
    // A new leader of term 2 with a snapshot of the same index, term and size.
    h.recv(3, 2, chunk(9, 100, second, 200, sum));
    let a = answers(&mut h);
    assert_eq!((a[0].next_offset, a[0].done), (0, false), "spliced two leaders' snapshots");
    assert!(h.restored.is_empty());
}

#[test]
fn a_snapshot_whose_bytes_do_not_match_its_checksum_is_not_installed() {
    let mut h = follower();
    let whole = b"state";
    h.recv(1, 1, chunk(4, 0, whole, 5, crc32fast::hash(b"other")));
    h.persist();
    assert!(h.restored.is_empty() && h.writes.iter().all(|w| w.snapshot.is_none()));
    assert_eq!(answers(&mut h).last().map(|a| (a.next_offset, a.done)), Some((0, false)));
    h.recv(1, 1, chunk(4, 0, whole, 5, crc32fast::hash(whole)));
    h.persist();
    assert_eq!(h.restored.len(), 1);
}

#[test]
fn an_oversize_snapshot_gets_an_answer_the_leader_understands() {
    let mut c = Config::new(NodeId(2), ids(3));
    c.max_snapshot_bytes = 10;
    let mut h = Harness::with(c, Restored::fresh());
    h.recv(1, 1, chunk(9, 0, &[0u8; 8], 11, 0));
    let a = answers(&mut h);
    assert_eq!(a.len(), 1, "a refused snapshot went unanswered: the leader would resend chunk 0 forever");
    assert!(a[0].too_large && !a[0].done);
}

#[test]
fn a_leader_stops_sending_a_snapshot_its_follower_refused() {
    let mut c = Config::new(NodeId(1), ids(3));
    c.max_message_bytes = 300;
    c.max_entry_bytes = 100;
    c.max_inflight_bytes = 4096;
    let mut l = Harness::with(c, Restored::fresh());
    l.elect();
    for i in 0..4 {
        l.node.propose(l.now, alloc::format!("c{i}").as_str()).unwrap();
    }
    l.persist();
    let last = l.node.last_log_index();
    let ok =
        |i| Body::AppendEntriesResponse(AppendResponse { round: 0, result: AppendResult::Success { match_index: i } });
    l.recv(3, 1, ok(last));
    l.persist();
    l.node.compact(l.now, last, vec![5u8; 700]).unwrap();
    l.persist();
    // Node 2 asks from the start: it gets the snapshot.
    let reject = AppendResult::Reject {
        prev_log_index: last,
        last_log_index: LogIndex(0),
        conflict_term: None,
        conflict_index: LogIndex(1),
    };
    l.take_sent();
    l.fire_timeout();
    l.recv(2, 1, Body::AppendEntriesResponse(AppendResponse { round: 0, result: reject }));
    let chunks = |l: &mut Harness| {
        l.take_sent().iter().filter(|o| o.to == NodeId(2) && matches!(o.message.body, Body::InstallSnapshot(_))).count()
    };
    assert!(chunks(&mut l) > 0);
    let refusal = SnapshotResponse { index: last, next_offset: 0, done: false, too_large: true, round: 0 };
    l.recv(2, 1, Body::InstallSnapshotResponse(refusal.clone()));
    l.recv(2, 1, Body::InstallSnapshotResponse(refusal));
    let refused: Vec<_> = l.events.iter().filter(|e| matches!(e, Event::SnapshotRefused { .. })).collect();
    assert_eq!(refused.len(), 1, "{:?}", l.events);
    for _ in 0..5 {
        l.fire_timeout();
        assert_eq!(chunks(&mut l), 0, "a refused snapshot was resent");
    }
    // A newer snapshot is offered again.
    l.node.propose(l.now, "more").unwrap();
    l.persist();
    let newer = l.node.last_log_index();
    l.recv(3, 1, ok(newer));
    l.persist();
    l.node.compact(l.now, newer, vec![6u8; 100]).unwrap();
    l.persist();
    l.take_sent();
    l.fire_timeout();
    assert!(chunks(&mut l) > 0, "the newer snapshot was never sent");
}

#[test]
fn a_newer_snapshot_replaces_the_one_being_sent() {
    let mut c = Config::new(NodeId(1), ids(3));
    c.max_message_bytes = 300;
    c.max_entry_bytes = 100;
    c.max_inflight_bytes = 4096;
    let mut l = Harness::with(c, Restored::fresh());
    l.elect();
    let ok =
        |i| Body::AppendEntriesResponse(AppendResponse { round: 0, result: AppendResult::Success { match_index: i } });
    let commit_and_compact = |l: &mut Harness, size: usize| {
        l.node.propose(l.now, "c").unwrap();
        l.persist();
        let last = l.node.last_log_index();
        l.recv(3, 1, ok(last));
        l.persist();
        l.node.compact(l.now, last, vec![5u8; size]).unwrap();
        l.persist();
        last
    };
    let older = commit_and_compact(&mut l, 700);
    let reject = AppendResult::Reject {
        prev_log_index: older,
        last_log_index: LogIndex(0),
        conflict_term: None,
        conflict_index: LogIndex(1),
    };
    l.take_sent();
    l.fire_timeout();
    l.recv(2, 1, Body::AppendEntriesResponse(AppendResponse { round: 0, result: reject }));
    let chunks = |l: &mut Harness| -> Vec<(LogIndex, u64)> {
        l.take_sent()
            .into_iter()
            .filter(|o| o.to == NodeId(2))
            .filter_map(|o| match o.message.body {
                Body::InstallSnapshot(s) => Some((s.index, s.offset)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(chunks(&mut l), [(older, 0)]);
    let answer = SnapshotResponse { index: older, next_offset: 50, done: false, too_large: false, round: 0 };
    l.recv(2, 1, Body::InstallSnapshotResponse(answer));
    assert_eq!(chunks(&mut l), [(older, 50)]);
    // That chunk is unanswered when the leader compacts again: the newer
    // snapshot starts from its beginning.
    let newer = commit_and_compact(&mut l, 100);
    l.take_sent();
    l.fire_timeout();
    assert_eq!(chunks(&mut l), [(newer, 0)]);
}

#[test]
fn a_late_chunk_of_an_older_snapshot_keeps_the_newer_transfer() {
    let mut h = follower();
    let newer = [7u8; 200];
    let sum = crc32fast::hash(&newer);
    h.recv(1, 1, chunk(20, 0, &newer[..100], 200, sum));
    assert_eq!(answers(&mut h)[0].next_offset, 100);
    // A reordered first chunk of the leader's previous snapshot.
    h.recv(1, 1, chunk(10, 0, &[1u8; 50], 100, 0));
    h.take_sent();
    h.recv(1, 1, chunk(20, 100, &newer[100..], 200, sum));
    h.persist();
    assert_eq!(h.restored.len(), 1, "the newer transfer was thrown away");
    assert_eq!(h.restored[0].meta.index, LogIndex(20));
}

#[test]
fn a_stalled_partial_snapshot_is_dropped_after_a_timeout() {
    let mut h = follower();
    let whole = [3u8; 200];
    let sum = crc32fast::hash(&whole);
    h.recv(1, 1, chunk(9, 0, &whole[..100], 200, sum));
    h.take_sent();
    // The leader keeps the follower's election timer quiet with heartbeats
    // that say nothing of the snapshot.
    let beat = Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: Vec::new(),
        leader_commit: LogIndex(0),
        round: 0,
    });
    for _ in 0..12 {
        h.now += Duration::from_millis(100);
        h.node.handle_timeout(h.now);
        h.recv(1, 1, beat.clone());
    }
    h.persist();
    h.take_sent();
    h.recv(1, 1, chunk(9, 100, &whole[100..], 200, sum));
    let a = answers(&mut h);
    assert_eq!(a.last().map(|a| a.next_offset), Some(0), "the partial snapshot was kept");
}

#[test]
fn a_slow_partial_snapshot_is_kept_for_two_election_timeouts() {
    let mut h = follower();
    h.now += Duration::from_millis(5000);
    let whole = [3u8; 200];
    let sum = crc32fast::hash(&whole);
    let started = h.now;
    h.recv(1, 1, chunk(9, 0, &whole[..100], 200, sum));
    h.take_sent();
    let patience = h.node.config().election_timeout_max.saturating_mul(2);
    let beat = Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: Vec::new(),
        leader_commit: LogIndex(0),
        round: 0,
    });
    while h.now + Duration::from_millis(100) < started + patience {
        h.now += Duration::from_millis(100);
        h.node.handle_timeout(h.now);
        h.recv(1, 1, beat.clone());
    }
    h.now = started + patience - Duration::from_millis(1);
    h.node.handle_timeout(h.now);
    h.persist();
    h.take_sent();
    h.recv(1, 1, chunk(9, 100, &whole[100..], 200, sum));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(9), "the partial snapshot was dropped early");
}

#[test]
fn a_restart_adopts_the_term_of_stored_entries_newer_than_the_hard_state() {
    // A crash between storing entries of term 3 and the hard state of term 3.
    let hs = HardState { term: Term(2), voted_for: Some(NodeId(3)), catching_up: false };
    let entries = vec![Entry { term: Term(3), index: LogIndex(1), payload: Payload::Noop }];
    let mut h = Harness::with(Config::new(NodeId(1), ids(3)), Restored::new(hs, entries));
    assert_eq!((h.node.term(), h.node.voted_for()), (Term(3), None));
    // A leader of term 2 is stale now: its entries must not replace term 3's.
    let append = Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![Entry { term: Term(2), index: LogIndex(1), payload: Payload::Noop }],
        leader_commit: LogIndex(1),
        round: 0,
    });
    h.recv(3, 2, append);
    h.persist();
    assert_eq!(h.node.log_term(LogIndex(1)), Some(Term(3)));
}

#[test]
fn a_truncation_below_the_durable_index_withdraws_durability() {
    // Entries 1..4 of term 1 are durable; a leader of term 2 replaces 3..4.
    let entries = (1..=4).map(|i| Entry { term: Term(1), index: LogIndex(i), payload: Payload::Noop }).collect();
    let hs = HardState { term: Term(1), voted_for: None, catching_up: false };
    let mut h = Harness::with(Config::new(NodeId(2), ids(3)), Restored::new(hs, entries));
    assert_eq!(h.node.durable_index(), LogIndex(4));
    let append = Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(2),
        prev_log_term: Term(1),
        entries: vec![Entry { term: Term(2), index: LogIndex(3), payload: Payload::Noop }],
        leader_commit: LogIndex(3),
        round: 0,
    });
    h.recv(1, 2, append);
    assert_eq!(h.node.durable_index(), LogIndex(2), "the truncated entries still count as durable");
    assert!(h.applied.iter().all(|e| e.index < LogIndex(3)), "applied an entry before it was durable");
    h.persist();
    assert_eq!(h.applied.last().map(|e| (e.index, e.term)), Some((LogIndex(3), Term(2))));
}

#[test]
fn a_newer_snapshot_of_the_same_leader_replaces_the_partial_one() {
    let mut h = follower();
    h.recv(1, 1, chunk(10, 0, &[1u8; 100], 200, 0));
    assert_eq!(answers(&mut h)[0].next_offset, 100);
    // The leader compacted again and starts over with a newer snapshot.
    let newer = [7u8; 80];
    h.recv(1, 1, chunk(20, 0, &newer, 80, crc32fast::hash(&newer)));
    h.persist();
    let a = answers(&mut h);
    assert_eq!(a.iter().map(|a| (a.index, a.next_offset, a.done)).collect::<Vec<_>>(), [(LogIndex(20), 80, true)]);
    assert_eq!(h.restored.len(), 1, "the newer snapshot was ignored");
    assert_eq!(h.restored[0].meta.index, LogIndex(20));
}

#[test]
fn a_stray_mid_way_chunk_of_another_snapshot_keeps_the_partial_one() {
    let mut h = follower();
    let whole = [3u8; 200];
    let sum = crc32fast::hash(&whole);
    h.recv(1, 1, chunk(10, 0, &whole[..100], 200, sum));
    assert_eq!(answers(&mut h)[0].next_offset, 100);
    // A reordered chunk from the middle of a newer snapshot: it cannot start
    // a transfer, so the follower asks for that one's beginning...
    h.recv(1, 1, chunk(20, 100, &[9u8; 50], 300, 0));
    let a = answers(&mut h);
    assert_eq!(a.iter().map(|a| (a.index, a.next_offset, a.done)).collect::<Vec<_>>(), [(LogIndex(20), 0, false)]);
    // ... and the transfer in progress goes on where it was.
    h.recv(1, 1, chunk(10, 100, &whole[100..], 200, sum));
    h.persist();
    assert_eq!(h.restored.len(), 1, "the partial snapshot was thrown away");
    assert_eq!(h.restored[0].meta.index, LogIndex(10));
    assert_eq!(&h.restored[0].data[..], &whole[..]);
}

#[test]
fn a_snapshot_of_the_same_node_in_a_later_term_starts_over_even_if_older() {
    // Node 1 led term 1 and sent part of snapshot 20 (never durable on its
    // side, say); leading term 2, it sends the older snapshot 10: that is
    // another leadership's transfer, not a late chunk of the same one.
    let mut h = follower();
    h.recv(1, 1, chunk(20, 0, &[1u8; 100], 200, 0));
    assert_eq!(answers(&mut h)[0].next_offset, 100);
    let older = [4u8; 60];
    h.recv(1, 2, chunk(10, 0, &older, 60, crc32fast::hash(&older)));
    h.persist();
    let a = answers(&mut h);
    assert_eq!(a.iter().map(|a| (a.index, a.next_offset, a.done)).collect::<Vec<_>>(), [(LogIndex(10), 60, true)]);
    assert_eq!(h.restored.len(), 1, "the later term's snapshot was taken for a late chunk");
    assert_eq!(h.restored[0].meta.index, LogIndex(10));
}

#[test]
fn a_snapshot_without_a_configuration_leaves_the_bootstrap_one_unlogged() {
    // Such a snapshot keeps the configuration in effect: the bootstrap
    // members, still not logged, so its index stays 0 (not the snapshot's).
    let mut h = follower();
    let data = [6u8; 40];
    h.recv(1, 1, chunk(9, 0, &data, 40, crc32fast::hash(&data)));
    h.persist();
    assert_eq!(h.restored.len(), 1);
    assert_eq!(h.node.snapshot_index(), LogIndex(9));
    assert_eq!(h.node.membership().voters, ids(3).into_iter().collect());
    assert_eq!(h.node.membership_index(), LogIndex(0));
}

#[test]
fn a_snapshot_with_a_configuration_makes_its_index_the_configurations() {
    let mut h = follower();
    let data = [6u8; 40];
    let membership = crate::Membership::with_voters(ids(3));
    h.recv(
        1,
        1,
        Body::InstallSnapshot(InstallSnapshot {
            index: LogIndex(9),
            snapshot_term: Term(1),
            offset: 0,
            total_len: 40,
            data: Bytes::from(&data),
            checksum: crc32fast::hash(&data),
            membership: membership.clone().into(),
            round: 0,
        }),
    );
    h.persist();
    assert_eq!(h.restored.len(), 1);
    assert_eq!(h.node.membership(), &membership);
    assert_eq!(h.node.membership_index(), LogIndex(9));
}
