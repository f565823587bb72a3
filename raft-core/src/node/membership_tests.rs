//! Membership changes: bootstrap into the log, learners, joint consensus,
//! promotion only when caught up, removal of the leader, truncation and
//! snapshots carrying the configuration, joining nodes.

use super::test_harness::{Harness, ids};
use crate::membership::{ChangeError, Membership, MembershipChange};
use crate::message::*;
use crate::types::{Bytes, LogIndex, NodeId, Payload, Term};
use crate::{Config, Event, Restored, Role};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// A little network of harnesses: every write durable at once, every
/// message delivered, except to nodes in `cut`.
struct Net {
    nodes: Vec<Harness>,
    cut: BTreeSet<u64>,
}

impl Net {
    /// Nodes 1..=n, of which the first `voters` bootstrap the cluster; the
    /// others start empty (joining).
    fn new(n: u64, voters: u64) -> Net {
        let nodes = (1..=n)
            .map(|id| {
                let members = if id <= voters { ids(voters) } else { Vec::new() };
                Harness::exact(Config::new(NodeId(id), members), Restored::fresh())
            })
            .collect();
        Net { nodes, cut: BTreeSet::new() }
    }

    fn node(&mut self, id: u64) -> &mut Harness {
        &mut self.nodes[id as usize - 1]
    }

    /// Delivers until quiet.
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            let mut mail = Vec::new();
            for h in &mut self.nodes {
                h.persist();
                for o in h.take_sent() {
                    mail.push((h.node.id(), o));
                }
            }
            for (from, o) in mail {
                if self.cut.contains(&from.0) || self.cut.contains(&o.to.0) {
                    continue;
                }
                let Some(h) = self.nodes.get_mut(o.to.0 as usize - 1) else { continue };
                h.node.handle_message(h.now, from, o.message);
                h.drain();
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    /// Moves every node's clock past an election timeout (leases and
    /// stickiness lapse), times node `id` out, and settles: it wins if it can.
    fn campaign(&mut self, id: u64) {
        self.advance(crate::Duration::from_millis(600));
        let h = self.node(id);
        h.node.handle_timeout(h.now);
        h.drain();
        self.settle();
    }

    /// Every node's clock moves to the latest one plus `d` (no timer fires).
    fn advance(&mut self, d: crate::Duration) {
        let now = self.nodes.iter().map(|h| h.now).max().unwrap_or_default() + d;
        for h in &mut self.nodes {
            h.now = now;
        }
    }

    /// A heartbeat from the leader, to every node's clock, then settles.
    fn heartbeat(&mut self, leader: u64) {
        for _ in 0..3 {
            self.advance(crate::Duration::from_millis(110));
            let h = self.node(leader);
            h.node.handle_timeout(h.now);
            h.drain();
            self.settle();
        }
    }

    fn leader(&self) -> Option<u64> {
        self.nodes.iter().find(|h| h.node.role() == Role::Leader).map(|h| h.node.id().0)
    }

    fn change(&mut self, leader: u64, change: MembershipChange) -> Result<LogIndex, ChangeError> {
        let h = self.node(leader);
        let r = h.node.change_membership(h.now, change);
        h.drain();
        self.settle();
        r
    }
}

fn set(v: &[u64]) -> BTreeSet<NodeId> {
    v.iter().copied().map(NodeId).collect()
}

fn add_learner(id: u64) -> MembershipChange {
    MembershipChange::AddLearner { id: NodeId(id), addr: Bytes::from(alloc::format!("h{id}:7000").as_str()) }
}

#[test]
fn the_first_leader_logs_its_bootstrap_configuration() {
    let mut net = Net::new(3, 3);
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    let first = net.node(2).node.log_entry(LogIndex(1)).cloned().unwrap();
    assert_eq!(first.payload, Payload::Membership(Membership::with_voters(ids(3)).into()));
    // A restart with another member list keeps the logged configuration.
    let entries = (1..=net.node(2).node.last_log_index().0)
        .map(|i| net.node(2).node.log_entry(LogIndex(i)).cloned().unwrap())
        .collect();
    let hs = crate::HardState { term: net.node(2).node.term(), voted_for: None, catching_up: false };
    let restarted = Harness::exact(Config::new(NodeId(2), ids(5)), Restored::new(hs, entries));
    assert_eq!(restarted.node.membership().voters, set(&[1, 2, 3]));
}

#[test]
fn a_learner_receives_the_log_but_never_counts_toward_commitment() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.change(1, add_learner(4)).unwrap();
    assert_eq!(net.node(4).node.membership().learners, set(&[4]));
    assert_eq!(net.node(4).node.last_log_index(), net.node(1).node.last_log_index());
    // With two voters cut off, the leader and the learner are no majority.
    net.cut.extend([2, 3]);
    let h = net.node(1);
    let index = h.node.propose(h.now, "x").unwrap();
    h.drain();
    net.settle();
    assert_eq!(net.node(4).node.last_log_index(), index, "the learner did not receive the entry");
    assert!(net.node(1).node.commit_index() < index, "a learner's copy counted toward commitment");
    // A learner never campaigns.
    for _ in 0..5 {
        net.node(4).fire_timeout();
        assert_eq!(net.node(4).node.role(), Role::Follower);
        assert!(net.node(4).take_sent().is_empty());
    }
}

