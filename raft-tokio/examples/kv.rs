//! One node of the replicated key-value store, on raft-tokio.
//!
//! ```text
//! kv --gen-key FILE                       write a new cluster key and exit
//! kv --id N --listen ADDR --peer ID=ADDR... --data-dir DIR --key-file FILE [--cluster-id N]
//! ```
//!
//! Then type commands on stdin: `put KEY VALUE`, `get KEY`, `delete KEY`,
//! `cas KEY EXPECTED|- NEW`, `status`, `quit`. Commands go to this node; a
//! follower answers with the leader to ask instead. Three terminals:
//!
//! ```text
//! cargo run -p raft-tokio --example tokio-kv -- --gen-key /tmp/raft-demo/key
//! cargo run -p raft-tokio --example tokio-kv -- --id 1 --listen 127.0.0.1:7001 \
//!     --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003 --data-dir /tmp/raft-demo/1 --key-file /tmp/raft-demo/key
//! # terminals 2 and 3: --id 2 / --id 3, with the other two as peers
//! ```

use raft_tokio::{Handle, Node, NodeConfig, ProposeError, RoleWatch};
use std::process::ExitCode;

#[path = "support/kv_cli.rs"]
mod kv_cli;
use kv_cli::Options;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let opts = match kv_cli::options() {
        Ok(o) => o,
        Err(code) => return code,
    };
    kv_cli::exit(run(opts).await)
}

async fn run(o: Options) -> Result<(), String> {
    let node = kv_cli::start(&o).await?;
    let watcher = tokio::spawn(kv_cli::print_roles(o.id, node.role_watch()));
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || kv_cli::read_stdin(|l| tx.send(l).is_ok()));
    kv_cli::serve(&node, &o, async || lines.recv().await).await;
    node.shutdown().await;
    let _ = watcher.await;
    println!("node {} stopped", o.id);
    Ok(())
}
