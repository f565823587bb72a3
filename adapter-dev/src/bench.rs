//! The `bench` example: throughput and latency of a 3-node cluster on
//! loopback with fsync on. For each proposer count N, N concurrent
//! proposers send puts to the leader for the given seconds.
//!
//! First it measures the floor of one durable write by a proposer in the
//! leader's process: `max(leader fdatasync, leader↔follower round trip +
//! follower fdatasync)` = round trip + fdatasync, each the median of 300
//! samples. The round trip is an 8-byte ping-pong over a loopback TCP
//! connection of the same runtime (`TCP_NODELAY`, as the transport's);
//! fdatasync is [`raft_host::storage::probe`] in the nodes' data directory.
//! Each row's `p50/floor` compares with it.

use clap::Parser;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use raft_core::{Config, NodeId};
use raft_host::kv::{KvCommand, KvOp, encode_command};
use raft_host::secure::{Incarnation, KeyFile};
use raft_host::storage::probe::{self, median};
use raft_host::{ClusterKey, KvStore};
use raft_net::{Handle, NodeConfig, Runtime};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Throughput and latency of a local 3-node cluster with fsync on.
#[derive(Debug, Parser)]
#[command(name = "bench")]
pub struct Args {
    /// Seconds per proposer count.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Proposer counts to run, one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,64", value_parser = clap::value_parser!(u64).range(1..))]
    pub proposers: Vec<u64>,
    /// Where the temporary data directories go (default: the system's temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Samples per part of the floor.
const FLOOR_SAMPLES: usize = 300;

/// Round trips of 8 bytes over a loopback TCP connection on `rt`.
async fn tcp_round_trips<R: Runtime>(rt: &R) -> std::io::Result<Vec<Duration>> {
    let listener = rt.tcp_bind("127.0.0.1:0".parse().expect("an address")).await?;
    let addr = R::tcp_local_addr(&listener)?;
    rt.spawn(async move {
        let Ok(mut s) = R::tcp_accept(&listener).await else { return };
        let mut buf = [0u8; 8];
        while s.read_exact(&mut buf).await.is_ok() && s.write_all(&buf).await.is_ok() {}
    });
    let mut s = rt.tcp_connect(addr).await?;
    let mut buf = [0u8; 8];
    let mut samples = Vec::with_capacity(FLOOR_SAMPLES);
    for i in 0..FLOOR_SAMPLES as u64 {
        let started = Instant::now();
        s.write_all(&i.to_le_bytes()).await?;
        s.read_exact(&mut buf).await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// The floor: (total, round trip, fdatasync).
async fn floor<R: Runtime>(rt: &R, dir: &std::path::Path, record_bytes: usize) -> Result<[Duration; 3], String> {
    let rtt = median(tcp_round_trips(rt).await.map_err(|e| format!("floor probe: loopback TCP: {e}"))?);
    let dir = dir.to_path_buf();
    let synced = rt
        .unblock(move || probe::fdatasync_samples(&dir, record_bytes, FLOOR_SAMPLES))
        .await
        .ok_or("floor probe: the runtime refused blocking work")?
        .map_err(|e| format!("floor probe: {e}"))?;
    let fdatasync = median(synced);
    Ok([rtt + fdatasync, rtt, fdatasync])
}

/// Three free loopback addresses (bound and released: a tiny race, fine for a benchmark).
fn free_addrs() -> Vec<SocketAddr> {
    let ls: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    ls.iter().map(|l| l.local_addr().expect("addr")).collect()
}

fn node_config(id: u64, addrs: &[SocketAddr], dir: &std::path::Path) -> NodeConfig {
    let raft = Config::new(NodeId(id), (1..=3).map(NodeId));
    let peers = (1..=3u64).filter(|&p| p != id).map(|p| (NodeId(p), addrs[p as usize - 1]));
    NodeConfig::new(
        raft,
        dir.join(id.to_string()),
        addrs[id as usize - 1],
        peers,
        KeyFile::new(ClusterKey::from_bytes([0x5A; 32]), Incarnation::from_bytes([0x5B; 16])),
    )
}

/// Proposer `p`'s `seq`-th command: a 16-byte-ish put on its own key.
fn command(run: u64, p: u64, seq: u64) -> Vec<u8> {
    let op = KvOp::put(format!("key-{p}"), format!("value-{seq}"));
    encode_command(&KvCommand { client: run * 1_000_000 + p, seq, op })
}

/// One proposer's latencies and error count.
type Tally = (Vec<Duration>, u64);

fn report(adapter: &str, proposers: u64, elapsed: Duration, mut lat: Vec<Duration>, errors: u64, floor: Duration) {
    lat.sort();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<8} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7}",
        adapter,
        proposers,
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        pct(0.50).as_secs_f64() / floor.as_secs_f64().max(1e-9),
        ms(pct(0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        errors
    );
}

/// `n` proposers spawned on `rt` against `leader` until `until`.
async fn measure<R: Runtime>(rt: &R, leader: &Handle<KvStore>, run: u64, n: u64, until: Instant) -> Tally {
    let (tx, rx) = async_channel::unbounded::<Tally>();
    for p in 0..n {
        let (leader, tx) = (leader.clone(), tx.clone());
        rt.spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let mut seq = 0;
            while Instant::now() < until {
                seq += 1;
                let t = Instant::now();
                match leader.propose_bytes(command(run, p, seq)).await {
                    Ok(Ok(_)) => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            let _ = tx.send((lat, errors)).await;
        });
    }
    drop(tx);
    let (mut lat, mut errors) = (Vec::new(), 0);
    while let Ok((l, e)) = rx.recv().await {
        lat.extend(l);
        errors += e;
    }
    (lat, errors)
}

async fn run<R: Runtime>(rt: R, adapter: &str, args: Args) -> Result<(), String> {
    let base = args.dir.unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let addrs = free_addrs();
    let mut nodes: Vec<Handle<KvStore>> = Vec::new();
    for id in 1..=3u64 {
        let config = node_config(id, &addrs, dir.path());
        let node = raft_net::Node::start(rt.clone(), config, KvStore::new()).await.map_err(|e| e.to_string())?;
        nodes.push(node);
    }
    let leader_id = nodes[0].role_watch().wait_for(|r| r.leader.is_some()).await.and_then(|r| r.leader);
    let leader = nodes.iter().find(|n| Some(n.id()) == leader_id).ok_or("no leader was elected")?.clone();
    for seq in 1..=200 {
        leader
            .propose_bytes(command(0, 0, seq))
            .await
            .map_err(|e| format!("warm-up: {e}"))?
            .map_err(|e| e.to_string())?;
    }
    let [floor, rtt, fdatasync] = floor(&rt, dir.path(), command(0, 0, 0).len()).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "floor {:.3} ms = loopback TCP round trip {:.3} ms + fdatasync {:.3} ms",
        ms(floor),
        ms(rtt),
        ms(fdatasync)
    );
    println!(
        "{:<8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "adapter", "proposers", "ops/s", "p50 ms", "p50/floor", "p99 ms", "max ms", "errors"
    );
    for (run, &n) in args.proposers.iter().enumerate() {
        let start = Instant::now();
        let (lat, errors) = measure(&rt, &leader, run as u64 + 1, n, start + Duration::from_secs_f64(args.secs)).await;
        report(adapter, n, start.elapsed(), lat, errors, floor);
    }
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// The example's whole program on runtime `rt`, reporting under the name
/// `adapter`: parses the command line (clap: usage errors exit 2), then
/// prints one table row per proposer count.
pub async fn main<R: Runtime>(rt: R, adapter: &str) -> ExitCode {
    let args = Args::parse();
    if !(args.secs > 0.0 && args.secs.is_finite()) {
        return crate::exit(Err(format!("--secs {}: must be a positive number", args.secs)));
    }
    crate::exit(run(rt, adapter, args).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_refused() {
        let a = Args::try_parse_from(["bench", "--proposers", "1,8,64", "--secs", "2"]).unwrap();
        assert_eq!(a.proposers, vec![1, 8, 64]);
        assert_eq!(Args::try_parse_from(["bench"]).unwrap().proposers, vec![1, 64]);
        assert!(Args::try_parse_from(["bench", "--proposers", "0"]).is_err());
        assert!(Args::try_parse_from(["bench", "--proposers", "x"]).is_err());
        assert!(Args::try_parse_from(["bench", "--bogus"]).is_err());
    }
}