#[test]
fn promotion_goes_through_a_joint_configuration_and_leaves_it_automatically() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.cut.insert(4);
    net.change(1, add_learner(4)).unwrap();
    for _ in 0..3 {
        let h = net.node(1);
        h.node.propose(h.now, "y").unwrap();
        h.drain();
        net.settle();
    }
    let mut lagging = Config::new(NodeId(1), ids(3));
    lagging.max_learner_lag = 1;
    net.node(1).node.config = lagging;
    let refused = net.change(1, MembershipChange::Promote { id: NodeId(4) });
    assert!(matches!(refused, Err(ChangeError::LearnerBehind { .. })), "{refused:?}");
    net.cut.clear();
    net.heartbeat(1); // heartbeats let the learner catch up
    let joint_at = net.change(1, MembershipChange::Promote { id: NodeId(4) }).unwrap();
    let joint = net.node(2).node.log_entry(joint_at).cloned().unwrap();
    let Payload::Membership(j) = joint.payload else { panic!("not a configuration: {joint:?}") };
    assert_eq!((&j.voters, &j.outgoing), (&set(&[1, 2, 3, 4]), &set(&[1, 2, 3])));
    // After settling, the joint configuration was committed and left.
    for id in 1..=4 {
        let m = net.node(id).node.membership().clone();
        assert_eq!((m.voters, m.outgoing.is_empty(), m.learners.is_empty()), (set(&[1, 2, 3, 4]), true, true), "n{id}");
    }
    assert!(net.node(1).node.commit_index() > joint_at);
}

#[test]
fn a_joint_configuration_needs_both_majorities_to_commit_and_to_elect() {
    let mut net = Net::new(5, 3);
    net.campaign(1);
    net.change(1, add_learner(4)).unwrap();
    net.change(1, add_learner(5)).unwrap();
    // Old {1,2,3}, new {1,2,3,4}: with 2 and 3 cut off, 1 and 4 are a
    // majority of neither old (1 of 3)... commit must stall.
    net.cut.extend([2, 3]);
    let joint_at = {
        let h = net.node(1);
        let r = h.node.change_membership(h.now, MembershipChange::Promote { id: NodeId(4) });
        h.drain();
        r.unwrap()
    };
    net.settle();
    assert!(net.node(1).node.commit_index() < joint_at, "committed without a majority of the old voters");
    net.cut.clear();
    net.heartbeat(1);
    assert!(net.node(1).node.commit_index() > joint_at);
}

#[test]
fn one_change_at_a_time_and_typed_refusals() {
    let mut net = Net::new(4, 3);
    assert_eq!(net.change(2, add_learner(4)), Err(ChangeError::NotLeader { leader_hint: None }));
    net.campaign(1);
    net.cut.extend([2, 3]); // nothing commits
    let h = net.node(1);
    h.node.change_membership(h.now, add_learner(4)).unwrap();
    assert_eq!(h.node.change_membership(h.now, add_learner(5)), Err(ChangeError::ChangeInProgress));
    net.cut.clear();
    net.heartbeat(1);
    assert_eq!(net.change(1, add_learner(4)), Err(ChangeError::AlreadyMember(NodeId(4))));
    assert_eq!(net.change(1, MembershipChange::Promote { id: NodeId(2) }), Err(ChangeError::UnknownNode(NodeId(2))));
    assert_eq!(net.change(1, MembershipChange::Remove { id: NodeId(9) }), Err(ChangeError::UnknownNode(NodeId(9))));
    net.change(1, MembershipChange::Remove { id: NodeId(4) }).unwrap();
    assert!(net.node(1).node.membership().learners.is_empty());
}

#[test]
fn a_removed_leader_steps_down_once_the_change_commits_and_never_campaigns() {
    let mut net = Net::new(3, 3);
    net.campaign(1);
    net.change(1, MembershipChange::Remove { id: NodeId(1) }).unwrap();
    assert_eq!(net.node(1).node.role(), Role::Follower, "the removed leader still leads");
    assert_eq!(net.node(2).node.membership().voters, set(&[2, 3]));
    for _ in 0..5 {
        net.node(1).fire_timeout();
        assert!(net.node(1).take_sent().is_empty(), "a removed node campaigned");
    }
    net.campaign(2);
    assert_eq!(net.leader(), Some(2));
    let h = net.node(2);
    let last = h.node.last_log_index();
    assert_eq!(h.node.term(), Term(2));
    let i = h.node.propose(h.now, "z").unwrap();
    h.drain();
    net.settle();
    assert_eq!(net.node(2).node.commit_index(), i);
    assert!(i > last);
    let removed_last_voter = net.change(2, MembershipChange::Remove { id: NodeId(3) });
    assert!(removed_last_voter.is_ok());
    assert_eq!(net.change(2, MembershipChange::Remove { id: NodeId(2) }), Err(ChangeError::LastVoter(NodeId(2))));
}

