//! Throughput and latency of a local 3-node raft-tokio cluster with fsync
//! on: `cargo run --release -p raft-tokio --example tokio-bench -- --help`.

use raft_host::KvStore;
use raft_tokio::{Handle, Node, NodeConfig};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[path = "../../raft-smol/examples/support/bench_util.rs"]
mod bench_util;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match bench_util::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{}", bench_util::USAGE);
            return ExitCode::FAILURE;
        }
    };
    let dir = tempfile::tempdir_in(&args.dir).expect("temporary directory");
    let addrs = bench_util::free_addrs();
    let mut nodes: Vec<Handle<KvStore>> = Vec::new();
    for id in 1..=3u64 {
        let config = NodeConfig::new(
            bench_util::raft_config(id),
            dir.path().join(id.to_string()),
            addrs[id as usize - 1],
            bench_util::peers(id, &addrs),
            bench_util::key(),
        );
        nodes.push(Node::start(config, KvStore::new()).await.expect("start"));
    }
    let leader_id =
        nodes[0].role_watch().wait_for(|r| r.leader.is_some()).await.and_then(|r| r.leader).expect("leader");
    let leader = nodes.iter().find(|n| n.id() == leader_id).expect("leader handle").clone();
    for seq in 1..=200 {
        leader.propose(bench_util::command(0, 0, seq)).await.expect("warm-up").expect("applied");
    }
    bench_util::header();
    for (run, &n) in args.proposers.iter().enumerate() {
        let until = Instant::now() + Duration::from_secs_f64(args.secs);
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|p| {
                let leader = leader.clone();
                tokio::spawn(async move {
                    let (mut lat, mut errors) = (Vec::new(), 0u64);
                    let mut seq = 0;
                    while Instant::now() < until {
                        seq += 1;
                        let t = Instant::now();
                        match leader.propose(bench_util::command(run as u64 + 1, p, seq)).await {
                            Ok(Ok(_)) => lat.push(t.elapsed()),
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        let (mut lat, mut errors) = (Vec::new(), 0);
        for t in tasks {
            let (l, e) = t.await.expect("proposer");
            lat.extend(l);
            errors += e;
        }
        bench_util::report("tokio", n, start.elapsed(), lat, errors);
    }
    for node in nodes {
        node.shutdown().await;
    }
    ExitCode::SUCCESS
}
