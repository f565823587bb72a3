//! Linearizable reads without log writes (issue 9): clients' gets go through
//! `Node::read_index` at whichever node they reach and are answered from
//! that node's store. Under partitions, leader changes (elections and
//! transfers), loss, reordering and a stale leader that still believes it
//! leads, every history must pass the linearizability checker; in lease mode
//! too, as long as clock drift stays within the configured bound. Broken
//! bounds and unconfirmed leader-local reads must produce stale reads that
//! the checker finds.
//!
//! `RAFT_SEEDS=K` sets how many seeds each scenario runs; `RAFT_SEED=N`
//! reruns just seed `N`. A failure names its seed.

mod common;

use common::{ms, revive_all, secs};
use raft_core::{Config, Duration, NodeId, Payload, ReadMode, Role};
use raft_host::kv::{KvCommand, KvOp, KvOutput, decode_command, encode_command};
use raft_tests::linearizability::History;
use raft_tests::sim::clients::{ClientConfig, ClientStats, Clients, ReadPath, Workload};
use raft_tests::sim::kv::{KvSim, KvStats, ReplyResult};
use raft_tests::sim::{Cluster, NetConfig, SimConfig, SimRng, for_each_seed};

/// Seeds per scenario unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 30;

/// The lease's clock-drift bound in these tests.
const MAX_DRIFT: Duration = Duration::from_millis(30);

/// Per-node clock drift within [`MAX_DRIFT`]: two clocks at +-4% drift apart
/// by at most 8% of `election_timeout_min` (24 ms of 300 ms).
const DRIFT_WITHIN_BOUND_PPM: u64 = 40_000;

fn defaults(_: &mut Config) {}

fn lease(c: &mut Config) {
    c.read_mode = ReadMode::Lease { max_clock_drift: MAX_DRIFT };
}

fn kv_cluster(n: usize, seed: u64, configure: fn(&mut Config), drift_ppm: u64) -> (Cluster, KvSim) {
    let mut cfg = SimConfig::new(n, seed);
    cfg.configure = configure;
    cfg.clock_drift_ppm = drift_ppm;
    let mut c = Cluster::new(cfg);
    let kv = KvSim::install(&mut c);
    (c, kv)
}

fn current_leader(c: &Cluster) -> Option<NodeId> {
    c.ids()
        .into_iter()
        .filter(|&id| c.node(id).is_some_and(|n| n.role() == Role::Leader))
        .max_by_key(|&id| c.node(id).map(|n| n.term()))
}

/// Every 150-600 ms one fault or repair, for `run`: isolate the leader
/// (clients still reach it: a stale leader), a random partition, heal,
/// a leadership transfer to a random node, crash and restart, loss and
/// reordering on or off.
fn nemesis(c: &mut Cluster, clients: &mut Clients, rng: &mut SimRng, run: Duration) {
    let end = c.now() + run;
    while c.now() < end {
        let ids = c.ids();
        let pick = |rng: &mut SimRng| ids[rng.below(ids.len() as u64) as usize];
        match rng.below(8) {
            0 | 1 => {
                if let Some(leader) = current_leader(c) {
                    let others: Vec<NodeId> = ids.iter().copied().filter(|&id| id != leader).collect();
                    c.partition(&[&[leader], &others]);
                }
            }
            2 => {
                let mut shuffled = ids.clone();
                rng.shuffle(&mut shuffled);
                let cut = 1 + rng.below(shuffled.len() as u64 - 1) as usize;
                let (a, b) = shuffled.split_at(cut);
                c.partition(&[a, b]);
            }
            3 => c.heal(),
            4 => {
                if let Some(leader) = current_leader(c) {
                    let _ = c.transfer_leadership(leader, pick(rng));
                }
            }
            5 => {
                let id = pick(rng);
                if c.is_up(id) {
                    c.crash(id);
                } else {
                    c.restart(id);
                }
            }
            6 => {
                let net = c.net_config_mut();
                *net = if rng.chance(0.5) { NetConfig::unreliable() } else { NetConfig::reliable() };
                net.long_reordering = rng.chance(0.3);
            }
            _ => revive_all(c),
        }
        clients.run_for(c, ms(rng.between(150, 600)));
    }
}

