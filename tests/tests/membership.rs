//! Membership changes in the simulator (issue 10), each scenario over many
//! seeds on a lossy, reordering network with disks slow enough that crashes
//! lose unsynced writes: learners and voters added and removed, a crashed
//! voter replaced by a new node with a new id and an empty disk, growth from
//! 3 to 5 voters and back, removal of the leader, changes on both sides of a
//! partition, and crashes in the middle of a joint configuration. Every step
//! is checked by the simulator's invariants (one leader per term across all
//! configurations, commit quorum of the configuration in force, removed
//! nodes never lead, ...); each scenario then checks where it ended. Key-value
//! client histories across changes must pass the linearizability checker.
//!
//! `RAFT_SEEDS=K` sets how many seeds each scenario runs; `RAFT_SEED=N`
//! reruns just seed `N`. A failure names its seed and how to rerun it.

mod common;

use common::{cmd, ms, secs};
use raft_core::{Duration, LogIndex, MembershipChange, NodeId, Payload, Role};
use raft_tests::sim::clients::{ClientConfig, Clients, Workload};
use raft_tests::sim::kv::KvSim;
use raft_tests::sim::{ChangeTask, Cluster, NetConfig, SimConfig, SimRng, for_each_seed, sim_addr};
use std::collections::BTreeSet;

/// Seeds per scenario unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 100;

/// How long a change may take, retries included.
const CHANGE_MAX: Duration = Duration::from_secs(30);

/// Loss, duplication and reordering (0-26 ms latency), and disks slow
/// enough (up to 8 ms a write) that a crash loses writes.
fn faulty(nodes: usize, seed: u64) -> Cluster {
    let mut cfg = SimConfig::new(nodes, seed);
    cfg.net = NetConfig { duplicate_rate: 0.02, drop_rate: 0.05, ..NetConfig::unreliable() };
    cfg.disk.latency_max = ms(8);
    Cluster::new(cfg)
}

fn ids(v: &[u64]) -> BTreeSet<NodeId> {
    v.iter().copied().map(NodeId).collect()
}

/// Proposes `k` commands at the current leader, if there is one.
fn write(c: &mut Cluster, rng: &mut SimRng, k: usize) {
    if let Some(l) = c.current_leader() {
        for _ in 0..k {
            let _ = c.propose(l, cmd(rng.below(1 << 31)));
        }
    }
}

/// Runs `d` in slices, writing a command at the leader every 50 ms.
fn run_writing(c: &mut Cluster, rng: &mut SimRng, d: Duration) {
    let end = c.now() + d;
    while c.now() < end {
        write(c, rng, 1);
        c.run_for(ms(50).min(end.saturating_since(c.now())));
    }
}

/// Makes `change` (retrying, see `Cluster::change_until_done`), failing the
/// run if it is not done in time.
fn change(c: &mut Cluster, change: MembershipChange) -> LogIndex {
    let what = format!("{change:?}");
    c.change_until_done(change, CHANGE_MAX).unwrap_or_else(|e| c.fail(format_args!("{what}: {e}")))
}

fn add_learner(c: &mut Cluster, id: NodeId) -> LogIndex {
    change(c, MembershipChange::AddLearner { id, addr: sim_addr(id) })
}

fn add_voter(c: &mut Cluster, id: NodeId) -> LogIndex {
    c.add_voter(id, CHANGE_MAX).unwrap_or_else(|e| c.fail(format_args!("adding voter n{id}: {e}")))
}

fn remove(c: &mut Cluster, id: NodeId) -> LogIndex {
    c.remove_member(id, CHANGE_MAX).unwrap_or_else(|e| c.fail(format_args!("removing n{id}: {e}")))
}

/// Crashes a random live node among `among`, lets the others run for
/// 100-600 ms (writing), and restarts it from its disk.
fn bounce(c: &mut Cluster, rng: &mut SimRng, among: &[NodeId]) {
    let live: Vec<NodeId> = among.iter().copied().filter(|&id| c.is_up(id)).collect();
    if live.is_empty() {
        return;
    }
    let id = live[rng.below(live.len() as u64) as usize];
    c.crash(id);
    let pause = ms(100 + rng.below(500));
    run_writing(c, rng, pause);
    c.restart(id);
}

