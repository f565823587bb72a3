//! Snapshot scenarios (MIT 6.5840 2D equivalents), each over many seeds in
//! the deterministic simulator, with the MIT tester's applier: every node
//! snapshots its state machine every 10 applied entries
//! ([`raft_tests::sim::snapshots`]). A last scenario runs the same faults
//! under key-value clients and checks their history for linearizability.
//!
//! Through every run, after every simulator step:
//! * the durable Raft state of every node (hard state, snapshot metadata and
//!   retained entries, not the snapshot data) stays under [`DURABLE_BYTES`]
//!   and [`MAX_RETAINED`] entries;
//! * every node's apply stream is gap-free: each lifetime starts at 1 or right
//!   after a restored snapshot, and a restored snapshot is newer than anything
//!   applied (checked by the appliers and by the simulator's invariants);
//! * every command a node applies or restores inside a snapshot agrees with
//!   what every other node applied there.
//!
//! Nodes use 1 KiB messages, so snapshots (which carry the whole command
//! history, like the MIT tester's) are streamed in several chunks.
//!
//! `RAFT_SEEDS=K` sets how many seeds each scenario runs; `RAFT_SEED=N`
//! reruns just seed `N`; `RAFT_VERBOSE=1` prints each run's counters. A
//! failure names its seed.
//!
//! These are scripted scenarios, not generated schedules: every run commits
//! (each `one` waits for its command to be applied), and every scenario
//! checks that each of its runs applied entries. `RAFT_SCHEDULE_STATS=1`
//! prints, per run, the operations (writes and faults), the simulated time
//! and the last index applied, then the distribution. With the default
//! seeds (min/median/max over 200 runs each):
//!
//! | scenario | operations | simulated time | last index applied |
//! | --- | --- | --- | --- |
//! | basic | 331/375/415 | 5.2/5.3/5.5 s | 184/221/251 |
//! | install | 330/377/416 | 31/35/40 s | 286/340/386 |
//! | install-unreliable | 337/375/431 | 35/38/44 s | 288/339/396 |
//! | install-crash | 319/374/415 | 27/28/30 s | 266/338/392 |
//! | install-uncrash | 342/376/414 | 34/37/43 s | 293/340/401 |
//! | all-crash | 46/64/80 | 2.8/3.1/3.7 s | 47/65/81 |
//! | init | 16/16/16 | 1.2/1.4/1.7 s | 17/17/17 |

use raft_core::{Bytes, Config, Duration, Instant, LogIndex, NodeId};
use raft_tests::sim::clients::{ClientConfig, Clients};
use raft_tests::sim::kv::KvSim;
use raft_tests::sim::schedule::{self, Summary};
use raft_tests::sim::snapshots::{ApplierConfig, Appliers, Bounds, KvSnapshots};
use raft_tests::sim::{Cluster, MsgKind, NetConfig, SimConfig, SimRng, for_each_seed};

/// Seeds per scenario unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 200;
/// MIT `SnapShotInterval`.
const SNAPSHOT_INTERVAL: u64 = 10;
/// MIT `snapcommon` iterations.
const ITERS: u64 = 30;
const SERVERS: usize = 3;

/// Most entries a node may retain (durably) past its snapshot, restating
/// the MIT tester's `MAXLOGSIZE` (2000 bytes of gob-encoded Raft state) as
/// "about 20 entries plus metadata". A node retains at most 9 applied
/// entries past its last snapshot (the applier snapshots at every multiple
/// of 10), plus the entries not applied yet: a burst of at most 14
/// proposals, the `one` command in flight, and a few more for `one`'s
/// retries on an unreliable network and new leaders' no-ops. 9 + 14 + 1 =
/// 24 is the most seen over thousands of seeds; 28 leaves room for 4 more.
const MAX_RETAINED: usize = 28;
/// Metadata bound: hard state (term, vote), snapshot index and term, option
/// tags and the log's length prefix (varints; 9 bytes with terms and indexes
/// below 251, 16 leaves room for larger ones).
const METADATA: usize = 16;
/// A retained entry of the 2D tests: every command is 8 bytes (an MIT
/// command is a Go `int`), so an entry encodes to at most 14 bytes (term,
/// payload tag and length 1 byte each, index 3, command 8).
const ENTRY: usize = 14;
/// The bound on a node's durable Raft state (hard state, snapshot metadata,
/// retained entries; not the snapshot data), checked after every step:
/// 28 * 14 + 16 = 408 bytes (the most seen is 345).
const DURABLE_BYTES: usize = MAX_RETAINED * ENTRY + METADATA;
/// A retained entry of the key-value scenario: 6 bytes of entry framing
/// plus an encoded `KvCommand` of at most 37 bytes (client id 9, sequence
/// number 3, operation tag 1, key 3, value 10, compare-and-swap's expected
/// value 11).
const KV_ENTRY: usize = 44;
/// The key-value scenario's bound: 28 * 44 + 16 = 1248 bytes (the most seen is 483).
const KV_DURABLE_BYTES: usize = MAX_RETAINED * KV_ENTRY + METADATA;

