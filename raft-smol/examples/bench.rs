//! Throughput and latency of a local 3-node raft-smol cluster with fsync
//! on: `cargo run --release -p raft-smol --example smol-bench -- --help`.
//! The nodes run on smol's global executor (`SMOL_THREADS`, default 1).

use raft_smol::{Handle, Node, NodeConfig};
use std::process::ExitCode;

#[path = "support/bench_util.rs"]
mod bench_util;

fn main() -> ExitCode {
    let args = match bench_util::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{}", bench_util::USAGE);
            return ExitCode::FAILURE;
        }
    };
    smol::block_on(bench_util::run(&args, "smol", smol::spawn));
    ExitCode::SUCCESS
}
