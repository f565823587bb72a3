//! The Figure 8 scenarios (MIT 6.5840 2C Figure8 / Figure8Unreliable):
//! leaders keep failing right after appending, so entries of old terms are
//! replicated by later leaders; a leader must never commit such an entry by
//! counting replicas (paper §5.4.2). The simulator checks state machine
//! safety and leader completeness after every step.
//!
//! Each seed runs 1000 rounds (about 30 s of virtual time), so the default
//! seed count is lower than elsewhere; `RAFT_SEEDS=K` raises it, and
//! `RAFT_SEED=N` reruns just seed `N`.

mod common;

use common::{ELECTION_TIMEOUT, cmd, crash1, ms, start1_connect};
use raft_core::Duration;
use raft_tests::sim::{Cluster, NetConfig, SimConfig, SimRng, for_each_seed};

/// Seeds per scenario unless `RAFT_SEEDS` says otherwise (1000 rounds each).
const SEEDS: u64 = 100;

/// MIT's pause between rounds: 10% of the time up to half an election
/// timeout (0-499 ms), otherwise 0-12 ms.
fn pause(rng: &mut SimRng) -> Duration {
    if rng.below(1000) < 100 { ms(rng.below(ELECTION_TIMEOUT.as_millis() / 2)) } else { ms(rng.below(13)) }
}

#[test]
fn figure8() {
    let mut restarts = 0;
    for_each_seed(30_000, SEEDS, |seed| {
        let mut c = Cluster::new(SimConfig::new(5, seed));
        let mut rng = SimRng::stream(seed, 300);
        c.one(cmd(rng.below(1 << 31)), 1, true);
        let mut nup = 5;
        for _ in 0..1000 {
            // Propose on every live server; remember one that accepted.
            let mut leader = None;
            for id in c.ids() {
                if c.is_up(id) && c.propose(id, cmd(rng.below(1 << 31))).is_ok() {
                    leader = Some(id);
                }
            }
            let p = pause(&mut rng);
            c.run_for(p);
            if let Some(l) = leader {
                crash1(&mut c, l);
                nup -= 1;
            }
            if nup < 3 {
                let s = c.ids()[rng.below(5) as usize];
                if !c.is_up(s) {
                    start1_connect(&mut c, s);
                    nup += 1;
                    restarts += 1;
                }
            }
        }
        for id in c.ids() {
            if !c.is_up(id) {
                start1_connect(&mut c, id);
            }
        }
        c.one(cmd(rng.below(1 << 31)), 5, true);
        common::check_final_state(&mut c).unwrap_or_else(|e| panic!("{e}"));
    });
    println!("figure 8: {restarts} restarts over all seeds");
}

#[test]
fn figure8_unreliable() {
    let mut disconnects = 0;
    for_each_seed(31_000, SEEDS, |seed| {
        let mut cfg = SimConfig::new(5, seed);
        cfg.net = NetConfig::unreliable();
        let mut c = Cluster::new(cfg);
        let mut rng = SimRng::stream(seed, 301);
        c.one(cmd(rng.below(10_000)), 1, true);
        let mut nup = 5;
        for iter in 0..1000 {
            if iter == 200 {
                c.net_config_mut().long_reordering = true;
            }
            let mut leader = None;
            for id in c.ids() {
                if c.propose(id, cmd(rng.below(10_000))).is_ok() && c.is_connected(id) {
                    leader = Some(id);
                }
            }
            let p = pause(&mut rng);
            c.run_for(p);
            if let Some(l) = leader
                && rng.below(1000) < ELECTION_TIMEOUT.as_millis() / 2
            {
                c.disconnect(l);
                nup -= 1;
                disconnects += 1;
            }
            if nup < 3 {
                let s = c.ids()[rng.below(5) as usize];
                if !c.is_connected(s) {
                    c.connect(s);
                    nup += 1;
                }
            }
        }
        for id in c.ids() {
            c.connect(id);
        }
        // Still unreliable, with long reordering: one() allows 10 s.
        c.one(cmd(rng.below(10_000)), 5, true);
        common::check_final_state(&mut c).unwrap_or_else(|e| panic!("{e}"));
    });
    println!("figure 8 unreliable: {disconnects} leader disconnects over all seeds");
}