fn small_messages(c: &mut Config) {
    c.max_entry_bytes = 256;
    c.max_message_bytes = 1024;
}

fn setup(seed: u64, reliable: bool) -> (Cluster, Appliers) {
    let mut cfg = SimConfig::new(SERVERS, seed);
    cfg.configure = small_messages;
    if !reliable {
        cfg.net = NetConfig::unreliable();
    }
    let mut c = Cluster::new(cfg);
    let mut applier = ApplierConfig::mit(SNAPSHOT_INTERVAL);
    applier.bounds =
        Bounds { durable_bytes: Some(DURABLE_BYTES), durable_entries: Some(MAX_RETAINED), ..Bounds::default() };
    let a = Appliers::install(&mut c, applier);
    (c, a)
}

/// An 8-byte command (MIT: `rand.Int()`).
fn cmd(rng: &mut SimRng) -> Bytes {
    Bytes::from(format!("{:08}", rng.below(100_000_000)).into_bytes())
}

fn next(id: NodeId) -> NodeId {
    NodeId(id.0 % SERVERS as u64 + 1)
}

fn report(name: &str, c: &Cluster, a: &Appliers) {
    if std::env::var_os("RAFT_VERBOSE").is_some() {
        let t = c.stats().total();
        println!(
            "{name} seed {}: {:?}; InstallSnapshot sent {}; last applied {}",
            c.seed(),
            a.stats(),
            t.of_kind(MsgKind::InstallSnapshot),
            c.max_applied()
        );
    }
}

/// MIT `snapcommon`: 30 iterations of (maybe) losing a follower or the
/// leader, a burst of 5-14 proposals, and bringing it back, which usually
/// needs an InstallSnapshot.
fn snapcommon(name: &str, seed: u64, disconnect: bool, reliable: bool, crash: bool) -> Summary {
    let (mut c, a) = setup(seed, reliable);
    let mut ops = 0;
    let mut rng = SimRng::stream(seed, 100);
    a.one(&mut c, cmd(&mut rng), SERVERS, true);
    let mut leader1 = c.check_one_leader();
    let mut installs = 0;
    for i in 0..ITERS {
        let (mut victim, mut sender) = (next(leader1), leader1);
        if i % 3 == 1 {
            sender = next(leader1);
            victim = leader1;
        }
        if disconnect {
            c.disconnect(victim);
            a.one(&mut c, cmd(&mut rng), SERVERS - 1, true);
        }
        if crash {
            c.crash(victim);
            a.one(&mut c, cmd(&mut rng), SERVERS - 1, true);
        }
        // Perhaps enough for a snapshot.
        let nn = SNAPSHOT_INTERVAL / 2 + rng.below(SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            let _ = c.propose(sender, cmd(&mut rng));
        }
        ops += nn as usize + 3;
        let expected = if !disconnect && !crash { SERVERS } else { SERVERS - 1 };
        a.one(&mut c, cmd(&mut rng), expected, true);
        if disconnect {
            c.connect(victim);
        }
        if crash {
            c.restart(victim); // restores its own durable snapshot, if any
        }
        if disconnect || crash {
            // The victim may be behind the leader's snapshot: it must catch up.
            let restored = a.stats().restored;
            let index = a.one(&mut c, cmd(&mut rng), SERVERS, true);
            assert!(a.last_applied(victim) >= index, "seed {seed}: n{victim} did not catch up");
            if a.stats().restored > restored {
                installs += 1; // it needed the leader's snapshot
            }
            leader1 = c.check_one_leader();
        }
    }
    a.check(&c);
    let stats = a.stats();
    assert!(stats.taken >= ITERS / 2, "seed {seed}: only {} snapshots taken", stats.taken);
    if disconnect || crash {
        let sent = c.stats().total().of_kind(MsgKind::InstallSnapshot);
        assert!(sent > 0 && installs > 0, "seed {seed}: no snapshot was ever installed ({sent} chunks sent)");
    }
    report(&format!("{name} ({installs} catch-ups by snapshot)"), &c, &a);
    summary(&c, ops)
}

