//! Snapshots: compaction, the policy, InstallSnapshot in chunks, restart (paper §7).

use super::super::test_harness::{Harness, exchange, ids};
use crate::message::Body;
use crate::message::*;
use crate::output::{Event, Outgoing};
use crate::types::{Bytes, Entry, HardState, LogIndex, NodeId, Payload, Snapshot, SnapshotDigest, SnapshotMeta, Term};
use crate::{CompactError, Config, Restored, Role};
use alloc::vec;
use alloc::vec::Vec;

fn small_config(id: u64) -> Config {
    let mut c = Config::new(NodeId(id), ids(3));
    c.max_entry_bytes = 100;
    c.max_message_bytes = 300;
    c.max_inflight_bytes = 4096;
    c.snapshot_after_entries = Some(5);
    c
}

/// A leader (node 1) with `n` committed commands, applied, none replicated to node 2.
fn leader_with(n: usize) -> Harness {
    let mut h = Harness::with(small_config(1), Restored::fresh());
    h.elect();
    for i in 0..n {
        h.node.propose(h.now, alloc::format!("cmd{i}").as_str()).unwrap();
    }
    h.persist();
    // Node 3 acknowledges everything: leader + 3 is a majority.
    let last = h.node.last_log_index();
    h.recv(
        3,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: last },
        }),
    );
    h.persist();
    assert_eq!(h.node.commit_index(), last);
    h
}

#[test]
fn compact_checks_its_index_and_drops_covered_entries() {
    let mut h = leader_with(8);
    let applied = h.node.last_applied();
    assert_eq!(applied, LogIndex(9));
    assert_eq!(
        h.node.compact(h.now, LogIndex(10), "s"),
        Err(CompactError::NotApplied { index: LogIndex(10), applied })
    );
    h.node.compact(h.now, LogIndex(6), "state@6").unwrap();
    assert_eq!(h.node.snapshot_index(), LogIndex(6));
    assert_eq!(h.node.log_len(), 3);
    assert_eq!(h.node.log_term(LogIndex(6)), Some(Term(1)));
    assert_eq!(h.node.log_term(LogIndex(5)), None);
    assert_eq!(
        h.node.compact(h.now, LogIndex(6), "again"),
        Err(CompactError::NotNewer { index: LogIndex(6), snapshot_index: LogIndex(6) })
    );
    h.drain();
    let w = h.writes.last().unwrap();
    assert_eq!(w.snapshot.as_ref().map(|s| s.meta), Some(SnapshotMeta { index: LogIndex(6), term: Term(1) }));
}

#[test]
fn policy_asks_once_per_threshold_until_compacted() {
    let h = leader_with(8);
    let wanted: Vec<_> = h.events.iter().filter(|e| matches!(e, Event::SnapshotWanted { .. })).collect();
    assert_eq!(wanted.len(), 1, "{:?}", h.events);
    let mut h = h;
    let applied = h.node.last_applied();
    h.node.compact(h.now, applied, "s").unwrap();
    h.events.clear();
    for _ in 0..5 {
        h.node.propose(h.now, "x").unwrap();
    }
    h.persist();
    let last = h.node.last_log_index();
    h.recv(
        3,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: last },
        }),
    );
    h.persist();
    assert!(h.events.iter().any(|e| matches!(e, Event::SnapshotWanted { applied } if *applied == last)));
}

#[test]
fn lagging_follower_gets_the_snapshot_in_chunks_then_entries() {
    let mut l = leader_with(8);
    let big = Bytes::from(vec![7u8; 1000]); // ~5 chunks of 236 bytes
    l.node.compact(l.now, LogIndex(7), big.clone()).unwrap();
    let mut f = Harness::with(small_config(2), Restored::fresh());
    let mut chunks = Vec::new();
    exchange(&mut l, &mut f, |o| {
        if let Body::InstallSnapshot(InstallSnapshot { offset, data, .. }) = &o.message.body {
            chunks.push((*offset, data.len()));
        }
        true
    });
    // The first probe fails (log compacted), then 5 chunks in order.
    assert_eq!(chunks.len(), 5, "{chunks:?}");
    assert!(chunks.windows(2).all(|w| w[0].0 + w[0].1 as u64 == w[1].0));
    assert_eq!(f.restored.len(), 1);
    assert_eq!(f.restored[0].data, big);
    assert_eq!(f.node.snapshot_index(), LogIndex(7));
    // Entries after the snapshot follow, and apply continues at 8.
    assert_eq!(f.node.last_log_index(), l.node.last_log_index());
    l.fire_timeout(); // heartbeat carries the commit index
    exchange(&mut l, &mut f, |_| true);
    assert_eq!(f.applied.first().map(|e| e.index), Some(LogIndex(8)));
    assert_eq!(f.node.last_applied(), LogIndex(9));
}