/// Heals everything, lets the clients finish and every node catch up;
/// checks that no get reached the log and that the replicas agree.
fn settle(c: &mut Cluster, clients: &mut Clients) {
    *c.net_config_mut() = NetConfig::reliable();
    c.heal();
    revive_all(c);
    clients.stop();
    assert!(clients.finish(c, secs(30)), "seed {}: clients still waiting 30 s after healing", c.seed());
    let kv = clients.kv().clone();
    let caught_up = c.run_until(|c| c.ids().into_iter().all(|id| kv.last_applied(id) == c.max_applied()), secs(10));
    assert!(caught_up, "seed {}: replicas did not catch up", c.seed());
    kv.check_replicas_agree(c);
    for i in 1..=c.max_applied().0 {
        let entry = c.committed_entry(raft_core::LogIndex(i));
        if let Some((_, Payload::Command(b))) = entry
            && decode_command(b).is_ok_and(|cmd| matches!(cmd.op, KvOp::Get { .. }))
        {
            c.fail(format_args!("a get reached the log at i{i}"));
        }
    }
}

#[derive(Default, Debug)]
struct Totals {
    clients: ClientStats,
    kv: KvStats,
}

impl Totals {
    fn add(&mut self, clients: &ClientStats, kv: &KvStats) {
        self.clients.calls += clients.calls;
        self.clients.ok += clients.ok;
        self.clients.unknown += clients.unknown;
        self.clients.reads_failed += clients.reads_failed;
        self.clients.follower_reads += clients.follower_reads;
        self.kv.reads_started += kv.reads_started;
        self.kv.reads_served += kv.reads_served;
        self.kv.reads_failed += kv.reads_failed;
    }
}

fn faulty_reads(seed: u64, configure: fn(&mut Config), drift_ppm: u64, totals: &mut Totals) -> u64 {
    let n = if seed.is_multiple_of(2) { 3 } else { 5 };
    let (mut c, kv) = kv_cluster(n, seed, configure, drift_ppm);
    let reads_anywhere = seed.is_multiple_of(3);
    let cfg =
        ClientConfig { clients: 4, workload: Workload::Random { keys: 2 }, reads_anywhere, ..ClientConfig::default() };
    let mut clients = Clients::new(&c, kv.clone(), cfg);
    let mut rng = SimRng::stream(seed, 910);
    clients.run_for(&mut c, ms(800));
    nemesis(&mut c, &mut clients, &mut rng, secs(6));
    settle(&mut c, &mut clients);
    clients.check_linearizable(&c);
    totals.add(clients.stats(), &kv.stats());
    c.trace_digest()
}

/// ReadIndex (the default): linearizable under every fault of [`nemesis`].
/// On every third seed the clients send each get to a random node, so
/// followers serve reads (asking their leader for the read index).
#[test]
fn read_index_reads_stay_linearizable_under_faults() {
    let mut totals = Totals::default();
    for_each_seed(71_000, SEEDS, |seed| {
        faulty_reads(seed, defaults, 0, &mut totals);
    });
    println!("read index: {totals:?}");
    if std::env::var("RAFT_SEED").is_err() {
        assert!(totals.kv.reads_served > 1_000, "too few reads served to mean anything: {totals:?}");
        assert!(totals.kv.reads_failed > 0, "no read ever failed: the faults did not reach the reads: {totals:?}");
        assert!(totals.clients.follower_reads > 100, "followers served too few reads: {totals:?}");
    }
}

/// Lease reads with every clock drifting by up to 4% (within the bound):
/// linearizable under every fault of [`nemesis`].
#[test]
fn lease_reads_with_drift_within_the_bound_stay_linearizable() {
    let mut totals = Totals::default();
    for_each_seed(72_000, SEEDS, |seed| {
        faulty_reads(seed, lease, DRIFT_WITHIN_BOUND_PPM, &mut totals);
    });
    println!("lease: {totals:?}");
    if std::env::var("RAFT_SEED").is_err() {
        assert!(totals.kv.reads_served > 1_000, "too few reads served to mean anything: {totals:?}");
    }
}

/// Drifting clocks, reads, transfers and faults replay exactly from the seed.
#[test]
fn drifting_runs_replay_exactly() {
    let run = |seed| faulty_reads(seed, lease, DRIFT_WITHIN_BOUND_PPM, &mut Totals::default());
    assert_eq!(run(76_000), run(76_000), "same seed, different runs");
    assert_ne!(run(76_000), run(76_003), "different seeds, same run");
}