/// Repairs the network and checks the end state: the committed configuration
/// has exactly `voters` and `learners`, every live member holds it, a
/// command written now is applied by every live member, no removed or
/// joining node leads, and the final-state checks of the other scenarios hold.
fn check_end(c: &mut Cluster, voters: &BTreeSet<NodeId>, learners: &BTreeSet<NodeId>) -> Totals {
    *c.net_config_mut() = NetConfig::reliable();
    *c.disk_config_mut() = Default::default();
    c.heal();
    let Some((_, m)) = c.committed_config() else { c.fail("no configuration was ever committed") };
    if &m.voters != voters || &m.learners != learners || m.is_joint() {
        c.fail(format_args!("committed configuration {m:?}; expected voters {voters:?}, learners {learners:?}"));
    }
    c.settle_membership("final".into(), secs(20)).unwrap_or_else(|e| c.fail(e));
    let members: Vec<NodeId> = voters.iter().chain(learners).copied().collect();
    for id in members.into_iter().filter(|&id| c.is_up(id)) {
        let m = c.membership(id).cloned().unwrap_or_default();
        if &m.voters != voters || &m.learners != learners {
            c.fail(format_args!("member n{id} holds configuration {m:?}"));
        }
    }
    if let Some(l) = c.current_leader()
        && !voters.contains(&l)
    {
        c.fail(format_args!("n{l} leads but is no voter"));
    }
    common::check_final_state(c).unwrap_or_else(|e| panic!("{e}"));
    let configs = (1..=c.max_applied().0)
        .filter(|&i| matches!(c.committed_entry(LogIndex(i)), Some((_, Payload::Membership(_)))))
        .count() as u64;
    let restarts = c.stats().nodes.iter().map(|n| u64::from(n.restarts)).sum();
    Totals {
        runs: 1,
        indexes: c.max_applied().0,
        configs,
        elections: c.elections().len() as u64,
        restarts,
        sim_ms: c.now().as_micros() / 1000,
    }
}

/// What the seeds of a scenario did, printed at its end.
#[derive(Debug, Default)]
struct Totals {
    runs: u64,
    indexes: u64,
    configs: u64,
    elections: u64,
    restarts: u64,
    sim_ms: u64,
}

impl Totals {
    fn add(&mut self, o: Totals) {
        self.runs += o.runs;
        self.indexes += o.indexes;
        self.configs += o.configs;
        self.elections += o.elections;
        self.restarts += o.restarts;
        self.sim_ms += o.sim_ms;
    }
}

/// Learners and voters come and go: add a learner (it receives the log but
/// does not count), promote it, add a second learner and remove it again,
/// then remove an original voter; crashes of random nodes in between.
#[test]
fn learners_and_voters_come_and_go() {
    let mut totals = Totals::default();
    for_each_seed(90_000, SEEDS, |seed| {
        let mut c = faulty(3, seed);
        let mut rng = SimRng::stream(seed, 900);
        run_writing(&mut c, &mut rng, secs(1));
        let (n4, n5) = (c.add_node(), c.add_node());
        add_learner(&mut c, n4);
        run_writing(&mut c, &mut rng, ms(300));
        // The learner receives the log (loss and reordering may slow it down).
        let learns = c.run_until(|c| c.membership(n4).is_some_and(|m| m.learners.contains(&n4)), secs(5));
        if !learns || c.node(n4).is_none_or(|n| n.role() == Role::Leader) {
            c.fail(format_args!("n4 should be a learner: {:?}", c.membership(n4)));
        }
        bounce(&mut c, &mut rng, &[NodeId(1), NodeId(2), NodeId(3), n4]);
        change(&mut c, MembershipChange::Promote { id: n4 });
        add_learner(&mut c, n5);
        run_writing(&mut c, &mut rng, ms(300));
        remove(&mut c, n5);
        bounce(&mut c, &mut rng, &[NodeId(1), NodeId(2), NodeId(3), n4]);
        let gone = NodeId(1 + rng.below(3));
        remove(&mut c, gone);
        run_writing(&mut c, &mut rng, ms(500));
        let voters: BTreeSet<NodeId> = [1, 2, 3, 4].map(NodeId).into_iter().filter(|&v| v != gone).collect();
        totals.add(check_end(&mut c, &voters, &BTreeSet::new()));
    });
    println!("learners and voters come and go: {totals:?}");
}