#[test]
fn a_lost_chunk_is_resent_and_a_gap_is_refused() {
    let mut l = leader_with(8);
    l.node.compact(l.now, LogIndex(7), vec![1u8; 700]).unwrap();
    let mut f = Harness::with(small_config(2), Restored::fresh());
    let mut dropped = false;
    exchange(&mut l, &mut f, |o| {
        let drop_it =
            !dropped && matches!(&o.message.body, Body::InstallSnapshot(InstallSnapshot { offset, .. }) if *offset > 0);
        dropped |= drop_it;
        !drop_it
    });
    assert!(dropped);
    assert!(f.restored.is_empty(), "stalled until the next heartbeat");
    l.fire_timeout();
    exchange(&mut l, &mut f, |_| true);
    assert_eq!(f.restored.len(), 1);
    assert_eq!(f.restored[0].data.len(), 700);
    // A chunk at the wrong offset is answered with the offset wanted.
    let mut g = Harness::with(small_config(2), Restored::fresh());
    let chunk = |offset| {
        Body::InstallSnapshot(InstallSnapshot {
            index: LogIndex(7),
            snapshot_term: Term(1),
            offset,
            total_len: 700,
            data: Bytes::from(vec![1u8; 100]),
            checksum: 0,
            membership: Default::default(),
            round: 0,
        })
    };
    g.recv(1, 1, chunk(0));
    g.recv(1, 1, chunk(300));
    let answers: Vec<_> = g.take_sent().into_iter().map(|o| o.message.body).collect();
    assert_eq!(
        answers,
        vec![
            Body::InstallSnapshotResponse(SnapshotResponse {
                index: LogIndex(7),
                next_offset: 100,
                done: false,
                too_large: false,
                round: 0
            }),
            Body::InstallSnapshotResponse(SnapshotResponse {
                index: LogIndex(7),
                next_offset: 100,
                done: false,
                too_large: false,
                round: 0
            }),
        ]
    );
}

#[test]
fn restore_waits_for_durability_and_precedes_later_applies() {
    let mut f = Harness::with(small_config(2), Restored::fresh());
    let data = Bytes::from("state");
    f.node.handle_message(
        f.now,
        NodeId(1),
        crate::Message {
            term: Term(2),
            body: Body::InstallSnapshot(InstallSnapshot {
                index: LogIndex(4),
                snapshot_term: Term(2),
                offset: 0,
                total_len: 5,
                data: data.clone(),
                checksum: crc32fast::hash(b"state"),
                membership: Default::default(),
                round: 0,
            }),
        },
    );
    f.drain();
    assert!(f.restored.is_empty() && f.sent.is_empty(), "nothing before the snapshot is durable");
    assert_eq!(f.writes.last().unwrap().snapshot.as_ref().map(|s| s.meta.index), Some(LogIndex(4)));
    f.persist();
    assert_eq!(f.restored.len(), 1);
    assert_eq!(f.node.commit_index(), LogIndex(4));
    assert_eq!(f.node.last_applied(), LogIndex(4));
    assert!(matches!(f.sent[0].message.body, Body::InstallSnapshotResponse(SnapshotResponse { done: true, .. })));
}

