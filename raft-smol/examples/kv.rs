//! One node of the replicated key-value store, on raft-smol.
//!
//! ```text
//! kv --gen-key FILE                       write a new cluster key and exit
//! kv --id N --listen ADDR --peer ID=ADDR... --data-dir DIR --key-file FILE [--cluster-id N]
//! ```
//!
//! Then type commands on stdin: `put KEY VALUE`, `get KEY`, `delete KEY`,
//! `cas KEY EXPECTED|- NEW`, `status`, `quit`. Commands go to this node; a
//! follower answers with the leader to ask instead. The flags and the frame
//! format are raft-tokio's: a cluster may mix both examples.

use raft_smol::{Handle, Node, NodeConfig, ProposeError, RoleWatch};
use std::process::ExitCode;

#[path = "support/kv_cli.rs"]
mod kv_cli;
use kv_cli::Options;

fn main() -> ExitCode {
    let opts = match kv_cli::options() {
        Ok(o) => o,
        Err(code) => return code,
    };
    kv_cli::exit(smol::block_on(run(opts)))
}

async fn run(o: Options) -> Result<(), String> {
    let node = kv_cli::start(&o).await?;
    let watcher = smol::spawn(kv_cli::print_roles(o.id, node.role_watch()));
    let (tx, lines) = smol::channel::unbounded();
    std::thread::spawn(move || kv_cli::read_stdin(|l| tx.try_send(l).is_ok()));
    kv_cli::serve(&node, &o, async || lines.recv().await.ok()).await;
    node.shutdown().await;
    watcher.await;
    println!("node {} stopped", o.id);
    Ok(())
}