/// A voter crashes for good; a new node with a new id and an empty disk
/// replaces it (learner, caught up, promoted; the dead one removed), while
/// another node crashes and restarts. The cluster then commits without the
/// dead node.
#[test]
fn a_crashed_voter_is_replaced_by_a_new_node() {
    let mut totals = Totals::default();
    for_each_seed(91_000, SEEDS, |seed| {
        let mut c = faulty(3, seed);
        let mut rng = SimRng::stream(seed, 910);
        run_writing(&mut c, &mut rng, secs(1));
        // Half the time the dead one is the leader.
        let dead = match c.current_leader() {
            Some(l) if rng.chance(0.5) => l,
            _ => NodeId(1 + rng.below(3)),
        };
        c.crash(dead);
        run_writing(&mut c, &mut rng, ms(500));
        let new = c.add_node();
        let mut task = ChangeTask::new(&c, MembershipChange::AddLearner { id: new, addr: sim_addr(new) }, CHANGE_MAX);
        let mut bounced = false;
        loop {
            if let Some(r) = task.poll(&mut c) {
                r.unwrap_or_else(|e| c.fail(format_args!("adding n{new}: {e}")));
                break;
            }
            write(&mut c, &mut rng, 1);
            c.run_for(ms(20));
        }
        let survivors: Vec<NodeId> = [1, 2, 3].map(NodeId).into_iter().filter(|&v| v != dead).collect();
        if rng.chance(0.5) {
            bounce(&mut c, &mut rng, &survivors);
            bounced = true;
        }
        change(&mut c, MembershipChange::Promote { id: new });
        if !bounced {
            bounce(&mut c, &mut rng, &[survivors[0], survivors[1], new]);
        }
        remove(&mut c, dead);
        run_writing(&mut c, &mut rng, ms(500));
        let voters: BTreeSet<NodeId> = survivors.iter().copied().chain([new]).collect();
        totals.add(check_end(&mut c, &voters, &BTreeSet::new()));
        assert!(!c.is_up(dead), "seed {seed}: the dead node stays dead");
    });
    println!("a crashed voter is replaced by a new node: {totals:?}");
}

/// Grow from 3 to 5 voters, then shrink to 3 by removing two of the
/// original ones (the leader possibly among them); crashes in between.
#[test]
fn grow_3_to_5_and_shrink_back_to_3() {
    let mut totals = Totals::default();
    for_each_seed(92_000, SEEDS, |seed| {
        let mut c = faulty(3, seed);
        let mut rng = SimRng::stream(seed, 920);
        run_writing(&mut c, &mut rng, secs(1));
        let (n4, n5) = (c.add_node(), c.add_node());
        add_voter(&mut c, n4);
        bounce(&mut c, &mut rng, &[NodeId(1), NodeId(2), NodeId(3), n4]);
        add_voter(&mut c, n5);
        run_writing(&mut c, &mut rng, ms(500));
        let five = c.committed_config().map(|(_, m)| m.voters.clone()).unwrap_or_default();
        assert_eq!(five, ids(&[1, 2, 3, 4, 5]), "seed {seed}");
        let mut originals = vec![NodeId(1), NodeId(2), NodeId(3)];
        rng.shuffle(&mut originals);
        remove(&mut c, originals[0]);
        bounce(&mut c, &mut rng, &[originals[1], originals[2], n4, n5]);
        remove(&mut c, originals[1]);
        run_writing(&mut c, &mut rng, ms(500));
        totals.add(check_end(&mut c, &[originals[2], n4, n5].into_iter().collect(), &BTreeSet::new()));
    });
    println!("grow 3 to 5 and shrink back to 3: {totals:?}");
}

