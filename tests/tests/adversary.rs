//! An attacker on the network against the frame protocol and the core
//! together: the simulator's transport layer seals every message into a
//! frame, and an adversary ([`raft_tests::sim::adversary`]) records every
//! frame, replays old ones, copies frames to nodes they were not meant for
//! and copies every vote response to every other node.
//!
//! * With transport v2 ([`FrameMode::Secure`], the real
//!   `raft_host::secure::Link`s), plus loss, duplication, reordering,
//!   disconnections and crashes, no invariant breaks, the KV history stays
//!   linearizable, and every forged frame that reached the wrong node was
//!   dropped by the frame layer.
//! * With the old framing ([`FrameMode::UnboundV1`], test-only: a MAC over
//!   sender and payload, no receiver, no session), the same adversary makes
//!   two nodes leaders of one term. This shows the first test can fail.
//!
//! `RAFT_SEEDS=K` sets how many seeds the first and the third test run;
//! `RAFT_SEED=N` reruns just seed `N`. A failure names its seed. The
//! second test always runs its fixed range of seeds. To watch the mechanism matter:
//! `RAFT_FRAMES=v1` runs the first test with the unbound framing (it
//! fails), and `RAFT_ADVERSARY=off` runs the second without the adversary
//! (it fails: no seed shows two leaders).

mod common;

use common::{churn_step, ms, revive_all};
use raft_core::{Config, Duration};
use raft_tests::sim::adversary::{AdversaryConfig, AdversaryStats};
use raft_tests::sim::clients::{ClientConfig, ClientStats, Clients, Workload};
use raft_tests::sim::kv::KvSim;
use raft_tests::sim::{Cluster, FrameMode, FrameStats, NetConfig, SimConfig, SimRng, TransportConfig, for_each_seed};

/// Seeds of the linearizability test unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 300;

/// Seeds of the election tests. With the unbound framing, about one seed
/// in six showed two leaders of one term when this was written (49 of
/// seeds 70000..70300, the first at 70002); 100 seeds leave a wide margin.
const ELECTION_SEEDS: u64 = 100;

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim() == value)
}

/// Transport v2, or the unbound framing under `RAFT_FRAMES=v1`.
fn frames_under_test() -> FrameMode {
    if env_is("RAFT_FRAMES", "v1") { FrameMode::UnboundV1 } else { FrameMode::Secure }
}

/// Frames carry at most 64 KiB: keep every message below that.
fn small_messages(c: &mut Config) {
    c.max_message_bytes = 48 << 10;
    c.max_entry_bytes = 16 << 10;
}

fn adversary() -> AdversaryConfig {
    AdversaryConfig {
        replay_rate: 0.05,
        redirect_rate: 0.05,
        copy_vote_responses: true,
        max_recorded: 1024,
        max_delay: ms(40),
    }
}

#[derive(Default)]
struct Totals {
    clients: ClientStats,
    adversary: AdversaryStats,
    frames: FrameStats,
}

impl Totals {
    fn add(&mut self, c: &Cluster, clients: &ClientStats) {
        self.clients.calls += clients.calls;
        self.clients.ok += clients.ok;
        self.clients.unknown += clients.unknown;
        self.adversary.add(&c.adversary_stats());
        let (t, f) = (&mut self.frames, c.frame_stats());
        t.sealed += f.sealed;
        t.delivered += f.delivered;
        t.initiations += f.initiations;
        t.established += f.established;
        t.dropped += f.dropped;
        t.dropped_replayed += f.dropped_replayed;
        t.dropped_unknown_session += f.dropped_unknown_session;
        t.dropped_other += f.dropped_other;
        t.queue_overflow += f.queue_overflow;
        t.forged_dropped += f.forged_dropped;
        t.forged_delivered += f.forged_delivered;
        t.misdirected_delivered += f.misdirected_delivered;
    }
}

