//! Concurrent clients against three real nodes whose peer traffic goes
//! through a fault-injecting proxy (drops, delays, duplicates, partitions of
//! the leader and of a follower), with small datagrams so that messages are
//! fragmented. The history the clients observe must be linearizable.

mod common;

use common::Cluster;
use common::history::{Record, Tally, check_linearizable};
use common::proxy::Proxy;
use raft_host::{ClusterKey, KvOp, KvOutput};
use raft_udp::client::{Client, CommandOutcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 4;
const KEYS: [&str; 2] = ["x", "y"];

/// Operations before a client is replaced by a fresh one (new id). Fresh
/// clients also try nodes that an old one learnt to avoid, such as a
/// partitioned old leader; half of the clients know one node only (a
/// different one each time), as a client that reaches one node would.
const OPS_PER_CLIENT: u64 = 10;

async fn client_loop(
    addrs: Vec<std::net::SocketAddr>,
    key: ClusterKey,
    n: u64,
    t0: Instant,
    log: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
) {
    let connect = |generation: u64| {
        let servers = if n.is_multiple_of(2) { addrs.clone() } else { vec![addrs[((n + generation) % 3) as usize]] };
        Client::connect(servers, key.clone(), Duration::from_millis(1500))
    };
    let mut client = connect(0).await.unwrap();
    let mut rng = 0x1234_5678_9ABC_DEF1_u64.wrapping_mul(n + 1);
    let mut roll = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    // Long values: every entry takes more than one 300-byte datagram.
    let pad = "p".repeat(300);
    let mut seen: Vec<Option<String>> = vec![None; KEYS.len()];
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        if i.is_multiple_of(OPS_PER_CLIENT) {
            client = connect(i / OPS_PER_CLIENT).await.unwrap();
        }
        let k = roll(KEYS.len() as u64) as usize;
        let fresh = format!("c{n}-{i}-{pad}");
        let op = match roll(10) {
            0..=3 => KvOp::put(KEYS[k], fresh),
            4..=6 => KvOp::get(KEYS[k]),
            _ => KvOp::cas(KEYS[k], seen[k].as_deref(), fresh),
        };
        let call = t0.elapsed().as_micros() as u64;
        let outcome = client.execute(op.clone()).await;
        let ret = t0.elapsed().as_micros() as u64;
        match &outcome {
            CommandOutcome::Ok(KvOutput::Get(v)) | CommandOutcome::Ok(KvOutput::Cas { current: v, .. }) => {
                seen[k] = v.clone()
            }
            _ => {}
        }
        log.lock().unwrap().push(Record { client: n, op, call, outcome, ret });
    }
}

#[test]
fn concurrent_clients_through_a_faulty_network_see_a_linearizable_store() {
    linearizable_through_faults(&[]);
}

/// The same with lease reads: the leader answers gets from its lease, and
/// one isolated keeps its lease for a while (the nodes share one clock, so
/// the drift bound holds).
#[test]
fn lease_reads_through_a_faulty_network_stay_linearizable() {
    linearizable_through_faults(&["--read-mode", "lease", "--max-clock-drift-ms", "50"]);
}

fn linearizable_through_faults(flags: &[&str]) {
    let addrs = common::free_addrs(3);
    let proxy = Proxy::start(&addrs);
    let mut c = Cluster::with_routes(addrs.clone(), proxy.routes.clone());
    c.extra.extend(["--max-datagram".into(), "300".into()]);
    c.extra.extend(flags.iter().map(|f| f.to_string()));
    c.start_all();
    c.wait_leader(Duration::from_secs(15));
    proxy.set(5, 5, 15);

    let key = raft_host::secure::KeyFile::parse(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap().key;
    let log = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = std::thread::spawn({
        let (log, stop) = (log.clone(), stop.clone());
        move || {
            rt.block_on(async {
                let mut tasks = Vec::new();
                for n in 0..CLIENTS {
                    let task = client_loop(addrs.clone(), key.clone(), n, t0, log.clone(), stop.clone());
                    tasks.push(tokio::spawn(task));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        }
    });

    // Partition the leader, heal; partition a follower, heal.
    std::thread::sleep(Duration::from_millis(1500));
    let leader = c.wait_leader(Duration::from_secs(10));
    proxy.isolate(leader);
    std::thread::sleep(Duration::from_millis(2000));
    proxy.heal();
    std::thread::sleep(Duration::from_millis(1500));
    let leader = c.wait_leader(Duration::from_secs(10));
    proxy.isolate((leader + 1) % 3);
    std::thread::sleep(Duration::from_millis(1500));
    proxy.heal();
    let healed = t0.elapsed().as_micros() as u64;
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    clients.join().unwrap();

    let records = std::mem::take(&mut *log.lock().unwrap());
    let Tally { ok, unknown, failed, ok_after: ok_late } = check_linearizable(records, healed);
    eprintln!("history: {ok} ok, {unknown} unknown, {failed} failed");
    assert!(ok >= 100, "too few operations completed: {ok} ok, {unknown} unknown, {failed} failed");
    assert!(ok_late > 0, "nothing completed after the last partition healed");
    // The faults were real: messages were dropped and fragments went missing.
    let st = c.status();
    let incomplete: u64 = st.iter().map(|(_, v)| v["dropped"]["incomplete"].as_u64().unwrap()).sum();
    eprintln!("fragmented messages lost in transit: {incomplete}");
    drop(c);
    drop(proxy);
}