#[test]
fn a_truncated_configuration_entry_brings_back_the_one_before() {
    let mut h = Harness::exact(Config::new(NodeId(2), ids(3)), Restored::fresh());
    let bootstrap = Membership::with_voters(ids(3));
    let mut with_learner = bootstrap.clone();
    with_learner.learners.insert(NodeId(4));
    let entry = |index, term, m: &Membership| crate::Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Membership(m.clone().into()),
    };
    let append = |prev: (u64, u64), entries, commit| {
        Body::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(commit),
            round: 0,
        })
    };
    h.recv(1, 1, append((0, 0), alloc::vec![entry(1, 1, &bootstrap), entry(2, 1, &with_learner)], 1));
    assert_eq!(h.node.membership().learners, set(&[4]), "not in effect once appended");
    // A leader of a later term replaces the uncommitted entry 2.
    let noop = crate::Entry { term: Term(5), index: LogIndex(2), payload: Payload::Noop };
    h.recv(3, 5, append((1, 1), alloc::vec![noop], 1));
    assert_eq!(h.node.log_term(LogIndex(2)), Some(Term(5)));
    assert!(h.node.membership().learners.is_empty(), "the truncated configuration is still in effect");
}

#[test]
fn snapshots_carry_the_configuration() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.change(1, add_learner(4)).unwrap();
    let h = net.node(1);
    let applied = h.node.last_applied();
    h.node.compact(h.now, applied, "state").unwrap();
    h.drain();
    let snap = h.node.snapshot().cloned().unwrap();
    assert_eq!(snap.membership.learners, set(&[4]));
    // A node restarted from that snapshot alone knows the configuration.
    let r = Harness::exact(Config::new(NodeId(1), ids(3)), Restored::fresh().with_snapshot(snap));
    assert_eq!(r.node.membership().learners, set(&[4]));
}

#[test]
fn a_joining_node_waits_then_learns_everything_from_the_leader() {
    let mut net = Net::new(4, 3);
    for _ in 0..5 {
        net.node(4).fire_timeout();
        assert!(net.node(4).take_sent().is_empty(), "a joining node campaigned");
    }
    net.campaign(1);
    net.change(1, add_learner(4)).unwrap();
    let m = net.node(4).node.membership().clone();
    assert_eq!((m.voters, m.learners), (set(&[1, 2, 3]), set(&[4])));
    assert_eq!(m.addrs.get(&NodeId(4)).map(|a| a.as_slice()), Some(&b"h4:7000"[..]));
    net.change(1, MembershipChange::Promote { id: NodeId(4) }).unwrap();
    // Now a voter: with 1 gone, 4 can be elected by 2, 3 and itself.
    net.cut.insert(1);
    net.campaign(4);
    assert_eq!(net.node(4).node.role(), Role::Leader);
}

/// Review finding 7 (liveness). Voters refuse (pre-)votes to candidates that
/// are not voters in their own, possibly stale, configuration. The
/// dissertation (§4.1) has servers vote without consulting their
/// configuration, because a lagging voter may be needed to elect a new
/// voter it does not know yet. Here the current configuration {2,3,4} has
/// a live majority {3,4} but can never elect a leader again.
#[test]
fn a_lagging_voter_votes_for_a_voter_it_does_not_know_yet() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.cut.insert(3); // node 3 lags from now on
    net.change(1, add_learner(4)).unwrap();
    net.heartbeat(1);
    net.change(1, MembershipChange::Promote { id: NodeId(4) }).unwrap();
    net.heartbeat(1);
    assert_eq!(net.node(1).node.membership().voters, set(&[1, 2, 3, 4]));
    net.change(1, MembershipChange::Remove { id: NodeId(1) }).unwrap();
    net.heartbeat(1);
    assert_eq!(net.node(4).node.membership().voters, set(&[2, 3, 4]));
    assert!(!net.node(4).node.membership().is_joint());
    assert_eq!(net.node(1).node.role(), Role::Follower);
    // Node 2 fails for good; node 3 comes back. {3, 4} is a majority of {2, 3, 4}.
    net.cut.clear();
    net.cut.extend([1, 2]);
    for _ in 0..5 {
        net.campaign(4);
        if net.leader().is_some() {
            break;
        }
        net.campaign(3);
        if net.leader().is_some() {
            break;
        }
    }
    assert_eq!(net.leader(), Some(4), "a live majority of the configuration never elects a leader");
}

