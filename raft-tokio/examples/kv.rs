//! One node of the replicated key-value store, on raft-tokio; commands on
//! stdin (`put KEY VALUE`, `get KEY`, `delete KEY`, `cas KEY EXPECTED|- NEW`,
//! `status`, `quit`). `--help` lists the flags. Three terminals:
//!
//! ```text
//! cargo run -p raft-tokio --example tokio-kv -- --gen-key /tmp/raft-demo/key
//! cargo run -p raft-tokio --example tokio-kv -- --id 1 --listen 127.0.0.1:7001 \
//!     --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003 --data-dir /tmp/raft-demo/1 --key-file /tmp/raft-demo/key
//! # terminals 2 and 3: --id 2 / --id 3, with the other two as peers
//! ```
//!
//! The program itself is runtime-independent (`raft_adapter_dev::kv`, shared
//! with raft-smol's `smol-kv`); this file only picks the runtime.

use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    raft_adapter_dev::kv::main(raft_tokio::Tokio::current()).await
}