fn no_check_quorum(c: &mut Config) {
    c.check_quorum = false;
}

/// A leader is cut off from the others for 1.5 s, four times, while clients
/// can still reach it; without check-quorum it goes on believing it leads
/// for the whole time (a stale leader). Returns whether the history is
/// linearizable.
fn stale_leader(seed: u64, reads: ReadPath) -> Result<(), String> {
    let (mut c, kv) = kv_cluster(3, seed, no_check_quorum, 0);
    let cfg = ClientConfig { clients: 5, workload: Workload::Random { keys: 1 }, reads, ..ClientConfig::default() };
    let mut clients = Clients::new(&c, kv, cfg);
    clients.run_for(&mut c, ms(800));
    for _ in 0..4 {
        if let Some(leader) = current_leader(&c) {
            let others: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != leader).collect();
            c.partition(&[&[leader], &others]);
        }
        clients.run_for(&mut c, ms(1500));
        c.heal();
        clients.run_for(&mut c, ms(500));
    }
    settle(&mut c, &mut clients);
    clients.history().check().map_err(|e| format!("seed {seed}: {e}"))
}

/// ReadIndex reads stay linearizable while a stale leader is reachable.
#[test]
fn read_index_reads_ignore_a_stale_leader() {
    for_each_seed(73_000, SEEDS, |seed| stale_leader(seed, ReadPath::ReadIndex).unwrap_or_else(|e| panic!("{e}")));
}

/// The reply `client` gets within `max`, if any.
fn await_reply(c: &mut Cluster, kv: &KvSim, client: u64, max: Duration) -> Option<ReplyResult> {
    let end = c.now() + max;
    while c.now() < end {
        c.run_until(|_| kv.has_replies(), end.saturating_since(c.now()));
        if let Some(r) = kv.take_replies().into_iter().find(|r| r.client == client) {
            return Some(r.result);
        }
    }
    None
}

/// A put of `key=value` by `client` through `node`, recorded in `h`.
fn put(c: &mut Cluster, kv: &KvSim, h: &mut History, node: NodeId, client: u64, value: &str) {
    let op = KvOp::put("x", value);
    let id = h.call(client, op.clone(), c.now().as_micros());
    let cmd = KvCommand { client, seq: 1, op };
    let index = c.propose(node, encode_command(&cmd)).unwrap_or_else(|e| c.fail(format_args!("put refused: {e}")));
    kv.expect(c, node, index, client, 1);
    match await_reply(c, kv, client, secs(1)) {
        Some(ReplyResult::Output(out)) => h.returned(id, out, c.now().as_micros()),
        other => c.fail(format_args!("put x={value} at n{node} got {other:?}")),
    }
}

/// Client 3 reads `x` at `node` by `reads`, recorded in `h`.
fn get(c: &mut Cluster, kv: &KvSim, h: &mut History, node: NodeId, reads: ReadPath) {
    let get = h.call(3, KvOp::get("x"), c.now().as_micros());
    let out = match reads {
        ReadPath::ReadIndex if kv.read(c, node, 3, 1, "x").is_ok() => match await_reply(c, kv, 3, secs(2)) {
            Some(ReplyResult::Output(out @ KvOutput::Get(_))) => Some(out),
            _ => None,
        },
        ReadPath::LeaderLocal if c.node(node).is_some_and(|n| n.role() == Role::Leader) => {
            Some(KvOutput::Get(kv.get_local(node, "x")))
        }
        _ => None,
    };
    match out {
        Some(out) => h.returned(get, out, c.now().as_micros()),
        None => h.timed_out(get),
    }
}

/// The leader is cut off after `x=1`; the others elect a new leader that
/// acknowledges `x=2`; then a client reads `x` at the old leader, which may
/// still believe it leads.
fn stale_leader_race(seed: u64, reads: ReadPath) -> (Cluster, History) {
    let (mut c, kv) = kv_cluster(3, seed, defaults, 0);
    let mut h = History::new();
    let leader = c.check_one_leader();
    put(&mut c, &kv, &mut h, leader, 1, "1");
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != leader).collect();
    c.partition(&[&[leader], &others]);
    let elected = |c: &Cluster| others.iter().any(|&id| c.node(id).is_some_and(|n| n.role() == Role::Leader));
    if !c.run_until(elected, secs(5)) {
        c.fail("the followers elected no leader");
    }
    let Some(new) = current_leader(&c).filter(|&l| l != leader) else { c.fail("no new leader") };
    put(&mut c, &kv, &mut h, new, 2, "2");
    c.run_for(ms(1));
    get(&mut c, &kv, &mut h, leader, reads);
    (c, h)
}