/// The leader is removed: it steps down once the change commits, another
/// voter takes over, and the removed node (still running, connected)
/// neither leads again nor disturbs the others: on a reliable network the
/// new leader keeps its term for 10 s.
#[test]
fn the_leader_is_removed() {
    let mut totals = Totals::default();
    for_each_seed(93_000, SEEDS, |seed| {
        let n = if seed % 2 == 0 { 3 } else { 5 };
        let mut c = faulty(n, seed);
        let mut rng = SimRng::stream(seed, 930);
        run_writing(&mut c, &mut rng, secs(1));
        let old = loop {
            if let Some(l) = c.current_leader() {
                break l;
            }
            c.run_for(ms(50));
        };
        remove(&mut c, old);
        run_writing(&mut c, &mut rng, ms(500));
        let voters: BTreeSet<NodeId> = (1..=n as u64).map(NodeId).filter(|&v| v != old).collect();
        totals.add(check_end(&mut c, &voters, &BTreeSet::new()));
        if c.node(old).is_some_and(|node| node.role() == Role::Leader) {
            c.fail(format_args!("removed n{old} still leads"));
        }
        // The removed node runs on; the cluster is not disturbed.
        let (leader, term) = c.leaders().into_iter().max_by_key(|&(_, t)| t).expect("check_end left a leader");
        c.run_for(secs(10));
        let now = c.node(leader).map(|node| (node.role(), node.term()));
        if now != Some((Role::Leader, term)) {
            c.fail(format_args!(
                "n{leader} led term {term}, 10 s later it is {now:?}: the removed n{old} disturbed it?"
            ));
        }
    });
    println!("the leader is removed: {totals:?}");
}

/// A voter is removed while it is cut off, so it never learns it was
/// removed: it keeps its old configuration and campaigns (pre-vote) when it
/// comes back, but the cluster ignores it: the leader keeps its term for 10 s
/// and the removed node never leads.
#[test]
fn a_removed_node_that_never_heard_of_it_does_not_disturb() {
    let mut totals = Totals::default();
    for_each_seed(96_000, SEEDS, |seed| {
        let mut c = faulty(3, seed);
        let mut rng = SimRng::stream(seed, 960);
        run_writing(&mut c, &mut rng, secs(1));
        let leader = loop {
            if let Some(l) = c.current_leader() {
                break l;
            }
            c.run_for(ms(50));
        };
        let gone = (1..=3).map(NodeId).find(|&v| v != leader).expect("3 nodes");
        c.disconnect(gone);
        remove(&mut c, gone);
        run_writing(&mut c, &mut rng, ms(500));
        let voters: BTreeSet<NodeId> = (1..=3).map(NodeId).filter(|&v| v != gone).collect();
        if c.membership(gone).is_none_or(|m| !m.is_voter(gone)) {
            c.fail(format_args!("n{gone} was cut off, yet knows it was removed"));
        }
        totals.add(check_end(&mut c, &voters, &BTreeSet::new())); // heals: n{gone} is back
        let (leader, term) = c.leaders().into_iter().max_by_key(|&(_, t)| t).expect("check_end left a leader");
        c.run_for(secs(10));
        let now = c.node(leader).map(|node| (node.role(), node.term()));
        if now != Some((Role::Leader, term)) {
            c.fail(format_args!(
                "n{leader} led term {term}, 10 s later it is {now:?}: the removed n{gone} disturbed it?"
            ));
        }
    });
    println!("a removed node that never heard of it does not disturb: {totals:?}");
}