#[test]
fn a_snapshot_the_follower_is_past_is_acknowledged_without_install() {
    let mut l = leader_with(3);
    let mut f = Harness::with(small_config(2), Restored::fresh());
    exchange(&mut l, &mut f, |_| true);
    l.fire_timeout();
    exchange(&mut l, &mut f, |_| true);
    assert_eq!(f.node.commit_index(), LogIndex(4));
    f.recv(
        1,
        1,
        Body::InstallSnapshot(InstallSnapshot {
            index: LogIndex(3),
            snapshot_term: Term(1),
            offset: 0,
            total_len: 1,
            data: Bytes::from("x"),
            // A sound snapshot: it is its index, below the commit index,
            // that keeps it from being installed (the log base is still 0).
            checksum: crc32fast::hash(b"x"),
            membership: Default::default(),
            round: 0,
        }),
    );
    f.persist();
    let answer = f.take_sent().into_iter().find_map(|o| match o.message.body {
        Body::InstallSnapshotResponse(r) => Some((r.index, r.next_offset, r.done)),
        _ => None,
    });
    assert_eq!(answer, Some((LogIndex(3), 1, true)), "the snapshot was not acknowledged as done");
    assert!(f.restored.is_empty());
    assert_eq!(f.node.snapshot_index(), LogIndex(0));
    assert_eq!(f.node.last_log_index(), LogIndex(4));
}

#[test]
fn restart_from_a_snapshot_restores_first_then_applies_the_rest() {
    let snap = Snapshot {
        meta: SnapshotMeta { index: LogIndex(10), term: Term(2) },
        membership: Default::default(),
        data: Bytes::from("sm@10"),
    };
    let entries = vec![crate::Entry { term: Term(3), index: LogIndex(11), payload: crate::Payload::Noop }];
    let hs = HardState { term: Term(3), voted_for: Some(NodeId(1)), catching_up: false };
    let restored = Restored::new(hs, entries).with_snapshot(snap.clone());
    let mut h = Harness::with(Config::new(NodeId(1), [NodeId(1)]), restored);
    h.drain();
    assert_eq!(h.restored, vec![snap.clone()]);
    assert_eq!(h.node.commit_index(), LogIndex(10));
    h.fire_timeout();
    h.persist();
    assert_eq!(h.node.role(), Role::Leader);
    let idx: Vec<_> = h.applied.iter().map(|e| e.index.0).collect();
    assert_eq!(idx, vec![11, 12]);
    // A host whose state machine already reflects the snapshot is not asked to restore.
    let restored = Restored::new(hs, vec![]).with_snapshot(snap).with_last_applied(LogIndex(10));
    let mut h = Harness::with(Config::new(NodeId(1), [NodeId(1)]), restored);
    h.drain();
    assert!(h.restored.is_empty());
}

#[test]
fn restored_entries_must_follow_the_snapshot() {
    let snap = Snapshot {
        meta: SnapshotMeta { index: LogIndex(10), term: Term(2) },
        membership: Default::default(),
        data: Bytes::from("x"),
    };
    let entries = vec![crate::Entry { term: Term(3), index: LogIndex(12), payload: crate::Payload::Noop }];
    let restored = Restored::new(HardState::default(), entries).with_snapshot(snap);
    let err = crate::Node::new(Config::new(NodeId(1), [NodeId(1)]), restored, crate::Instant::ZERO).unwrap_err();
    assert_eq!(
        err,
        crate::NewNodeError::Restore(crate::RestoreError::NotContiguous {
            expected: LogIndex(11),
            found: LogIndex(12)
        })
    );
}

