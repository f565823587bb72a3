//! End to end, three real nodes and their clients behind a hostile proxy
//! (`common::hostile`) that copies every peer datagram to a third node and
//! replays recorded peer and client datagrams, old and new, to their
//! receivers and to others, harder while elections are forced (leadership
//! transfers, a leader paused with SIGSTOP, a leader killed with SIGKILL and
//! restarted). Every node's status is polled throughout: no term ever has
//! two leaders. The clients' history is linearizable, the cluster keeps
//! acknowledging writes after each election, the nodes count the replayed
//! and misdirected datagrams they dropped, and a burst of replayed client
//! requests adds no log entry on any node.
//!
//! The proxy's choices come from a seed, printed; `RAFT_UDP_PROXY_SEED=N`
//! runs with it again (the processes' timing is not replayed).

mod common;

use common::Cluster;
use common::history::{Clients, Tally, check_linearizable};
use common::hostile::{ClientDatagram, HostileProxy, Hostility};
use nix::sys::signal::Signal;
use raft_host::{ClusterKey, KvOp};
use raft_tests::wait::poll_until;
use raft_udp::client::{query_status, transfer_leader};
use raft_udp::packet::{self, ClientOp, NodeStatus, Packet, SessionRequest};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Deadline of every wait (a liveness limit, generous for a loaded machine).
const WAIT: Duration = Duration::from_secs(20);
/// Between elections: every peer datagram copied to the third node, old
/// ones replayed (2 sends per replay), a client datagram replayed every 20 ms.
const STEADY: Hostility = Hostility { copy: true, peer_replays_per_ms: 1, client_replay_every_ms: 20 };
/// While an election is forced: more of it.
const ELECTION: Hostility = Hostility { copy: true, peer_replays_per_ms: 4, client_replay_every_ms: 5 };
/// Writes each election must be followed by.
const WRITES_AFTER_ELECTION: usize = 50;
/// The elections forced, in order.
const SCHEDULE: [Force; 7] =
    [Force::Transfer, Force::Pause, Force::Kill, Force::Transfer, Force::Pause, Force::Kill, Force::Transfer];