/// A leader that removes itself commits the joint configuration, appends the
/// final one (without itself), and loses its leadership before any other
/// node stored that entry. The final configuration is not committed, so the
/// node is not removed yet: the joint configuration still needs its vote,
/// and its log, longer than the others', is the only one that can win an
/// election. It must still campaign, or the cluster never has a leader
/// again (found by the simulator's membership schedules).
#[test]
fn a_leader_whose_removal_is_not_committed_yet_still_campaigns() {
    let mut net = Net::new(2, 2);
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    // The joint configuration {2} / {1, 2} reaches node 2 and commits ...
    let joint_at = {
        let h = net.node(1);
        let r = h.node.change_membership(h.now, MembershipChange::Remove { id: NodeId(1) });
        h.drain();
        r.unwrap()
    };
    let deliver = |net: &mut Net, from: u64, to: u64| {
        net.node(from).persist();
        for o in net.node(from).take_sent() {
            if o.to == NodeId(to) {
                let h = net.node(to);
                h.node.handle_message(h.now, NodeId(from), o.message);
                h.drain();
            }
        }
    };
    deliver(&mut net, 1, 2);
    deliver(&mut net, 2, 1);
    net.node(1).persist();
    assert!(net.node(1).node.commit_index() >= joint_at);
    let final_config = net.node(1).node.membership().clone();
    assert_eq!((final_config.is_joint(), final_config.voters), (false, set(&[2])));
    // ... but node 2 is cut off before the final configuration reaches it,
    // and check-quorum deposes node 1.
    net.cut.insert(2);
    net.settle();
    for _ in 0..50 {
        if net.node(1).node.role() != Role::Leader {
            break;
        }
        net.node(1).fire_timeout();
        net.settle();
    }
    assert_eq!(net.node(1).node.role(), Role::Follower);
    net.cut.clear();
    // Node 2 cannot win (node 1's log is longer); node 1 campaigns, wins
    // with node 2's vote, commits the final configuration and steps down;
    // then node 2 leads alone.
    net.campaign(2);
    assert_eq!(net.leader(), None, "node 2 won against a longer log");
    net.campaign(1);
    assert_eq!(net.node(1).node.role(), Role::Follower, "node 1 still leads after its removal committed");
    assert!(net.node(1).node.commit_index() > joint_at, "the final configuration was not committed");
    assert_eq!(net.node(2).node.membership().voters, set(&[2]));
    net.campaign(2);
    assert_eq!(net.leader(), Some(2));
    assert_eq!(net.node(2).node.membership().voters, set(&[2]));
    for _ in 0..5 {
        net.node(1).fire_timeout();
        assert!(net.node(1).take_sent().is_empty(), "a removed node campaigned");
    }
}

/// A voter whose newest configuration removed a node refuses it its vote
/// (and pre-vote), however up to date its log: the removed node may not
/// know its removal committed, but the majority that committed it does.
/// A node it has never heard of still gets its vote.
#[test]
fn a_voter_refuses_a_node_its_configuration_removed() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.change(1, MembershipChange::Remove { id: NodeId(3) }).unwrap();
    assert_eq!(net.node(2).node.membership().voters, set(&[1, 2]));
    let (term, last) = (net.node(2).node.term().0, net.node(2).node.last_log_index().0);
    net.advance(crate::Duration::from_millis(600)); // no leader stickiness
    for pre_vote in [true, false] {
        let h = net.node(2);
        let body = Body::RequestVote(RequestVote {
            last_log_index: LogIndex(last + 5),
            last_log_term: Term(term),
            pre_vote,
            transfer: false,
        });
        h.recv(3, term + 1, body);
        let answer = h.take_sent().into_iter().find_map(|o| match o.message.body {
            Body::RequestVoteResponse(r) if o.to == NodeId(3) => Some(r.granted),
            _ => None,
        });
        h.persist();
        let answer = answer.or_else(|| {
            h.take_sent().into_iter().find_map(|o| match o.message.body {
                Body::RequestVoteResponse(r) if o.to == NodeId(3) => Some(r.granted),
                _ => None,
            })
        });
        assert_eq!(answer, Some(false), "pre-vote {pre_vote}: node 2 voted for the node it removed");
    }
    // Node 4 was never a member: not refused for that.
    let h = net.node(2);
    let body = Body::RequestVote(RequestVote {
        last_log_index: LogIndex(last + 5),
        last_log_term: Term(term),
        pre_vote: true,
        transfer: false,
    });
    h.recv(4, term + 2, body);
    let answer = h.take_sent().into_iter().find_map(|o| match o.message.body {
        Body::RequestVoteResponse(r) if o.to == NodeId(4) => Some(r.granted),
        _ => None,
    });
    assert_eq!(answer, Some(true));
}

