//! The `bench` example's runtime-independent part (this crate's copy; the
//! other runtime crate keeps its own): arguments, cluster layout, the measuring loop and reporting. It
//! runs on the example's adapter, which it names as
//! `super::{Handle, Node, NodeConfig}`; only spawning is the example's own.

use super::{Handle, Node, NodeConfig};
use raft_core::{Config, NodeId};
use raft_host::kv::{KvCommand, KvOp, encode_command};
use raft_host::secure::{Incarnation, KeyFile};
use raft_host::{ClusterKey, KvStore};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub(crate) const USAGE: &str = "\
usage: bench [--secs S] [--proposers N,N...] [--dir DIR]
  A 3-node cluster on loopback, fsync on (data in a temporary directory
  under DIR, default the system temp dir): for each N, N concurrent
  proposers send puts to the leader for S seconds (default 5; N default 1,64).";

pub(crate) struct Args {
    pub(crate) secs: f64,
    pub(crate) proposers: Vec<usize>,
    pub(crate) dir: PathBuf,
}

pub(crate) fn parse() -> Result<Args, String> {
    let mut args = Args { secs: 5.0, proposers: vec![1, 64], dir: std::env::temp_dir() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--secs" => args.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--proposers" => {
                args.proposers = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--proposers: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--dir" => args.dir = PathBuf::from(value()?),
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Three free loopback addresses (bound and released: a tiny race, fine for a benchmark).
pub(crate) fn free_addrs() -> Vec<SocketAddr> {
    let ls: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    ls.iter().map(|l| l.local_addr().expect("addr")).collect()
}

pub(crate) fn raft_config(id: u64) -> Config {
    Config::new(NodeId(id), (1..=3).map(NodeId))
}

pub(crate) fn peers(id: u64, addrs: &[SocketAddr]) -> Vec<(NodeId, SocketAddr)> {
    (1..=3u64).filter(|&p| p != id).map(|p| (NodeId(p), addrs[p as usize - 1])).collect()
}

pub(crate) fn key() -> KeyFile {
    KeyFile::new(ClusterKey::from_bytes([0x5A; 32]), Incarnation::from_bytes([0x5B; 16]))
}

/// Proposer `p`'s `seq`-th command: a 16-byte-ish put on its own key.
pub(crate) fn command(run: u64, p: usize, seq: u64) -> Vec<u8> {
    let op = KvOp::put(format!("key-{p}"), format!("value-{seq}"));
    encode_command(&KvCommand { client: run * 1_000_000 + p as u64, seq, op })
}

pub(crate) fn header() {
    println!(
        "{:<8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "adapter", "proposers", "ops/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
}

pub(crate) fn report(adapter: &str, proposers: usize, elapsed: Duration, mut lat: Vec<Duration>, errors: u64) {
    lat.sort();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<8} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
        adapter,
        proposers,
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        errors
    );
}

/// One proposer's latencies and error count.
pub(crate) type Tally = (Vec<Duration>, u64);
/// A proposer, for the example to spawn on its runtime.
pub(crate) type Proposer = Pin<Box<dyn Future<Output = Tally> + Send>>;

/// Runs the benchmark on the example's adapter (`super::{Handle, Node,
/// NodeConfig}`): `spawn` starts a proposer on the runtime and returns the
/// future of its tally.
pub(crate) async fn run<J: Future<Output = Tally>>(args: &Args, adapter: &str, spawn: impl Fn(Proposer) -> J) {
    let dir = tempfile::tempdir_in(&args.dir).expect("temporary directory");
    let addrs = free_addrs();
    let mut nodes: Vec<Handle<KvStore>> = Vec::new();
    for id in 1..=3u64 {
        let config = NodeConfig::new(
            raft_config(id),
            dir.path().join(id.to_string()),
            addrs[id as usize - 1],
            peers(id, &addrs),
            key(),
        );
        nodes.push(Node::start(config, KvStore::new()).await.expect("start"));
    }
    let leader_id =
        nodes[0].role_watch().wait_for(|r| r.leader.is_some()).await.and_then(|r| r.leader).expect("leader");
    let leader = nodes.iter().find(|n| n.id() == leader_id).expect("leader handle").clone();
    for seq in 1..=200 {
        leader.propose_bytes(command(0, 0, seq)).await.expect("warm-up").expect("applied");
    }
    header();
    for (run, &n) in args.proposers.iter().enumerate() {
        let until = Instant::now() + Duration::from_secs_f64(args.secs);
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|p| {
                let leader = leader.clone();
                spawn(Box::pin(async move {
                    let (mut lat, mut errors) = (Vec::new(), 0u64);
                    let mut seq = 0;
                    while Instant::now() < until {
                        seq += 1;
                        let t = Instant::now();
                        match leader.propose_bytes(command(run as u64 + 1, p, seq)).await {
                            Ok(Ok(_)) => lat.push(t.elapsed()),
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                }))
            })
            .collect();
        let (mut lat, mut errors) = (Vec::new(), 0);
        for t in tasks {
            let (l, e) = t.await;
            lat.extend(l);
            errors += e;
        }
        report(adapter, n, start.elapsed(), lat, errors);
    }
    for node in nodes {
        node.shutdown().await;
    }
}
