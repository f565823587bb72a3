//! Throughput and latency of a local 3-node raft-tokio cluster with fsync
//! on: `cargo run --release -p raft-tokio --example tokio-bench -- --help`.
//! The measuring program is runtime-independent (`raft_adapter_dev::bench`,
//! shared with raft-smol's `smol-bench`); this file only picks the runtime.

use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    raft_adapter_dev::bench::main(raft_tokio::Tokio::current(), "tokio").await
}