#[test]
fn a_snapshot_installed_in_the_step_that_appended_entries_leaves_only_later_entries_in_the_write() {
    // A host may feed several inputs before it polls: they make one write.
    // Write's contract stores the snapshot (dropping what it covers) and then
    // appends the entries after it, so entries it covers must not be there.
    let mut f = Harness::with(small_config(2), Restored::fresh());
    let entries = (1..=4)
        .map(|i| Entry { term: Term(1), index: LogIndex(i), payload: Payload::Command(Bytes::from("c")) })
        .collect();
    let append = AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries,
        leader_commit: LogIndex(0),
        round: 0,
    };
    f.node.handle_message(f.now, NodeId(1), crate::Message { term: Term(1), body: Body::AppendEntries(append) });
    let snapshot = InstallSnapshot {
        index: LogIndex(3),
        snapshot_term: Term(1),
        offset: 0,
        total_len: 1,
        data: Bytes::from("s"),
        checksum: crc32fast::hash(b"s"),
        membership: Default::default(),
        round: 0,
    };
    f.node.handle_message(f.now, NodeId(1), crate::Message { term: Term(1), body: Body::InstallSnapshot(snapshot) });
    f.drain();
    assert_eq!(f.writes.len(), 1);
    let w = &f.writes[0];
    assert_eq!(w.snapshot.as_ref().map(|s| s.meta.index), Some(LogIndex(3)));
    assert_eq!(w.entries.iter().map(|e| e.index.0).collect::<Vec<_>>(), vec![4]);
    assert_eq!(w.truncate_from, None);
}

#[test]
fn an_acknowledgement_during_a_snapshot_transfer_sends_no_entries_the_snapshot_answer_decides() {
    let mut l = leader_with(8);
    l.node.compact(l.now, LogIndex(6), "state@6").unwrap();
    l.take_sent();
    // Node 2 never answered: its next entry is compacted away, so the
    // heartbeat's probe becomes the snapshot's first chunk.
    l.fire_timeout();
    let to_2: Vec<_> = l.take_sent().into_iter().filter(|o| o.to == NodeId(2)).collect();
    assert!(to_2.iter().any(|o| matches!(o.message.body, Body::InstallSnapshot(_))), "{to_2:?}");
    // A late acknowledgement of entries the leader still holds arrives
    // mid-transfer: it moves nothing but `matched`. At the next heartbeat
    // the leader resends the chunk; no entries start alongside the snapshot.
    let round = super::super::test_harness::leader_round(&l);
    l.recv(2, 1, super::super::test_harness::ack(round, 7));
    l.fire_timeout();
    let to_2: Vec<_> = l.take_sent().into_iter().filter(|o| o.to == NodeId(2)).collect();
    assert!(to_2.iter().any(|o| matches!(o.message.body, Body::InstallSnapshot(_))), "{to_2:?}");
    let with_entries = |o: &&Outgoing| matches!(&o.message.body, Body::AppendEntries(a) if !a.entries.is_empty());
    assert!(!to_2.iter().any(|o| with_entries(&o)), "{to_2:?}");
}

/// A leader whose host stores its snapshot at 7 (1000 bytes, ~5 chunks).
fn leader_with_stored_snapshot(checksum_flip: u32) -> (Harness, Vec<u8>, SnapshotDigest) {
    let mut l = leader_with(8);
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    l.host_snapshot = bytes.clone();
    let digest = SnapshotDigest { len: 1000, checksum: crc32fast::hash(&bytes) ^ checksum_flip };
    l.node.compact_stored(l.now, LogIndex(7), digest).unwrap();
    l.drain();
    let w = l.writes.last().unwrap();
    assert_eq!(w.snapshot_digest, Some(digest));
    assert!(w.snapshot.as_ref().is_some_and(|s| s.data.is_empty() && s.meta.index == LogIndex(7)));
    assert_eq!(l.node.snapshot_digest(), Some(digest));
    (l, bytes, digest)
}

fn stored_follower() -> Harness {
    let mut c = small_config(2);
    c.host_stores_snapshots = true;
    Harness::with(c, Restored::fresh())
}

