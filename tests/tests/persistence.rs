//! Crash and restart scenarios (MIT 6.5840 2C Persist1/2/3 equivalents),
//! each over many seeds in the deterministic simulator.
//!
//! A crash loses every write the node had not yet seen durable; a restart
//! rebuilds the node from exactly what survived, and its apply stream starts
//! again at index 1. MIT's `crash1` disconnects and crashes; its `start1`
//! restarts a server disconnected until `connect`.
//!
//! `RAFT_SEEDS=K` sets how many seeds each scenario runs; `RAFT_SEED=N`
//! reruns just seed `N`. A failure names its seed.

mod common;

use common::{ELECTION_TIMEOUT, cmd, crash1, payload, plus, start1_connect, wait};
use raft_core::LogIndex;
use raft_tests::sim::{Cluster, SimConfig, for_each_seed};

/// Seeds per scenario unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 500;

fn cluster(n: usize, seed: u64) -> Cluster {
    Cluster::new(SimConfig::new(n, seed))
}

/// MIT `start1` on a live server: crash it (losing unfinished writes) and
/// start it again from its durable state.
fn restart(c: &mut Cluster, id: raft_core::NodeId) {
    c.restart(id);
}

#[test]
fn persist1() {
    for_each_seed(20_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        c.one(cmd(11), 3, true);

        // Crash and restart every server.
        for id in c.ids() {
            restart(&mut c, id);
        }
        for id in c.ids() {
            c.disconnect(id);
            c.connect(id);
        }
        c.one(cmd(12), 3, true);

        let leader1 = c.check_one_leader();
        c.disconnect(leader1);
        restart(&mut c, leader1);
        c.connect(leader1);
        c.one(cmd(13), 3, true);

        let leader2 = c.check_one_leader();
        c.disconnect(leader2);
        let i14 = c.one(cmd(14), 2, true);
        restart(&mut c, leader2);
        c.connect(leader2);
        wait(&mut c, i14, 3, None); // leader2 rejoins before the next crash

        let i3 = plus(c.check_one_leader(), 1, 3);
        c.disconnect(i3);
        c.one(cmd(15), 2, true);
        restart(&mut c, i3);
        c.connect(i3);
        c.one(cmd(16), 3, true);
    });
}

#[test]
fn persist2() {
    for_each_seed(21_000, SEEDS, |seed| {
        let mut c = cluster(5, seed);
        let mut x = 1;
        for _ in 0..5 {
            c.one(cmd(10 + x), 5, true);
            x += 1;

            let leader1 = c.check_one_leader();
            c.disconnect(plus(leader1, 1, 5));
            c.disconnect(plus(leader1, 2, 5));
            c.one(cmd(10 + x), 3, true);
            x += 1;

            // The three that have the newest entry go away; the two stale ones restart.
            c.disconnect(leader1);
            c.disconnect(plus(leader1, 3, 5));
            c.disconnect(plus(leader1, 4, 5));
            restart(&mut c, plus(leader1, 1, 5));
            restart(&mut c, plus(leader1, 2, 5));
            c.connect(plus(leader1, 1, 5));
            c.connect(plus(leader1, 2, 5));
            c.run_for(ELECTION_TIMEOUT);

            // One with the newest entry restarts and joins them: it must win.
            restart(&mut c, plus(leader1, 3, 5));
            c.connect(plus(leader1, 3, 5));
            c.one(cmd(10 + x), 3, true);
            x += 1;

            c.connect(plus(leader1, 4, 5));
            c.connect(leader1);
        }
        c.one(cmd(1000), 5, true);
        common::check_final_state(&mut c).unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn persist3() {
    for_each_seed(22_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        c.one(cmd(101), 3, true);

        let leader = c.check_one_leader();
        c.disconnect(plus(leader, 2, 3));
        let i102 = c.one(cmd(102), 2, true);

        // Both holders of 102 crash; the node without it comes back with one of them.
        crash1(&mut c, leader);
        crash1(&mut c, plus(leader, 1, 3));
        c.connect(plus(leader, 2, 3));
        start1_connect(&mut c, leader);
        c.one(cmd(103), 2, true);

        start1_connect(&mut c, plus(leader, 1, 3));
        c.one(cmd(104), 3, true);

        // The winner had the persisted entry: 102 stays committed at its index everywhere.
        let (n, e) = c.n_committed(i102);
        assert_eq!(n, 3, "seed {seed}: i{i102} applied by {n} of 3");
        assert_eq!(e.map(|e| e.payload), Some(payload(102)), "seed {seed}: i{i102} lost 102");
    });
}

/// Every node crashes at once right after an entry commits, several times in
/// a row: whatever was acknowledged survives, and the index keeps advancing.
#[test]
fn crash_all_repeatedly() {
    for_each_seed(23_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        let mut acked: Vec<(LogIndex, u64)> = Vec::new();
        for round in 0..5u64 {
            let index = c.one(cmd(500 + round), 3, true);
            if let Some(&(prev, _)) = acked.last() {
                assert!(index > prev, "seed {seed}: index went from {prev} to {index}");
            }
            acked.push((index, 500 + round));
            // Propose more that may or may not survive, then crash everyone mid-flight.
            if let Some(&(leader, _)) = c.leaders().first() {
                let _ = c.propose(leader, cmd(900 + round));
            }
            c.run_for(raft_core::Duration::from_micros(1500));
            for id in c.ids() {
                c.crash(id);
            }
            for id in c.ids() {
                c.restart(id);
            }
        }
        c.one(cmd(1000), 3, true);
        for (index, x) in acked {
            let (n, e) = c.n_committed(index);
            assert_eq!(n, 3, "seed {seed}: i{index} applied by {n} of 3 after the last restart");
            assert_eq!(e.map(|e| e.payload), Some(payload(x)), "seed {seed}: acknowledged {x} lost at i{index}");
        }
    });
}