#[test]
fn the_bootstrap_entry_carries_the_member_addresses_to_a_joining_node() {
    let mut net = Net::new(4, 3);
    for id in 1..=3u64 {
        let mut config = Config::new(NodeId(id), ids(3));
        config.member_addrs = (1..=3).map(|m| (NodeId(m), Bytes::from(alloc::format!("h{m}:7000").as_str()))).collect();
        net.nodes[id as usize - 1] = Harness::exact(config, Restored::fresh());
    }
    net.campaign(1);
    net.change(1, add_learner(4)).unwrap();
    net.heartbeat(1);
    let m = net.node(4).node.membership().clone();
    assert_eq!(m.learners, set(&[4]));
    for id in 1..=4u64 {
        let want = Bytes::from(alloc::format!("h{id}:7000").as_str());
        assert_eq!(m.addrs.get(&NodeId(id)), Some(&want), "the joining node lacks node {id}'s address");
    }
    assert_eq!(net.node(4).node.membership_index(), net.node(1).node.membership_index());
}

#[test]
fn a_removed_follower_receives_the_configuration_without_it_and_never_campaigns() {
    let mut net = Net::new(3, 3);
    net.campaign(1);
    net.change(1, MembershipChange::Remove { id: NodeId(3) }).unwrap();
    net.heartbeat(1);
    assert_eq!(net.node(1).node.membership().voters, set(&[1, 2]));
    assert!(!net.node(1).node.membership().is_joint());
    // Without the leader's retiring list, node 3 would stay in the joint
    // configuration (it is a voter there) and keep campaigning.
    let m = net.node(3).node.membership().clone();
    assert!(!m.contains(NodeId(3)), "node 3 never learned it was removed: {m:?}");
    // Node 3 cannot know that its removal committed (the leader stops
    // sending once it holds the entry), so it may ask for pre-votes: the
    // voters refuse them, and nobody's term moves.
    let terms = |net: &mut Net| (1..=3).map(|i| net.node(i).node.term()).collect::<Vec<_>>();
    let before = terms(&mut net);
    for _ in 0..5 {
        net.advance(crate::Duration::from_millis(700));
        net.node(3).fire_timeout();
        let sent = net.node(3).take_sent();
        assert!(
            sent.iter().all(|o| matches!(o.message.body, Body::RequestVote(RequestVote { pre_vote: true, .. }))),
            "a removed node campaigned for real: {sent:?}"
        );
        for o in sent {
            let h = net.node(o.to.0);
            h.node.handle_message(h.now, NodeId(3), o.message);
            h.drain();
        }
        net.settle();
        assert_eq!(terms(&mut net), before, "a removed node disturbed the cluster");
        assert_eq!(net.leader(), Some(1));
    }
    // That the leader then sends it nothing more is checked by
    // `a_removed_follower_that_holds_its_removal_gets_neither_heartbeats_nor_entries`
    // (here the leader's clock has moved past check-quorum without a tick).
}

#[test]
fn a_removed_follower_that_holds_its_removal_gets_neither_heartbeats_nor_entries() {
    let mut net = Net::new(3, 3);
    net.campaign(1);
    net.change(1, MembershipChange::Remove { id: NodeId(3) }).unwrap();
    net.heartbeat(1);
    assert_eq!(net.node(1).node.membership().voters, set(&[1, 2]));
    let removal = net.node(1).node.membership_index();
    assert!(net.node(3).node.last_log_index() >= removal, "node 3 never received its removal");
    assert!(!net.node(3).node.membership().contains(NodeId(3)));
    // Its acknowledgement of that entry retired it: no progress is kept.
    assert_eq!(net.node(1).node.match_index(NodeId(3)), None);
    assert_eq!(net.node(1).node.match_index(NodeId(2)), Some(removal));
    // A heartbeat and a proposal go to node 2 only.
    net.advance(crate::Duration::from_millis(110));
    let h = net.node(1);
    h.node.handle_timeout(h.now);
    let index = h.node.propose(h.now, "after the removal").unwrap();
    h.drain();
    assert_eq!(h.node.role(), Role::Leader);
    let sent = h.take_sent();
    let to = |id: u64| sent.iter().filter(|o| o.to == NodeId(id)).count();
    assert!(to(2) >= 1, "node 2 got nothing: {sent:?}");
    assert_eq!(to(3), 0, "the leader still sends to node 3: {sent:?}");
    // Node 2's answers move nothing towards node 3 either.
    for o in sent {
        let h2 = net.node(2);
        h2.node.handle_message(h2.now, NodeId(1), o.message);
        h2.persist();
    }
    let answers = net.node(2).take_sent();
    let h = net.node(1);
    for o in answers {
        h.node.handle_message(h.now, NodeId(2), o.message);
    }
    h.persist();
    assert_eq!(h.node.commit_index(), index);
    assert!(h.take_sent().iter().all(|o| o.to != NodeId(3)), "the leader still replicates to node 3");
}

