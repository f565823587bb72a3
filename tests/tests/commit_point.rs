//! Crashes exactly at the commit point: an entry replicated to a bare
//! majority only (the leader and just enough followers, the others cut
//! off) is committed, and at that very step every node of that majority
//! crashes, losing each disk write not yet durable. Once healed and
//! restarted, the cluster must still hold the entry (the leader applied it:
//! its client was answered).
//!
//! This guards the durability contract of `raft_core::Output`: a follower
//! acknowledges only entries durable on its disk, and the leader counts
//! itself in the majority only once its own write is durable. With either
//! rule broken, the entry can survive on a minority only, and a leader
//! elected without it overwrites it; the simulator's state machine safety
//! check (one entry per index across every node and lifetime) and the check
//! at the end of each round both see that. Disk writes take 1-30 ms here,
//! against 1-5 ms on the network, and the leader is given a new write every
//! 3 ms until the commit point, so the crashes find writes in flight (the
//! test counts them).
//!
//! `RAFT_SEEDS=K` sets the seed count, `RAFT_SEED=N` reruns seed `N`.

mod common;

use common::{cmd, ms, secs};
use raft_core::{NodeId, Payload, Role};
use raft_tests::sim::{Cluster, DiskConfig, SimConfig, SimRng, TraceKind, for_each_seed};
use std::cell::Cell;
use std::rc::Rc;

/// Seeds unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 200;
/// Commit-point crashes per seed.
const ROUNDS: u64 = 5;

#[test]
fn a_bare_majority_crashing_at_the_commit_point_keeps_the_entry() {
    let mut committed = 0;
    let mut lost_writes = 0;
    for_each_seed(50_000, SEEDS, |seed| {
        let n = if seed % 2 == 0 { 3 } else { 5 };
        let (c_rounds, lost) = run(seed, n);
        committed += c_rounds;
        lost_writes += lost;
    });
    println!(
        "commit point: {committed} entries committed on a bare majority that then crashed; {lost_writes} crashes lost writes"
    );
    assert!(lost_writes > 0, "no crash lost a write: the scenario never crashed with writes in flight");
    assert!(committed > 0, "no round reached its commit point: the scenario checked nothing");
}

/// One seed: [`ROUNDS`] rounds on `n` nodes. Returns the rounds that
/// reached their commit point and the node crashes that lost writes.
fn run(seed: u64, n: usize) -> (u64, u64) {
    let mut cfg = SimConfig::new(n, seed);
    cfg.disk = DiskConfig { latency_min: ms(1), latency_max: ms(30) };
    let mut c = Cluster::new(cfg);
    let mut rng = SimRng::stream(seed, 500);
    let lossy = Rc::new(Cell::new(0));
    let count = Rc::clone(&lossy);
    c.set_trace_observer(Some(Box::new(move |e| {
        if let TraceKind::Crash { lost_writes, .. } = e.kind
            && lost_writes > 0
        {
            count.set(count.get() + 1);
        }
    })));
    c.one(cmd(0), n, true);
    let mut committed = 0;
    for round in 1..=ROUNDS {
        if !c.run_until(|c| c.leaders().len() == 1, secs(10)) {
            c.fail("no single leader within 10 s");
        }
        let (leader, _) = c.leaders()[0];
        // The bare majority: the leader and n / 2 followers; the rest is cut off.
        let mut others: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != leader).collect();
        rng.shuffle(&mut others);
        let (with, without) = others.split_at(n / 2);
        let majority: Vec<NodeId> = std::iter::once(leader).chain(with.iter().copied()).collect();
        c.partition(&[&majority, without]);
        c.note(format!("round {round}: majority {majority:?}, cut off {without:?}"));

        let write = cmd(seed * 100_000 + round * 10_000);
        let Ok(index) = c.propose(leader, write.clone()) else {
            c.heal();
            continue;
        };
        // Step by step until the leader commits it (or stops leading),
        // proposing one more write every 3 ms, so that the crash finds
        // later writes in flight.
        let at_commit =
            |c: &Cluster| c.node(leader).is_none_or(|node| node.role() != Role::Leader || node.commit_index() >= index);
        let mut more = 0;
        while !c.run_until(at_commit, ms(3)) && more < 2000 {
            more += 1;
            let _ = c.propose(leader, cmd(seed * 100_000 + round * 10_000 + more));
        }
        let reached = c.node(leader).is_some_and(|node| node.commit_index() >= index);
        for &id in &majority {
            c.crash(id);
        }
        c.heal();
        for &id in &majority {
            c.restart(id);
        }
        c.one(cmd(seed * 100_000 + round * 10_000 + 9_999), n, true);
        if reached {
            committed += 1;
            let want = Payload::Command(write);
            let (count, entry) = c.n_committed(index);
            if count != n || entry.as_ref().is_none_or(|e| e.payload != want) {
                c.fail(format_args!(
                    "round {round}: index {index} committed with {want:?} before the crash; now on {count} of {n} nodes: {:?}",
                    entry.map(|e| e.payload)
                ));
            }
        }
    }
    (committed, lossy.get())
}
