//! The engine against hand-made peer messages: one member of three whose
//! peers are played by the test.

use raft_core::{
    AppendEntries, AppendResponse, AppendResult, Body, Config, Entry, Instant, LogIndex, Message, NodeId, Payload,
    Role, Term, VoteResponse,
};
use raft_host::engine::{Done, Engine, Refused, Transport};
use raft_host::{DiskLog, KvCommand, KvOp, KvOutput, KvStore, NodeMeta, Outcome, kv::encode_command};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Default)]
struct Outbox(Vec<(NodeId, Message)>);

impl Transport for Outbox {
    fn send(&mut self, to: NodeId, message: Message) {
        self.0.push((to, message));
    }
}

type KvDone = Done<&'static str, <KvStore as raft_host::StateMachine>::Output>;

struct One {
    engine: Engine<KvStore, &'static str>,
    durable: mpsc::Receiver<raft_host::engine::DiskReport>,
    now: Instant,
    out: Outbox,
    done: Vec<KvDone>,
    changes: Vec<raft_host::engine::ChangeDone<&'static str>>,
}

impl One {
    fn start(dir: &std::path::Path) -> One {
        let (log, recovered) = DiskLog::open(dir, NodeMeta::new(NodeId(1), 5)).unwrap();
        let (tx, durable) = mpsc::channel();
        let config = Config::new(NodeId(1), (1..=3).map(NodeId));
        let engine = Engine::start(config, log, recovered, KvStore::new(), Instant::ZERO, move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
        One { engine, durable, now: Instant::ZERO, out: Outbox::default(), done: Vec::new(), changes: Vec::new() }
    }

    /// Flushes, then waits until every write handed to the disk is durable.
    fn settle(&mut self) {
        loop {
            let flushed = self.engine.flush(self.now, &mut self.out).unwrap();
            self.done.extend(flushed.done);
            self.changes.extend(flushed.changes);
            let s = self.engine.status();
            if s.durable_index >= s.last_log_index {
                // Hard-state writes have no index: give the disk a moment for them too.
                match self.durable.recv_timeout(Duration::from_millis(50)) {
                    Ok(r) => self.engine.handle_durable(self.now, r),
                    Err(_) => return,
                }
            } else {
                let r = self.durable.recv().unwrap();
                self.engine.handle_durable(self.now, r);
            }
        }
    }

    fn from(&mut self, peer: u64, term: u64, body: Body) {
        self.engine.handle_message(self.now, NodeId(peer), Message { term: Term(term), body });
        self.settle();
    }

    /// Times out into an election and wins it with `voter`'s vote.
    fn win_election(&mut self, voter: u64) -> Term {
        self.now = self.engine.deadline().unwrap();
        self.engine.handle_timer(self.now);
        self.settle();
        // Pre-vote for the next term, then the vote in it.
        let proposed = self.engine.status().term.0 + 1;
        self.from(voter, proposed, Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: true }));
        let term = self.engine.status().term;
        assert_eq!(term.0, proposed);
        self.from(voter, term.0, Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: false }));
        assert_eq!(self.engine.status().role, Role::Leader);
        term
    }

    fn propose(&mut self, seq: u64, waiter: &'static str) -> LogIndex {
        let cmd = encode_command(&KvCommand { client: 9, seq, op: KvOp::put(waiter, "v") });
        self.engine.propose(self.now, cmd, waiter).unwrap();
        let index = self.engine.status().last_log_index;
        self.settle();
        index
    }
}

fn outcome<'a>(done: &'a [KvDone], waiter: &str) -> Option<&'a Outcome<<KvStore as raft_host::StateMachine>::Output>> {
    done.iter().find(|d| d.waiter == waiter).map(|d| &d.outcome)
}