/// `nodes` nodes (the first three voters) led by node 1, which removed
/// node 3 while it was cut off: the removal is committed without it.
fn node_3_removed_while_cut_off(nodes: u64) -> Net {
    let mut net = Net::new(nodes, 3);
    net.campaign(1);
    net.cut.insert(3);
    net.change(1, MembershipChange::Remove { id: NodeId(3) }).unwrap();
    net.heartbeat(1);
    assert_eq!(net.node(1).node.membership().voters, set(&[1, 2]));
    net
}

#[test]
fn a_dead_removed_member_is_given_up_at_the_next_change() {
    let mut net = node_3_removed_while_cut_off(4);
    let beat = |net: &mut Net| {
        net.advance(crate::Duration::from_millis(110));
        let h = net.node(1);
        h.node.handle_timeout(h.now);
        h.drain();
        let sent = h.take_sent();
        net.settle();
        sent.iter().any(|o| o.to == NodeId(3))
    };
    assert!(beat(&mut net), "the leader stopped telling node 3 before it held its removal");
    net.change(1, add_learner(4)).unwrap();
    assert!(!beat(&mut net), "node 3 still gets messages after the next change");
}

#[test]
fn a_learner_that_never_answered_is_not_promoted_however_short_the_log() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.cut.insert(4); // added, but not reachable yet
    net.change(1, add_learner(4)).unwrap();
    let r = net.change(1, MembershipChange::Promote { id: NodeId(4) });
    assert!(matches!(r, Err(ChangeError::LearnerBehind { matched: LogIndex(0), .. })), "{r:?}");
    net.cut.clear();
    net.heartbeat(1);
    net.change(1, MembershipChange::Promote { id: NodeId(4) }).unwrap();
}

#[test]
fn a_proposal_reaches_every_member_when_a_removed_one_answered_in_the_same_step() {
    // Found by cargo-mutants: marking followers for sending was skipped when
    // the set of followers to send to was as large as the member list, even
    // if it held a removed member the leader still tells about its removal.
    let mut net = node_3_removed_while_cut_off(3);
    let h = net.node(1);
    h.take_sent();
    // One step, no poll in between: a late answer of node 3, then a proposal.
    let answer = AppendResponse { round: 0, result: AppendResult::Success { match_index: LogIndex(0) } };
    let term = h.node.term();
    h.node.handle_message(h.now, NodeId(3), Message { term, body: Body::AppendEntriesResponse(answer) });
    let index = h.node.propose(h.now, "x").unwrap();
    h.drain();
    let sent = h.take_sent();
    let carries = |o: &crate::Outgoing| {
        o.to == NodeId(2)
            && matches!(&o.message.body, Body::AppendEntries(a) if a.entries.iter().any(|e| e.index == index))
    };
    assert!(sent.iter().any(carries), "node 2 did not get entry {index:?}: {sent:?}");
}

#[test]
fn a_voter_votes_for_a_voter_its_newest_configuration_added_before_it_commits() {
    // The configuration in force is the newest in the log, committed or not
    // (dissertation §4.1): a voter it adds may win votes at once, with a log
    // no newer than the voter's.
    let four = Membership::with_voters(ids(4));
    let entry = crate::Entry { term: Term(1), index: LogIndex(1), payload: Payload::Membership(four.clone().into()) };
    let hs = crate::HardState { term: Term(1), voted_for: None, catching_up: false };
    let mut h = Harness::with(Config::new(NodeId(1), ids(3)), Restored::new(hs, alloc::vec![entry]));
    assert_eq!(h.node.membership(), &four);
    assert_eq!(h.node.commit_index(), LogIndex(0));
    h.recv(4, 2, super::test_harness::vote_req(1, 1));
    h.persist();
    assert_eq!(super::test_harness::granted(&h.sent, 4), Some(true));
}

#[test]
fn compacting_below_a_configuration_entry_keeps_that_configuration() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    let at = net.change(1, add_learner(4)).unwrap();
    net.heartbeat(1);
    let h = net.node(1);
    assert!(h.node.last_applied() >= at);
    h.node.compact(h.now, LogIndex(at.0 - 1), "state").unwrap();
    assert_eq!(h.node.membership().learners, set(&[4]));
    assert_eq!(h.node.membership_index(), at);
}