#[test]
fn stored_snapshots_go_through_the_host_on_both_sides() {
    let (mut l, bytes, digest) = leader_with_stored_snapshot(0);
    let mut f = stored_follower();
    let mut sent = Vec::new();
    exchange(&mut l, &mut f, |o| {
        if let Body::InstallSnapshot(InstallSnapshot { offset, data, .. }) = &o.message.body {
            sent.push((*offset, data.len() as u64));
        }
        true
    });
    // The leader asked its host for every chunk it sent, and sent what it got.
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert_eq!(l.chunk_requests, sent);
    // The follower's host got every chunk in order; the core kept none.
    assert_eq!(f.saved_chunks.iter().map(|c| (c.0, c.1 as u64)).collect::<Vec<_>>(), sent);
    assert_eq!(f.host_snapshot, bytes);
    let w = f.writes.iter().find(|w| w.snapshot.is_some()).unwrap();
    assert_eq!(w.snapshot_digest, Some(digest));
    assert!(w.snapshot.as_ref().is_some_and(|s| s.data.is_empty()));
    assert_eq!(f.node.snapshot_digest(), Some(digest));
    assert_eq!(f.restored.len(), 1);
    assert!(f.restored[0].data.is_empty());
    assert_eq!(f.restored[0].meta.index, LogIndex(7));
    // Then entries, as with a snapshot in memory.
    assert_eq!(f.node.last_log_index(), l.node.last_log_index());
    assert_eq!(f.node.last_applied(), l.node.last_log_index());
}

#[test]
fn a_stored_snapshot_whose_bytes_fail_the_checksum_is_never_installed() {
    let (mut l, _, _) = leader_with_stored_snapshot(1);
    let mut f = stored_follower();
    let mut delivered = 0;
    exchange(&mut l, &mut f, |_| {
        delivered += 1;
        delivered < 40
    });
    // Every pass ends in "start over" and the host starts a new partial snapshot.
    let restarts = f.saved_chunks.iter().filter(|c| c.0 == 0).count();
    assert!(restarts >= 2, "{:?}", f.saved_chunks);
    assert!(f.restored.is_empty());
    assert!(f.writes.iter().all(|w| w.snapshot.is_none()));
    assert_eq!(f.node.snapshot_index(), LogIndex(0));
}

#[test]
fn restart_from_a_stored_snapshot_restores_it_and_keeps_serving_it_from_the_host() {
    let digest = SnapshotDigest { len: 600, checksum: 77 };
    let meta = SnapshotMeta { index: LogIndex(5), term: Term(1) };
    let snapshot = Snapshot { meta, membership: Default::default(), data: Bytes::from("ignored") };
    let restored = Restored::new(HardState { term: Term(1), ..HardState::default() }, Vec::new())
        .with_stored_snapshot(snapshot, digest);
    let mut h = Harness::with(small_config(1), restored);
    assert_eq!(h.node.snapshot_digest(), Some(digest));
    h.persist();
    assert_eq!(h.restored.len(), 1);
    assert!(h.restored[0].data.is_empty(), "the core never held the bytes");
    assert_eq!(h.node.last_applied(), LogIndex(5));
}

#[test]
fn the_byte_policy_waits_for_applied_entries_and_log_bytes_counts_the_log() {
    let mut c = small_config(1);
    c.snapshot_after_entries = None;
    c.snapshot_after_log_bytes = Some(200);
    let mut h = Harness::with(c, Restored::fresh());
    h.elect();
    for i in 0..6 {
        h.node.propose(h.now, alloc::format!("cmd{i}").as_str()).unwrap();
    }
    h.persist();
    let last = h.node.last_log_index();
    let held: usize = (1..=last.0).map(|i| h.node.log_entry(LogIndex(i)).unwrap().size_bound()).sum();
    assert_eq!(h.node.log_bytes(), held);
    assert!(held >= 200);
    // Over the threshold, but nothing is applied: a snapshot could cover nothing.
    assert_eq!(h.node.last_applied(), LogIndex(0));
    assert!(!h.events.iter().any(|e| matches!(e, Event::SnapshotWanted { .. })), "{:?}", h.events);
    h.recv(
        3,
        1,
        Body::AppendEntriesResponse(crate::AppendResponse {
            round: 0,
            result: AppendResult::Success { match_index: last },
        }),
    );
    h.persist();
    assert!(h.events.iter().any(|e| matches!(e, Event::SnapshotWanted { applied } if *applied == last)));
    h.node.compact(h.now, LogIndex(4), "s").unwrap();
    let kept: usize = (5..=last.0).map(|i| h.node.log_entry(LogIndex(i)).unwrap().size_bound()).sum();
    assert_eq!(h.node.log_bytes(), kept);
    assert_eq!((h.node.last_log_index(), h.node.last_log_term()), (last, Term(1)));
}