/// Changes on both sides of a partition: the leader is cut off with one
/// follower (it may still accept a change it can never commit), the
/// majority elects a leader, adds a new node and removes one of the cut-off
/// nodes; after healing, one configuration wins everywhere.
#[test]
fn changes_during_partitions() {
    let mut totals = Totals::default();
    for_each_seed(94_000, SEEDS, |seed| {
        let mut c = faulty(5, seed);
        let mut rng = SimRng::stream(seed, 940);
        run_writing(&mut c, &mut rng, secs(1));
        let old = loop {
            if let Some(l) = c.current_leader() {
                break l;
            }
            c.run_for(ms(50));
        };
        let mut others: Vec<NodeId> = (1..=5).map(NodeId).filter(|&v| v != old).collect();
        rng.shuffle(&mut others);
        let buddy = others[0];
        let (minority, majority) = ([old, buddy], [others[1], others[2], others[3]]);
        let n6 = c.add_node();
        c.partition(&[&minority, &[majority[0], majority[1], majority[2], n6]]);
        // The stranded leader accepts a change that cannot commit.
        let _ = c.change_membership(old, MembershipChange::Remove { id: majority[0] });
        write(&mut c, &mut rng, 3);
        add_voter(&mut c, n6);
        remove(&mut c, buddy);
        run_writing(&mut c, &mut rng, ms(300));
        c.heal();
        run_writing(&mut c, &mut rng, secs(1));
        let voters: BTreeSet<NodeId> = [old, majority[0], majority[1], majority[2], n6].into_iter().collect();
        totals.add(check_end(&mut c, &voters, &BTreeSet::new()));
    });
    println!("changes during partitions: {totals:?}");
}

/// Crashes in the middle of a joint configuration: a promotion or removal
/// is started, and a few milliseconds later (before or after the joint
/// entry is durable or committed) the leader, a random voter, or every node
/// crashes, losing unsynced writes. After restarting, the change finishes
/// (or is made again) and the cluster settles on the final configuration.
#[test]
fn crash_in_the_middle_of_a_joint_configuration() {
    let mut totals = Totals::default();
    for_each_seed(95_000, SEEDS, |seed| {
        let mut c = faulty(3, seed);
        let mut rng = SimRng::stream(seed, 950);
        run_writing(&mut c, &mut rng, secs(1));
        let n4 = c.add_node();
        add_learner(&mut c, n4);
        run_writing(&mut c, &mut rng, ms(300));
        let mut voters = ids(&[1, 2, 3]);
        for (step, joint) in
            [MembershipChange::Promote { id: n4 }, MembershipChange::Remove { id: NodeId(1 + rng.below(3)) }]
                .into_iter()
                .enumerate()
        {
            // Start the change at a leader that accepts it.
            let deadline = c.now() + CHANGE_MAX;
            let leader = loop {
                if c.now() > deadline {
                    c.fail(format_args!("no leader accepted {joint:?}"));
                }
                if let Some(l) = c.current_leader()
                    && c.change_membership(l, joint.clone()).is_ok()
                {
                    break l;
                }
                c.run_for(ms(20));
            };
            c.run_for(Duration::from_micros(rng.below(30_000)));
            let all: Vec<NodeId> = c.ids();
            match rng.below(3) {
                0 => c.crash(leader),
                1 => c.crash(all[rng.below(all.len() as u64) as usize]),
                _ => {
                    for &id in &all {
                        c.crash(id);
                    }
                }
            }
            let down = ms(rng.below(800));
            run_writing(&mut c, &mut rng, down);
            for &id in &all {
                if !c.is_up(id) {
                    c.restart(id);
                }
            }
            c.note(format!("step {step}: restarted; finishing {joint:?}"));
            change(&mut c, joint.clone());
            match joint {
                MembershipChange::Promote { id } => voters.insert(id),
                MembershipChange::Remove { id } => voters.remove(&id),
                _ => unreachable!(),
            };
        }
        run_writing(&mut c, &mut rng, ms(500));
        totals.add(check_end(&mut c, &voters, &BTreeSet::new()));
    });
    println!("crash in the middle of a joint configuration: {totals:?}");
}