/// A ReadIndex read at a stale leader never returns a stale value.
#[test]
fn read_index_at_a_stale_leader_is_never_stale() {
    for_each_seed(75_000, SEEDS, |seed| {
        let (c, h) = stale_leader_race(seed, ReadPath::ReadIndex);
        if let Err(e) = h.check() {
            c.fail(format_args!("a ReadIndex read at a stale leader is not linearizable: {e}"));
        }
    });
}

/// The race is real: a read answered by the stale leader from its store,
/// without confirming its leadership ([`ReadPath::LeaderLocal`]), is
/// stale, and the checker finds it.
#[test]
fn unconfirmed_read_at_a_stale_leader_is_caught() {
    let mut caught = 0;
    for_each_seed(75_000, 10, |seed| {
        caught += u32::from(stale_leader_race(seed, ReadPath::LeaderLocal).1.check().is_err())
    });
    println!("leader-local reads: stale read caught on {caught} of 10 seeds");
    if std::env::var("RAFT_SEED").is_err() {
        assert!(caught > 0, "no stale read: the old leader never served one");
    }
}

/// Two followers, `fast` and `slow`, of a lease-reading leader. `slow` stops
/// hearing from the leader (its lease rests on `fast` alone); then `fast`'s
/// clock runs at `fast_ppm` and the leader is cut off. Once the followers
/// elect a new leader, it acknowledges `x=2`, and a client reads `x` at the
/// old leader. Returns the recorded history (put x=1, put x=2, get x).
fn lease_race(seed: u64, fast_ppm: i64) -> (Cluster, History) {
    let (mut c, kv) = kv_cluster(3, seed, lease, 0);
    let mut h = History::new();
    let leader = c.check_one_leader();
    put(&mut c, &kv, &mut h, leader, 1, "1");
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != leader).collect();
    let (fast, slow) = (others[0], others[1]);
    c.cut_link(leader, slow);
    c.run_for(ms(700));
    c.set_clock_rate(fast, fast_ppm);
    c.partition(&[&[leader], &others]);
    let elected = |c: &Cluster| others.iter().any(|&id| c.node(id).is_some_and(|n| n.role() == Role::Leader));
    if !c.run_until(elected, secs(5)) {
        c.fail("the followers elected no leader");
    }
    let Some(new) = current_leader(&c).filter(|&l| l != leader) else { c.fail("no new leader") };
    put(&mut c, &kv, &mut h, new, 2, "2");
    c.run_for(ms(1));
    get(&mut c, &kv, &mut h, leader, ReadPath::ReadIndex);
    (c, h)
}

/// A follower clock running 4% fast (within the bound, whatever the seed):
/// the old leader's lease runs out before the followers can elect, so the
/// read at the old leader is never stale.
#[test]
fn lease_race_within_the_drift_bound_stays_linearizable() {
    for_each_seed(74_000, SEEDS, |seed| {
        let (c, h) = lease_race(seed, DRIFT_WITHIN_BOUND_PPM as i64);
        if let Err(e) = h.check() {
            c.fail(format_args!("lease read within the drift bound is not linearizable: {e}"));
        }
    });
}

/// A follower clock running three times as fast breaks the bound: the
/// followers elect a new leader while the old one's lease still holds, and
/// the old leader serves the stale `x=1` after `x=2` was acknowledged. The
/// checker must find it.
#[test]
fn lease_race_with_a_broken_drift_bound_is_caught() {
    const SEED: u64 = 74_000;
    let (c, h) = lease_race(SEED, 2_000_000);
    let stale = h.operations().iter().any(|op| op.op == KvOp::get("x") && op.return_time().is_some());
    assert!(stale, "seed {SEED}: the old leader served no read:\n{}", c.trace_lines(40));
    assert!(h.check().is_err(), "seed {SEED}: the checker accepted a history with a stale read: {h:?}");
}
