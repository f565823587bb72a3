//! Throughput and latency of a local 3-node raft-smol cluster with fsync
//! on: `cargo run --release -p raft-smol --example smol-bench -- --help`.
//! The nodes run on smol's global executor (`SMOL_THREADS`, default 1).
//! The measuring program is runtime-independent (`raft_adapter_dev::bench`,
//! shared with raft-tokio's `tokio-bench`); this file only picks the runtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    smol::block_on(raft_adapter_dev::bench::main(raft_smol::Smol, "smol"))
}
