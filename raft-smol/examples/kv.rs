//! One node of the replicated key-value store, on raft-smol (no tokio);
//! commands on stdin. `--help` lists the flags; a mixed cluster with
//! raft-tokio's `tokio-kv` works (one wire format).
//!
//! ```text
//! cargo run -p raft-smol --example smol-kv -- --id 2 --listen 127.0.0.1:7002 \
//!     --peer 1=127.0.0.1:7001 --peer 3=127.0.0.1:7003 --data-dir /tmp/raft-demo/2 --key-file /tmp/raft-demo/key
//! ```
//!
//! The program itself is runtime-independent (`raft_adapter_dev::kv`, shared
//! with raft-tokio's `tokio-kv`); this file only picks the runtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    smol::block_on(raft_adapter_dev::kv::main(raft_smol::Smol))
}