fn key_of(c: &Cluster) -> ClusterKey {
    raft_host::secure::KeyFile::parse(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap().key
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// What the status watcher saw.
#[derive(Debug, Default)]
struct Seen {
    /// Status rounds completed.
    rounds: u64,
    /// Term -> every node that said it led that term, or that a node named
    /// as the leader of that term.
    leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// Two leaders of one term, as first seen.
    conflicts: Vec<String>,
}

impl Seen {
    fn observe(&mut self, answers: &[Option<NodeStatus>]) {
        self.rounds += 1;
        for s in answers.iter().flatten() {
            let claims = (s.role == "leader").then_some(s.id).into_iter().chain(s.leader);
            for leader in claims {
                let set = self.leaders.entry(s.term).or_default();
                set.insert(leader);
                if set.len() > 1 {
                    let what = format!("term {}: leaders {set:?} (node {} said {s:?})", s.term, s.id);
                    self.conflicts.push(what);
                }
            }
        }
    }
}

/// Polls every node's status until stopped (what `status --json` prints,
/// asked for in-process so that a round takes about a millisecond), and
/// records who leads each term.
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(nodes: Vec<SocketAddr>, key: ClusterKey) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stopped, record) = (stop.clone(), seen.clone());
        let rt = runtime();
        let thread = std::thread::spawn(move || {
            rt.block_on(async {
                while !stopped.load(Ordering::Relaxed) {
                    let answers = query_status(&nodes, &key, Duration::from_millis(250)).await.unwrap_or_default();
                    record.lock().unwrap().observe(&answers);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        });
        Watcher { stop, seen, thread: Some(thread) }
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The agreed leader and its term.
fn leader_term(c: &Cluster, among: &[usize]) -> (usize, u64) {
    let l = c.wait_leader_among(among, WAIT);
    let st = c.status();
    let term = st.iter().find(|(i, _)| *i == l).map(|(_, v)| v["term"].as_u64().unwrap());
    (l, term.unwrap_or_else(|| panic!("leader {} silent: {st:?}", l + 1)))
}

#[derive(Clone, Copy, Debug)]
enum Force {
    /// `transfer-leader` to the next node.
    Transfer,
    /// SIGSTOP the leader until the others elect one, then SIGCONT.
    Pause,
    /// SIGKILL the leader, restart it once the others elected one.
    Kill,
}

/// Forces one election in a way; returns the node that won it. Every node
/// is running again when it returns.
fn force(c: &mut Cluster, key: &ClusterKey, how: Force, old: usize) -> usize {
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    match how {
        Force::Transfer => {
            let to = others[0];
            let done = runtime().block_on(transfer_leader(&c.addrs, key, to as u64 + 1, WAIT));
            let done = done.unwrap_or_else(|e| panic!("transfer to node {}: {e}", to + 1));
            assert_eq!(done.leader, to as u64 + 1);
            to
        }
        Force::Pause => {
            c.proc(old).signal(Signal::SIGSTOP);
            let elected = c.wait_leader_among(&others, WAIT);
            c.proc(old).signal(Signal::SIGCONT);
            elected
        }
        Force::Kill => {
            c.kill9(old);
            let elected = c.wait_leader_among(&others, WAIT);
            c.start(old);
            elected
        }
    }
}

/// A client's request carrying a write (put, delete, cas) in a session.
fn is_write(key: &ClusterKey, d: &ClientDatagram) -> bool {
    let Ok((_, payload)) = key.open(&d.bytes) else { return false };
    matches!(
        packet::decode(payload),
        Ok(Packet::SessionRequest(SessionRequest { op: ClientOp::Kv(op), .. })) if !matches!(op, KvOp::Get { .. })
    )
}

/// Every node's status (`status --json`), by node index, once all answer.
fn all_status(c: &Cluster) -> Vec<Value> {
    poll_until(WAIT, Duration::from_millis(100), "every node to answer", || {
        let mut st = c.status();
        st.sort_by_key(|(i, _)| *i);
        if st.len() == 3 { Ok(st.into_iter().map(|(_, v)| v).collect()) } else { Err(format!("{st:?}")) }
    })
}

/// Once no entry is being added or applied: every node's status, and its
/// (last_log_index, last_applied), the same on every node.
fn quiet(c: &Cluster) -> (Vec<Value>, Vec<(u64, u64)>) {
    poll_until(WAIT, Duration::from_millis(100), "every node to hold and apply the same log", || {
        let st = all_status(c);
        let field = |v: &Value, f: &str| v[f].as_u64().unwrap();
        let idx: Vec<(u64, u64)> = st.iter().map(|v| (field(v, "last_log_index"), field(v, "last_applied"))).collect();
        let settled = st.iter().all(|v| field(v, "commit_index") == field(v, "last_log_index"))
            && idx.iter().all(|x| x.0 == x.1 && *x == idx[0]);
        if settled { Ok((st, idx)) } else { Err(format!("{idx:?}")) }
    })
}

/// The sum of a node's dropped-datagram counts named `kinds`.
fn dropped(v: &Value, kinds: &[&str]) -> u64 {
    kinds.iter().map(|k| v["dropped"][k].as_u64().unwrap()).sum()
}

#[test]
fn a_replaying_copying_proxy_during_elections_breaks_nothing() {
    let started = Instant::now();
    let seed =
        std::env::var("RAFT_UDP_PROXY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(raft_udp::random_u64);
    eprintln!("proxy seed {seed} (RAFT_UDP_PROXY_SEED={seed} to use it again)");
    let addrs = common::free_addrs(3);
    let proxy = HostileProxy::start(&addrs, seed);
    let mut c = Cluster::with_routes(addrs.clone(), proxy.routes());
    c.start_all();
    let (mut leader, mut term) = leader_term(&c, &[0, 1, 2]);
    let key = key_of(&c);
    let watcher = Watcher::start(addrs.clone(), key.clone());
    proxy.set(STEADY);
    // The clients know the proxy's addresses only.
    let clients = Clients::start(proxy.addrs.clone(), key.clone(), 3, Duration::from_millis(3000));
    let progress = |since: u64, what: &str| {
        poll_until(WAIT, Duration::from_millis(50), what, || {
            let n = clients.writes_acked_since(since);
            if n >= WRITES_AFTER_ELECTION { Ok(()) } else { Err(format!("{n} writes acknowledged")) }
        })
    };
    progress(0, "writes before the first election");

    // Elections, each under heavier replays, each followed by more writes.
    let mut forced = Vec::new();
    for how in SCHEDULE {
        proxy.set(ELECTION);
        let elected = force(&mut c, &key, how, leader);
        let (new, new_term) = leader_term(&c, &[0, 1, 2]);
        proxy.set(STEADY);
        assert!(
            elected != leader && new_term > term,
            "{how:?}: node {} term {term} -> node {} term {new_term}",
            leader + 1,
            elected + 1
        );
        forced.push(format!("{how:?}: node {} (term {term}) -> node {} (term {new_term})", leader + 1, new + 1));
        (leader, term) = (new, new_term);
        progress(clients.now(), &format!("writes after {how:?}"));
    }
    proxy.set(Hostility { client_replay_every_ms: 0, ..STEADY });
    let records = clients.finish();
    let seen = watcher.finish();

    // Replayed client requests add no log entry, and yet they reached the
    // nodes and were answered.
    let (mid_status, before) = quiet(&c);
    let captured = proxy.client_datagrams();
    let writes: Vec<&ClientDatagram> = captured.iter().filter(|d| is_write(&key, d)).collect();
    let to_leader = writes.iter().filter(|d| d.node == leader).count();
    assert!(to_leader > 0, "no captured write was sent to the leader, node {}", leader + 1);
    let (replies_before, replayed_before) = (proxy.stats().client_replies, proxy.stats().client_replayed);
    for (n, d) in captured.iter().enumerate() {
        for to in 0..3 {
            proxy.replay_client(d, to);
        }
        if n % 8 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let last = std::cell::Cell::new(u64::MAX);
    poll_until(WAIT, Duration::from_millis(300), "answers to the replays to stop coming", || {
        let now = proxy.stats().client_replies;
        if now > replies_before && now == last.replace(now) { Ok(()) } else { Err(format!("{now} replies")) }
    });
    let (_, after) = quiet(&c);
    let replayed = proxy.stats().client_replayed - replayed_before;
    let answered = proxy.stats().client_replies - replies_before;
    eprintln!(
        "replayed {replayed} client datagrams ({} writes, {to_leader} of them to the leader): {answered} answers; \
         (last log, applied) per node {before:?} -> {after:?}",
        writes.len()
    );
    assert_eq!(after, before, "replayed client requests added log entries");

    // No term had two leaders; elections happened.
    eprintln!("status rounds {}; leaders by term {:?}", seen.rounds, seen.leaders);
    assert!(seen.conflicts.is_empty(), "two leaders in one term: {:?}", seen.conflicts);
    assert!(seen.leaders.len() > forced.len(), "the watcher saw too few terms: {:?}", seen.leaders);

    // The history is linearizable.
    let Tally { ok, unknown, failed, .. } = check_linearizable(records, 0);
    eprintln!("history: {ok} ok, {unknown} unknown, {failed} failed");
    assert!(ok >= 50, "too little completed: {ok} ok, {unknown} unknown, {failed} failed");

    // The proxy attacked, and every node counted what it dropped since the
    // elections: replays (refused by its window, or of a session it no
    // longer holds) and copies or replays meant for another node.
    let stats = proxy.stats();
    eprintln!("elections forced: {forced:#?}");
    eprintln!("proxy: {stats:?}");
    assert!(stats.peer_copied > 0 && stats.peer_replayed > 0 && stats.client_replayed > 0, "{stats:?}");
    let end_status = all_status(&c);
    for (i, (mid, end)) in mid_status.iter().zip(&end_status).enumerate() {
        eprintln!("node {} dropped: {}", i + 1, end["dropped"]);
        for kinds in [&["replayed", "stale_session"][..], &["bad_frame"]] {
            assert!(
                dropped(end, kinds) > dropped(mid, kinds),
                "node {}: {kinds:?} did not grow: {mid} -> {end}",
                i + 1
            );
        }
    }
    eprintln!("run time {:?}", started.elapsed());
    drop(c);
    drop(proxy);
}