/// What a run did, for `RAFT_SCHEDULE_STATS=1`: operations (proposals and
/// faults), simulated time, and the entries applied (every `one` waits for
/// its command to commit, so each run commits many).
fn summary(c: &Cluster, ops: usize) -> Summary {
    Summary { ops, sim_time: c.now().saturating_since(Instant::ZERO), acked: c.max_applied().0 as usize }
}

/// Runs `f` for every seed of `for_each_seed(base, SEEDS)`; prints the
/// distribution under `RAFT_SCHEDULE_STATS=1` and checks every run
/// committed entries.
fn each_seed(name: &str, base: u64, mut f: impl FnMut(u64) -> Summary) {
    let mut runs = Vec::new();
    for_each_seed(base, SEEDS, |seed| runs.push(f(seed)));
    schedule::report(name, &runs);
    assert!(runs.iter().all(|r| r.acked > 0), "{name}: a run applied nothing");
}

#[test]
fn snapshot_basic() {
    each_seed("basic", 20_000, |seed| snapcommon("basic", seed, false, true, false));
}

#[test]
fn snapshot_install_after_disconnect() {
    each_seed("install", 21_000, |seed| snapcommon("install", seed, true, true, false));
}

#[test]
fn snapshot_install_after_disconnect_unreliable() {
    each_seed("install-unreliable", 22_000, |seed| snapcommon("install-unreliable", seed, true, false, false));
}

#[test]
fn snapshot_install_after_crash() {
    each_seed("install-crash", 23_000, |seed| snapcommon("install-crash", seed, false, true, true));
}

#[test]
fn snapshot_install_after_crash_unreliable() {
    each_seed("install-uncrash", 24_000, |seed| snapcommon("install-uncrash", seed, false, false, true));
}

fn crash_all_and_restart(c: &mut Cluster) {
    for id in c.ids() {
        c.crash(id);
    }
    for id in c.ids() {
        c.restart(id);
    }
}

/// MIT `TestSnapshotAllCrash`: crash and restart every node 5 times; the
/// log index keeps advancing (nodes restart from their snapshot and log).
#[test]
fn snapshot_all_crash() {
    each_seed("all-crash", 25_000, |seed| {
        let (mut c, a) = setup(seed, true);
        let mut rng = SimRng::stream(seed, 100);
        a.one(&mut c, cmd(&mut rng), SERVERS, true);
        let mut ops = 1;
        for _ in 0..5 {
            let nn = SNAPSHOT_INTERVAL / 2 + rng.below(SNAPSHOT_INTERVAL);
            ops += nn as usize + 3; // the writes, two more, the crash
            for _ in 0..nn {
                a.one(&mut c, cmd(&mut rng), SERVERS, true);
            }
            let index1 = a.one(&mut c, cmd(&mut rng), SERVERS, true);
            crash_all_and_restart(&mut c);
            a.check(&c);
            for id in c.ids() {
                // Each node restarts from its durable snapshot (once it has
                // one: the first round may end before index 10).
                let snap = c.durable(id).snapshot_index();
                assert_eq!(a.snapshot_index(id), snap, "seed {seed}: n{id} did not restore its snapshot at restart");
                assert!(
                    snap > LogIndex(0) || index1.0 < 3 * SNAPSHOT_INTERVAL,
                    "seed {seed}: n{id} restarted without a snapshot after applying {index1} entries"
                );
            }
            let index2 = a.one(&mut c, cmd(&mut rng), SERVERS, true);
            assert!(index2 > index1, "seed {seed}: index decreased from {index1} to {index2}");
        }
        report("all-crash", &c, &a);
        summary(&c, ops)
    });
}