/// Issue 14, finding 6: a proposal whose entry another leader replaced, at
/// an index where this node later proposes again, must end as superseded
/// (before the fix the driver's map dropped its ticket: no answer at all).
#[test]
fn a_replaced_proposal_at_a_reused_index_completes_as_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let mut one = One::start(dir.path());

    // Term 1: leader with its no-op at 1, then "old-2" at 2 and "old-3" at 3.
    let t1 = one.win_election(2);
    assert_eq!(one.propose(1, "old-2"), LogIndex(2));
    assert_eq!(one.propose(2, "old-3"), LogIndex(3));

    // Node 2 leads a later term whose log differs from index 1 on: this
    // node's entries 1..=3 are cut and replaced by node 2's entry at 1.
    let t2 = Term(t1.0 + 1);
    let theirs = Entry { term: t2, index: LogIndex(1), payload: Payload::Noop };
    one.from(
        2,
        t2.0,
        Body::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![theirs],
            leader_commit: LogIndex(0),
            round: 0,
        }),
    );
    assert_eq!(one.engine.status().last_log_index, LogIndex(1));
    assert!(one.done.is_empty(), "nothing is decided yet: {:?}", one.done);

    // Leader again: its no-op lands at 2, "new-3" at 3 (the index of "old-3").
    let t3 = one.win_election(3);
    assert_eq!(one.engine.status().last_log_index, LogIndex(2));
    assert_eq!(one.propose(3, "new-3"), LogIndex(3));

    // Node 3 acknowledges everything: the log commits and applies.
    let round = one
        .out
        .0
        .iter()
        .rev()
        .find_map(|(to, m)| match &m.body {
            Body::AppendEntries(a) if *to == NodeId(3) => Some(a.round),
            _ => None,
        })
        .expect("an AppendEntries to node 3");
    let success = AppendResult::Success { match_index: LogIndex(3) };
    one.from(3, t3.0, Body::AppendEntriesResponse(AppendResponse { round, result: success }));
    assert_eq!(one.engine.status().last_applied, LogIndex(3));
    assert_eq!(outcome(&one.done, "old-2"), Some(&Outcome::Superseded));
    assert_eq!(outcome(&one.done, "old-3"), Some(&Outcome::Superseded), "the replaced ticket got no answer");
    assert_eq!(outcome(&one.done, "new-3"), Some(&Outcome::Applied(Some(Ok(KvOutput::Put)))));
    assert_eq!(one.done.len(), 3);
    assert_eq!(one.engine.waiting().count(), 0);
}

#[test]
fn refusals_return_the_waiter_and_stop_hands_back_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut one = One::start(dir.path());
    let (why, waiter) = one.engine.propose(one.now, vec![1u8], "early").unwrap_err();
    assert_eq!((why, waiter), (Refused::NotLeader { leader_hint: None }, "early"));
    one.win_election(2);
    one.propose(1, "pending");
    let (left, disk) = one.engine.stop();
    assert_eq!(left, vec!["pending"]);
    disk.unwrap().shutdown();
}

/// Acknowledges this leader's whole log from `peer` (in `term`).
fn ack_all(one: &mut One, peer: u64, term: Term) {
    let success = AppendResult::Success { match_index: one.engine.status().last_log_index };
    one.from(peer, term.0, Body::AppendEntriesResponse(AppendResponse { round: 0, result: success }));
}

fn change(one: &mut One, change: raft_core::MembershipChange, waiter: &'static str) {
    one.engine.change_membership(one.now, change, waiter).unwrap();
    one.settle();
}

fn set(ids: &[u64]) -> std::collections::BTreeSet<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

/// A membership change answers once it has committed (a voter change: once
/// the final configuration after the joint one has), and a restart recovers
/// the configuration (with the new member's address) from the log, not from
/// `Config::members`.
#[test]
fn a_membership_change_completes_when_committed_and_survives_a_restart() {
    use raft_core::MembershipChange;
    use raft_host::engine::ChangeFailed;
    let dir = tempfile::tempdir().unwrap();
    let mut one = One::start(dir.path());
    let term = one.win_election(2);
    ack_all(&mut one, 2, term);

    // Refused at once, typed.
    let r = one.engine.change_membership(one.now, MembershipChange::Promote { id: NodeId(9) }, "bad");
    assert_eq!(r.err().map(|(e, _)| e), Some(ChangeFailed::Refused(raft_core::ChangeError::UnknownNode(NodeId(9)))));

    let addr = raft_core::Bytes::from("127.0.0.1:7004");
    change(&mut one, MembershipChange::AddLearner { id: NodeId(4), addr: addr.clone() }, "add4");
    assert!(one.changes.is_empty());
    ack_all(&mut one, 2, term);
    let got = std::mem::take(&mut one.changes);
    assert_eq!(got.len(), 1, "the learner's addition did not complete once committed");
    let m = got[0].result.as_ref().unwrap();
    assert_eq!((m.learners.clone(), m.addrs.get(&NodeId(4))), (set(&[4]), Some(&addr)));

    change(&mut one, MembershipChange::Remove { id: NodeId(3) }, "rm3");
    // The joint configuration commits: the final one is appended, not yet committed.
    ack_all(&mut one, 2, term);
    ack_all(&mut one, 3, term);
    assert!(one.changes.is_empty(), "answered before the final configuration committed");
    assert!(!one.engine.membership().is_joint());
    ack_all(&mut one, 2, term);
    let done = std::mem::take(&mut one.changes);
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].waiter, done[0].result.as_ref().unwrap().voters.clone()), ("rm3", set(&[1, 2])));

    let (_, disk) = one.engine.stop();
    disk.unwrap().shutdown();
    drop(one);
    let again = One::start(dir.path());
    let m = again.engine.membership();
    assert_eq!((m.voters.clone(), m.learners.clone(), m.is_joint()), (set(&[1, 2]), set(&[4]), false));
    assert_eq!(m.addrs.get(&NodeId(4)), Some(&addr));
}
