//! The Figure 8 scenarios (MIT 6.5840 2C Figure8 / Figure8Unreliable):
//! leaders keep failing right after appending, so entries of old terms are
//! replicated by later leaders; a leader must never commit such an entry by
//! counting replicas (paper §5.4.2). The simulator checks state machine
//! safety and leader completeness after every step.
//!
//! `figure8_one_entry_per_message` runs Figure8 with one entry per
//! AppendEntries, which the plain scenario needs to catch a leader that
//! commits an old-term entry by counting its replicas.
//!
//! Each seed runs 1000 rounds (about 30 s of virtual time), so the default
//! seed count is lower than elsewhere; `RAFT_SEEDS=K` raises it, and
//! `RAFT_SEED=N` reruns just seed `N`.

mod common;

use common::{ELECTION_TIMEOUT, cmd, crash1, ms, start1_connect};
use raft_core::{APPEND_OVERHEAD_BYTES, Config, Duration, ENTRY_OVERHEAD_BYTES};
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
    let restarts = figure8_runs(30_000, |_| {});
    println!("figure 8: {restarts} restarts over all seeds");
}

/// [`figure8`] with every AppendEntries carrying one entry (a message
/// budget that fits one command, not two): a new leader's no-op no longer
/// travels with the old-term entries before it, so an old-term entry can
/// reach a majority on its own, and a leader that committed by counting its
/// replicas (dropping §5.4.2's current-term check in `maybe_commit`) is
/// caught, which plain `figure8` does not do.
#[test]
fn figure8_one_entry_per_message() {
    let restarts = figure8_runs(32_000, one_entry_per_message);
    println!("figure 8, one entry per message: {restarts} restarts over all seeds");
}

/// Commands of up to 16 bytes ([`cmd`] makes at most 10); a message fits
/// one entry of them but not two.
fn one_entry_per_message(c: &mut Config) {
    c.max_entry_bytes = 16;
    c.max_message_bytes = 16 + ENTRY_OVERHEAD_BYTES + APPEND_OVERHEAD_BYTES;
    assert!(2 * ENTRY_OVERHEAD_BYTES > c.max_message_bytes - APPEND_OVERHEAD_BYTES);
}

/// MIT's Figure8 over [`SEEDS`] seeds from `base`, every node's config
/// passed through `configure`; returns the restarts over all seeds.
fn figure8_runs(base: u64, configure: fn(&mut Config)) -> u64 {
    let mut restarts = 0;
    for_each_seed(base, SEEDS, |seed| {
        let mut cfg = SimConfig::new(5, seed);
        cfg.configure = configure;
        let mut c = Cluster::new(cfg);
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
    restarts
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