/// Transport v2 under the adversary and the usual faults: every invariant
/// holds at every step, the KV history is linearizable, and no frame the
/// adversary moved to another node was taken as a message.
#[test]
fn secure_frames_hold_against_replays_and_redirects() {
    let mode = frames_under_test();
    let mut totals = Totals::default();
    for_each_seed(60_000, SEEDS, |seed| {
        let mut cfg = SimConfig::new(5, seed);
        cfg.net = NetConfig { duplicate_rate: 0.05, ..NetConfig::unreliable() };
        cfg.configure = small_messages;
        cfg.transport = Some(TransportConfig { mode, adversary: Some(adversary()) });
        let mut c = Cluster::new(cfg);
        let kv = KvSim::install(&mut c);
        let ccfg = ClientConfig { clients: 3, workload: Workload::Random { keys: 3 }, ..ClientConfig::default() };
        let mut clients = Clients::new(&c, kv, ccfg);
        let mut rng = SimRng::stream(seed, 600);
        for round in 0..8 {
            if round % 4 == 3 {
                // A partition with the leader (if any) on the minority side.
                let mut ids = c.ids();
                rng.shuffle(&mut ids);
                if let Some(&(leader, _)) = c.leaders().first() {
                    ids.retain(|&id| id != leader);
                    ids.insert(0, leader);
                }
                let (minority, majority) = ids.split_at(2);
                c.partition(&[minority, majority]);
                clients.run_for(&mut c, ms(800));
                c.heal();
            } else {
                churn_step(&mut c, &mut rng);
                clients.run_for(&mut c, ms(600));
            }
        }
        common::finish_and_check(&mut c, &mut clients);
        assert!(clients.stats().ok > 0, "seed {seed}: no operation completed");
        let f = c.frame_stats();
        assert_eq!(f.misdirected_delivered, 0, "seed {seed}: a redirected frame was taken as a message: {f:?}");
        totals.add(&c, clients.stats());
    });
    let (a, f) = (&totals.adversary, &totals.frames);
    println!("clients: {:?}\nadversary: {a:?}\nframes: {f:?}", totals.clients);
    // Not vacuous: the adversary acted, and the frame layer dropped its frames.
    assert!(a.replayed > 0 && a.redirected > 0 && a.vote_copies > 0, "{a:?}");
    assert!(f.forged_dropped > 0 && f.dropped_replayed > 0 && f.dropped_unknown_session > 0, "{f:?}");
    assert!(f.established > 0 && f.delivered > 0, "{f:?}");
}

/// Election timeouts in a narrow band, so that candidates often collide.
fn colliding_timeouts(c: &mut Config) {
    small_messages(c);
    c.election_timeout_min = Duration::from_millis(300);
    c.election_timeout_max = Duration::from_millis(330);
}

/// Runs elections over and over (the leader is crashed every 800 ms and
/// comes back later) for at most 20 s, under `mode` and the vote-copying
/// adversary (none under `RAFT_ADVERSARY=off`). Returns the first
/// invariant violation, if any.
fn elections_under_attack(seed: u64, mode: FrameMode) -> Option<String> {
    let mut cfg = SimConfig::new(5, seed);
    cfg.configure = colliding_timeouts;
    let attack = !env_is("RAFT_ADVERSARY", "off");
    cfg.transport = Some(TransportConfig { mode, adversary: attack.then(adversary) });
    let mut c = Cluster::new(cfg);
    c.record_violations();
    for _ in 0..25 {
        if c.run_until(|c| !c.violations().is_empty(), ms(800)) {
            return c.violations().first().map(ToString::to_string);
        }
        revive_all(&mut c);
        if let Some(&(leader, _)) = c.leaders().first() {
            c.crash(leader);
        }
    }
    None
}

/// The negative control: with the unbound framing, copying vote responses
/// between candidates makes two leaders in one term within a few seeds.
///
/// This claims that some seed of a fixed range breaks safety, so the seed
/// variables (`RAFT_SEED`, `RAFT_SEEDS`, `RAFT_SEED_OFFSET`) do not apply:
/// a soak chunk or a single replayed seed could hold none. It prints every
/// seed that broke an invariant, with the violation.
#[test]
fn unbound_frames_let_the_adversary_make_two_leaders() {
    let seeds: Vec<u64> = (70_000..70_000 + ELECTION_SEEDS).collect();
    let mut broken = Vec::new();
    for &seed in &seeds {
        if let Some(v) = elections_under_attack(seed, FrameMode::UnboundV1) {
            println!("seed {seed}: {v}");
            if v.starts_with("election safety") {
                broken.push(seed);
            }
        }
    }
    println!("unbound framing: {} of {} seeds had two leaders in one term: {broken:?}", broken.len(), seeds.len());
    assert!(!broken.is_empty(), "no seed of {seeds:?} showed two leaders in one term");
}

/// The same elections and adversary with transport v2: no violation.
#[test]
fn secure_frames_keep_one_leader_per_term_under_the_same_attack() {
    for_each_seed(70_000, ELECTION_SEEDS, |seed| {
        if let Some(v) = elections_under_attack(seed, FrameMode::Secure) {
            panic!("seed {seed}: {v}");
        }
    });
}