#[test]
fn a_learner_exactly_max_learner_lag_behind_may_be_promoted() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.change(1, add_learner(4)).unwrap();
    net.heartbeat(1);
    net.cut.insert(4);
    for _ in 0..3 {
        let h = net.node(1);
        h.node.propose(h.now, "y").unwrap();
        h.drain();
        net.settle();
    }
    let h = net.node(1);
    let (matched, last) = (h.node.match_index(NodeId(4)).unwrap(), h.node.last_log_index());
    assert_eq!(last.0 - matched.0, 3);
    let mut config = Config::new(NodeId(1), ids(3));
    config.max_learner_lag = 2;
    h.node.config = config.clone();
    let refused = net.change(1, MembershipChange::Promote { id: NodeId(4) });
    assert!(matches!(refused, Err(ChangeError::LearnerBehind { .. })), "{refused:?}");
    config.max_learner_lag = 3;
    net.node(1).node.config = config;
    assert!(net.change(1, MembershipChange::Promote { id: NodeId(4) }).is_ok());
}

#[test]
fn a_snapshot_replaces_a_conflicting_configuration_entry_at_its_own_index() {
    // The follower's entry 2 (an old term's configuration) conflicts with
    // the leader's snapshot through 2: the snapshot's configuration counts.
    let (three, four, five) =
        (Membership::with_voters(ids(3)), Membership::with_voters(ids(4)), Membership::with_voters(ids(5)));
    let config = |index: u64, term: u64, m: &Membership| crate::Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Membership(m.clone().into()),
    };
    let snapshot = |term: u64, m: &Membership| {
        Body::InstallSnapshot(InstallSnapshot {
            index: LogIndex(2),
            snapshot_term: Term(term),
            offset: 0,
            total_len: 1,
            data: Bytes::from("s"),
            checksum: crc32fast::hash(b"s"),
            membership: m.clone().into(),
            round: 0,
        })
    };
    let hs = crate::HardState { term: Term(2), voted_for: None, catching_up: false };
    let log = alloc::vec![config(1, 1, &three), config(2, 1, &five)];
    let mut h = Harness::with(Config::new(NodeId(1), ids(3)), Restored::new(hs, log));
    assert_eq!(h.node.membership(), &five);
    h.recv(2, 2, snapshot(2, &four));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(2));
    assert_eq!(h.node.membership(), &four);
    // A matching snapshot keeps the configuration entries after it.
    let six = Membership::with_voters(ids(6));
    let log = alloc::vec![config(1, 1, &three), config(2, 1, &five), config(3, 1, &six)];
    let mut h = Harness::with(Config::new(NodeId(1), ids(3)), Restored::new(hs, log));
    h.recv(2, 2, snapshot(1, &five));
    h.persist();
    assert_eq!(h.node.snapshot_index(), LogIndex(2));
    assert_eq!((h.node.membership(), h.node.membership_index()), (&six, LogIndex(3)));
}

#[test]
fn membership_at_names_the_configuration_in_effect_at_an_index() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    let before = net.node(1).node.last_log_index();
    let added = net.change(1, add_learner(4)).unwrap();
    let h = net.node(1);
    assert_eq!(h.node.membership_at(before), Membership::with_voters(ids(3)));
    let at = h.node.membership_at(added);
    assert_eq!((at.voters, at.learners), (set(&[1, 2, 3]), set(&[4])));
    assert_eq!(h.node.membership_at(h.node.last_log_index()).learners, set(&[4]));
}

#[test]
fn a_candidate_asks_only_voters_for_their_votes() {
    let mut net = Net::new(4, 3);
    net.campaign(1);
    net.change(1, add_learner(4)).unwrap();
    assert_eq!(net.node(2).node.membership().learners, set(&[4]));
    net.advance(crate::Duration::from_millis(600));
    let h = net.node(2);
    h.node.handle_timeout(h.now);
    h.drain();
    let asked: BTreeSet<NodeId> =
        h.take_sent().into_iter().filter(|o| matches!(o.message.body, Body::RequestVote(_))).map(|o| o.to).collect();
    assert_eq!(asked, set(&[1, 3]));
}

#[test]
fn a_later_leader_starts_its_term_with_a_noop_not_another_configuration() {
    let mut net = Net::new(3, 3);
    net.campaign(1);
    net.heartbeat(1);
    net.campaign(2);
    assert_eq!(net.leader(), Some(2));
    let h = net.node(2);
    let last = h.node.last_log_index();
    let first_of_term = h.node.log_entry(last).cloned().unwrap();
    assert_eq!((first_of_term.term, first_of_term.payload), (h.node.term(), Payload::Noop));
    let configs = (1..=last.0)
        .filter(|&i| matches!(h.node.log_entry(LogIndex(i)).unwrap().payload, Payload::Membership(_)))
        .count();
    assert_eq!(configs, 1);
}

