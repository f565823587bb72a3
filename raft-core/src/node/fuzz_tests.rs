//! Hostile input: random and boundary-valued messages from any sender, mixed
//! with timeouts, persists, proposals and compactions, must never panic
//! (overflow checks are on in test builds) and never break basic promises.

use super::test_harness::{Harness, ids};
use crate::message::Body;
use crate::message::*;
use crate::rng::SplitMix64;
use crate::types::{Bytes, Entry, LogIndex, NodeId, Payload, Term};
use crate::{Config, Duration, Restored};
use alloc::vec::Vec;

fn edgy(rng: &mut SplitMix64, small: u64) -> u64 {
    match rng.range(0, 8) {
        0 => 0,
        1 => u64::MAX,
        2 => u64::MAX - rng.range(0, 3),
        3 => 1 << rng.range(0, 64),
        _ => rng.range(0, small),
    }
}

fn random_entries(rng: &mut SplitMix64, start: u64) -> Vec<Entry> {
    let n = rng.range(0, 5);
    let contiguous = rng.range(0, 4) != 0;
    let mut term = edgy(rng, 6);
    (0..n)
        .map(|k| {
            if rng.range(0, 3) == 0 {
                term = term.saturating_add(rng.range(0, 2));
            }
            let index = if contiguous { start.saturating_add(k + 1) } else { edgy(rng, 20) };
            let payload = if rng.range(0, 2) == 0 {
                Payload::Noop
            } else {
                Payload::Command(Bytes::from(alloc::vec![7u8; rng.range(0, 40) as usize]))
            };
            Entry { term: Term(term), index: LogIndex(index), payload }
        })
        .collect()
}

fn random_body(rng: &mut SplitMix64) -> Body {
    match rng.range(0, 10) {
        0 => Body::RequestVote(RequestVote {
            last_log_index: LogIndex(edgy(rng, 20)),
            last_log_term: Term(edgy(rng, 6)),
            pre_vote: rng.range(0, 2) == 1,
            transfer: rng.range(0, 2) == 1,
        }),
        1 => Body::RequestVoteResponse(VoteResponse { granted: rng.range(0, 2) == 1, pre_vote: rng.range(0, 2) == 1 }),
        2 => {
            let prev = edgy(rng, 20);
            Body::AppendEntries(AppendEntries {
                prev_log_index: LogIndex(prev),
                prev_log_term: Term(edgy(rng, 6)),
                entries: random_entries(rng, prev),
                leader_commit: LogIndex(edgy(rng, 20)),
                round: edgy(rng, 8),
            })
        }
        3 => Body::AppendEntriesResponse(crate::AppendResponse {
            round: edgy(rng, 8),
            result: AppendResult::Success { match_index: LogIndex(edgy(rng, 20)) },
        }),
        4 => Body::AppendEntriesResponse(crate::AppendResponse {
            round: edgy(rng, 8),
            result: AppendResult::Reject {
                prev_log_index: LogIndex(edgy(rng, 20)),
                last_log_index: LogIndex(edgy(rng, 20)),
                conflict_term: (rng.range(0, 2) == 0).then(|| Term(edgy(rng, 6))),
                conflict_index: LogIndex(edgy(rng, 20)),
            },
        }),
        5 => {
            let total = edgy(rng, 64);
            let len = rng.range(0, 32) as usize;
            Body::InstallSnapshot(InstallSnapshot {
                index: LogIndex(edgy(rng, 20)),
                snapshot_term: Term(edgy(rng, 6)),
                offset: edgy(rng, 64),
                total_len: total,
                data: Bytes::from(alloc::vec![1u8; len]),
                checksum: rng.range(0, 2) as u32,
                membership: Default::default(),
                round: edgy(rng, 8),
            })
        }
        6 => Body::InstallSnapshotResponse(SnapshotResponse {
            index: LogIndex(edgy(rng, 20)),
            next_offset: edgy(rng, 64),
            done: rng.range(0, 2) == 1,
            too_large: rng.range(0, 4) == 0,
            round: edgy(rng, 8),
        }),
        7 => Body::TimeoutNow,
        8 => Body::ReadIndex(ReadIndexRequest { id: edgy(rng, 8) }),
        _ => Body::ReadIndexResponse(ReadIndexResponse {
            id: edgy(rng, 8),
            index: (rng.range(0, 2) == 0).then(|| LogIndex(edgy(rng, 20))),
        }),
    }
}

#[test]
fn random_hostile_inputs_never_panic_and_keep_basic_promises() {
    for seed in 0..300u64 {
        let mut rng = SplitMix64::new(seed);
        let mut c = Config::new(NodeId(1), ids(3));
        c.max_snapshot_bytes = 1 << 16;
        let mut h = Harness::with(c, Restored::fresh());
        let mut last_commit = LogIndex(0);
        for _ in 0..400 {
            match rng.range(0, 10) {
                0 => h.fire_timeout(),
                1 => h.persist(),
                2 => {
                    let _ = h.node.propose(h.now, "p");
                    h.drain();
                }
                9 if rng.range(0, 2) == 0 => {
                    let _ = h.node.read_index(h.now, crate::ReadId(edgy(&mut rng, 8)));
                    let _ = h.node.transfer_leadership(h.now, NodeId(rng.range(0, 5)));
                    h.drain();
                }
                3 => {
                    let applied = h.node.last_applied();
                    let _ = h.node.compact(h.now, applied, "snap");
                    h.drain();
                }
                4 => h.now += Duration::from_millis(rng.range(0, 200)),
                _ => {
                    let from = NodeId(rng.range(0, 5)); // includes self and non-members
                    let term = Term(edgy(&mut rng, 8));
                    let body = random_body(&mut rng);
                    h.node.handle_message(h.now, from, crate::Message { term, body });
                    h.drain();
                }
            }
            let n = &h.node;
            assert!(n.commit_index() >= last_commit, "seed {seed}: commit went back");
            last_commit = n.commit_index();
            assert!(n.last_applied() <= n.commit_index(), "seed {seed}");
            assert!(n.snapshot_index() <= n.last_log_index(), "seed {seed}");
        }
        // Applied entries are contiguous and increasing.
        for w in h.applied.windows(2) {
            assert_eq!(w[1].index, w[0].index.next(), "seed {seed}: apply stream has a gap");
        }
    }
}
