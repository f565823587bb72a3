//! Throughput and latency of a local 3-node raft-tokio cluster with fsync
//! on: `cargo run --release -p raft-tokio --example tokio-bench -- --help`.

use raft_tokio::{Handle, Node, NodeConfig};
use std::process::ExitCode;

#[path = "support/bench_util.rs"]
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
    bench_util::run(&args, "tokio", |proposer| {
        let task = tokio::spawn(proposer);
        async move { task.await.expect("proposer") }
    })
    .await;
    ExitCode::SUCCESS
}