#[test]
fn a_configuration_change_is_reported_once_and_only_when_it_happens() {
    let changed = |h: &mut Harness| {
        let n = h.events.iter().filter(|e| matches!(e, Event::MembershipChanged { .. })).count();
        h.events.clear();
        n
    };
    let mut net = Net::new(4, 3);
    net.campaign(1);
    // The bootstrap configuration was reported at start (not as a change);
    // heartbeats and writes change nothing.
    let _ = changed(net.node(1));
    net.heartbeat(1);
    net.heartbeat(1);
    assert_eq!(changed(net.node(1)), 0);
    // Adding a learner takes effect when appended: reported once, with it.
    let h = net.node(1);
    h.node.change_membership(h.now, add_learner(4)).unwrap();
    h.drain();
    let reported: Vec<_> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MembershipChanged { membership } => Some(membership.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 1, "{:?}", h.events);
    assert!(reported[0].learners.contains(&NodeId(4)));
    h.events.clear();
    net.heartbeat(1);
    net.heartbeat(1);
    assert_eq!(changed(net.node(1)), 0, "reported again without a change");
    // A follower reports it when the entry reaches it.
    assert!(net.node(2).node.membership().learners.contains(&NodeId(4)));
}

#[test]
fn a_voter_refuses_a_node_that_only_its_logged_configurations_added_and_then_removed() {
    // The bootstrap configuration never listed node 4: the log added it as a
    // voter and a later entry removed it. It is refused all the same, even
    // with a newer log.
    let four = Membership::with_voters(ids(4));
    let three = Membership::with_voters(ids(3));
    let entry = |index: u64, m: &Membership| crate::Entry {
        term: Term(1),
        index: LogIndex(index),
        payload: Payload::Membership(m.clone().into()),
    };
    let hs = crate::HardState { term: Term(1), voted_for: None, catching_up: false };
    let log = alloc::vec![entry(1, &four), entry(2, &three)];
    let mut h = Harness::with(Config::new(NodeId(2), ids(3)), Restored::new(hs, log));
    assert_eq!(h.node.membership(), &three);
    h.recv(4, 2, super::test_harness::vote_req(9, 1));
    h.persist();
    assert_eq!(super::test_harness::granted(&h.sent, 4), Some(false), "node 2 voted for a node its log removed");
    // A node no configuration ever listed, with the same log, is not refused for that.
    h.recv(5, 3, super::test_harness::vote_req(9, 1));
    h.persist();
    assert_eq!(super::test_harness::granted(&h.sent, 5), Some(true));
}

#[test]
fn a_single_node_cluster_reports_no_change_when_it_logs_its_bootstrap_configuration() {
    // Its member list has no peers, so logging the same configuration still
    // marks the configuration as replaced: the report compares it with the
    // one reported at start.
    let mut h = Harness::exact(Config::new(NodeId(1), ids(1)), Restored::fresh());
    while h.node.role() != Role::Leader {
        h.fire_timeout();
        h.persist();
    }
    let first = h.node.log_entry(LogIndex(1)).map(|e| e.payload.clone());
    assert!(matches!(first, Some(Payload::Membership(_))), "{first:?}");
    h.node.propose(h.now, "x").unwrap();
    h.persist();
    assert_eq!(h.node.commit_index(), LogIndex(2));
    let changes = h.events.iter().filter(|e| matches!(e, Event::MembershipChanged { .. })).count();
    assert_eq!(changes, 0, "{:?}", h.events);
}

#[test]
fn a_removed_follower_is_not_retired_before_it_holds_its_removal() {
    let mut net = node_3_removed_while_cut_off(3);
    let removal = net.node(1).node.membership_index();
    assert!(net.node(3).node.last_log_index() < removal);
    // Node 3 is back, but only the heartbeats reach it (the entries are
    // lost): it acknowledges an index below its removal.
    net.node(1).take_sent();
    net.advance(crate::Duration::from_millis(110));
    let h = net.node(1);
    h.node.handle_timeout(h.now);
    h.drain();
    let beats: Vec<_> = h
        .take_sent()
        .into_iter()
        .filter(|o| o.to == NodeId(3) && matches!(&o.message.body, Body::AppendEntries(a) if a.entries.is_empty()))
        .collect();
    assert!(!beats.is_empty(), "no heartbeat to node 3");
    for o in beats {
        let h3 = net.node(3);
        h3.node.handle_message(h3.now, NodeId(1), o.message);
        h3.persist();
    }
    let answers = net.node(3).take_sent();
    assert!(!answers.is_empty());
    let h = net.node(1);
    for o in answers {
        h.node.handle_message(h.now, NodeId(3), o.message);
    }
    h.drain();
    assert!(net.node(1).node.match_index(NodeId(3)).is_some_and(|m| m < removal), "node 3 was retired too early");
    // So the leader goes on until node 3 holds its removal.
    net.cut.clear();
    net.heartbeat(1);
    assert!(net.node(3).node.last_log_index() >= removal, "node 3 never received its removal");
    assert!(!net.node(3).node.membership().contains(NodeId(3)));
    assert_eq!(net.node(1).node.match_index(NodeId(3)), None);
}