/// Runs the clients (and the cluster) in 20 ms slices until `change` is done.
fn change_with_clients(c: &mut Cluster, clients: &mut Clients, change: MembershipChange) {
    let what = format!("{change:?}");
    let mut task = ChangeTask::new(c, change, CHANGE_MAX);
    loop {
        if let Some(r) = task.poll(c) {
            if let Err(e) = r {
                c.fail(format_args!("{what}: {e}"));
            }
            return;
        }
        clients.run_for(c, ms(20));
    }
}

/// Key-value clients (puts, gets, deletes, swaps) run through a sequence of
/// membership changes on the faulty network with crashes: a voter crashes
/// for good and a new node replaces it, the cluster grows to 5, the leader
/// is removed, and it shrinks back to 3. The history passes the
/// linearizability checker and the replicas agree.
#[test]
fn kv_histories_across_membership_changes_are_linearizable() {
    let mut total = 0;
    for_each_seed(97_000, SEEDS / 2, |seed| {
        let mut c = faulty(3, seed);
        let kv = KvSim::install(&mut c);
        let cfg = ClientConfig { clients: 4, workload: Workload::Random { keys: 3 }, ..ClientConfig::default() };
        let mut clients = Clients::new(&c, kv.clone(), cfg);
        let mut rng = SimRng::stream(seed, 970);
        clients.run_for(&mut c, secs(1));
        // Replace a crashed voter.
        let dead = NodeId(1 + rng.below(3));
        c.crash(dead);
        clients.run_for(&mut c, ms(300));
        let new = c.add_node();
        change_with_clients(&mut c, &mut clients, MembershipChange::AddLearner { id: new, addr: sim_addr(new) });
        change_with_clients(&mut c, &mut clients, MembershipChange::Promote { id: new });
        change_with_clients(&mut c, &mut clients, MembershipChange::Remove { id: dead });
        // Grow to 5, with a crash and restart on the way.
        let (a, b) = (c.add_node(), c.add_node());
        for id in [a, b] {
            change_with_clients(&mut c, &mut clients, MembershipChange::AddLearner { id, addr: sim_addr(id) });
            change_with_clients(&mut c, &mut clients, MembershipChange::Promote { id });
        }
        let bounced = c.ids().into_iter().filter(|&id| id != dead).nth(rng.below(3) as usize).unwrap_or(new);
        c.crash(bounced);
        clients.run_for(&mut c, ms(200 + rng.below(400)));
        c.restart(bounced);
        // Remove the leader, then one more voter: back to 3.
        let leader = loop {
            if let Some(l) = c.current_leader() {
                break l;
            }
            clients.run_for(&mut c, ms(20));
        };
        change_with_clients(&mut c, &mut clients, MembershipChange::Remove { id: leader });
        let voters = c.committed_config().map(|(_, m)| m.voters.clone()).unwrap_or_default();
        let other = voters.iter().copied().nth(rng.below(voters.len() as u64) as usize).unwrap_or(new);
        change_with_clients(&mut c, &mut clients, MembershipChange::Remove { id: other });
        clients.run_for(&mut c, ms(500));
        // Heal, let the clients finish, and check.
        *c.net_config_mut() = NetConfig::reliable();
        c.heal();
        clients.stop();
        if !clients.finish(&mut c, secs(30)) {
            c.fail("clients still waiting 30 s after healing");
        }
        let members: Vec<NodeId> = c.committed_config().map(|(_, m)| m.members()).unwrap_or_default();
        let caught_up = c.run_until(
            |c| {
                let max = c.max_applied();
                members.iter().all(|&id| kv.last_applied(id) == max)
            },
            secs(10),
        );
        if !caught_up || members.len() != 3 {
            c.fail(format_args!("members {members:?} did not all catch up"));
        }
        kv.check_replicas_agree(&c);
        common::check_final_state(&mut c).unwrap_or_else(|e| panic!("{e}"));
        clients.check_linearizable(&c);
        total += clients.stats().ok;
    });
    println!("kv across membership changes: {total} operations completed");
}