/// MIT `TestSnapshotInit`: a restarted node keeps its snapshot. Crash
/// everything twice; after each restart every node holds (in memory and in
/// its state machine) exactly the snapshot it had durably before the crash,
/// and the write after the first restart did not lose it.
#[test]
fn snapshot_init() {
    each_seed("init", 26_000, |seed| {
        let (mut c, a) = setup(seed, true);
        let mut rng = SimRng::stream(seed, 100);
        a.one(&mut c, cmd(&mut rng), SERVERS, true);
        // Enough for a snapshot.
        for _ in 0..=SNAPSHOT_INTERVAL {
            a.one(&mut c, cmd(&mut rng), SERVERS, true);
        }
        let mut floor = [LogIndex(0); SERVERS];
        for round in 0..2 {
            for id in c.ids() {
                c.crash(id);
            }
            let before: Vec<LogIndex> = c.ids().into_iter().map(|id| c.durable(id).snapshot_index()).collect();
            for id in c.ids() {
                c.restart(id);
            }
            a.check(&c);
            for (k, id) in c.ids().into_iter().enumerate() {
                let snap = before[k];
                assert!(snap > LogIndex(0), "seed {seed}: n{id} has no durable snapshot (round {round})");
                assert!(
                    snap >= floor[k],
                    "seed {seed}: n{id}'s durable snapshot went back from {} to {snap}",
                    floor[k]
                );
                let node = c.node(id).map(|n| n.snapshot_index());
                assert_eq!(node, Some(snap), "seed {seed}: n{id} restarted without its snapshot (round {round})");
                assert_eq!(a.snapshot_index(id), snap, "seed {seed}: n{id}'s state machine did not restore it");
                floor[k] = snap;
            }
            // A single op, to make every node write its durable state again.
            a.one(&mut c, cmd(&mut rng), SERVERS, true);
        }
        report("init", &c, &a);
        summary(&c, 1 + 11 + 2 * 2) // writes, crashes and a write per round
    });
}

/// Seeds of the key-value scenario unless `RAFT_SEEDS` says otherwise.
const KV_SEEDS: u64 = 60;

/// The 2D faults (a follower or the leader disconnected or crashed, then
/// back, ten times) with key-value clients instead of `one`: the stores
/// are snapshotted every 10 applied entries and shipped to the nodes that
/// fell behind; the client history must be linearizable and every replica
/// must end with the same store. Odd seeds use the unreliable network.
#[test]
fn snapshot_kv_linearizable() {
    for_each_seed(27_000, KV_SEEDS, |seed| {
        let t0 = std::time::Instant::now();
        let mut cfg = SimConfig::new(SERVERS, seed);
        cfg.configure = small_messages;
        if seed % 2 == 1 {
            cfg.net = NetConfig::unreliable();
        }
        let mut c = Cluster::new(cfg);
        let kv = KvSim::new();
        let bounds =
            Bounds { durable_bytes: Some(KV_DURABLE_BYTES), durable_entries: Some(MAX_RETAINED), ..Bounds::default() };
        let snaps = KvSnapshots::install(&mut c, &kv, SNAPSHOT_INTERVAL, bounds);
        let mut clients = Clients::new(&c, kv.clone(), ClientConfig::default());
        let mut rng = SimRng::stream(seed, 100);
        let ms = Duration::from_millis;
        clients.run_for(&mut c, ms(1000));
        for i in 0..10 {
            let leader = c.leaders().first().map_or(NodeId(1), |&(l, _)| l);
            let victim = if i % 3 == 1 { leader } else { next(leader) };
            let crash = rng.chance(0.5);
            if crash {
                c.crash(victim);
            } else {
                c.disconnect(victim);
            }
            clients.run_for(&mut c, ms(1500));
            if crash {
                c.restart(victim);
            } else {
                c.connect(victim);
            }
            clients.run_for(&mut c, ms(1000));
        }
        *c.net_config_mut() = NetConfig::reliable();
        clients.stop();
        assert!(clients.finish(&mut c, ms(30_000)), "seed {seed}: clients still waiting after 30 s");
        let caught_up =
            c.run_until(|c| c.ids().into_iter().all(|id| kv.last_applied(id) == c.max_applied()), ms(10_000));
        let max = c.max_applied();
        if !caught_up {
            let state: Vec<_> = c
                .ids()
                .into_iter()
                .map(|id| (id, kv.last_applied(id), c.node(id).map(|n| (n.role(), n.term(), n.commit_index()))))
                .collect();
            c.fail(format_args!("replicas did not catch up with i{max}: {state:?}"));
        }
        kv.check_replicas_agree(&c);
        clients.check_linearizable(&c);
        let st = snaps.stats();
        assert!(st.restored > 0, "seed {seed}: no snapshot was installed: {st:?}");
        if std::env::var_os("RAFT_VERBOSE").is_some() {
            let wall = t0.elapsed().as_millis();
            println!("kv seed {seed}: {st:?}; {:?}; last applied {max}; {wall} ms", clients.stats());
        }
    });
}
