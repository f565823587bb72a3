//! One node of the replicated key-value store, on raft-smol.
//!
//! ```text
//! kv --gen-key FILE                       write a new cluster key and exit
//! kv --id N --listen ADDR --peer ID=ADDR... --data-dir DIR --key-file FILE [--cluster-id N]
//! ```
//!
//! Then type commands on stdin: `put KEY VALUE`, `get KEY`, `del KEY`,
//! `cas KEY EXPECTED|- NEW`, `status`, `quit`. Commands go to this node; a
//! follower answers with the leader to ask instead. The flags and the frame
//! format are raft-tokio's: a cluster may mix both examples.

use raft_core::{Config, NodeId};
use raft_host::kv::{KvCommand, KvOp, encode_command};
use raft_host::{ClusterKey, KvStore};
use raft_smol::{Node, NodeConfig, ProposeError};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "support/kv_cli.rs"]
mod kv_cli;
use kv_cli::{Line, Options};

fn main() -> ExitCode {
    let opts = match kv_cli::parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}\n\n{}", kv_cli::USAGE);
            return ExitCode::FAILURE;
        }
    };
    match smol::block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: Options) -> Result<(), String> {
    let Options { id, listen, peers, data_dir, key, cluster_id } = o;
    let config = node_config(id, listen, &peers, data_dir, key, cluster_id);
    let node = Node::start(config, KvStore::new()).await.map_err(|e| e.to_string())?;
    println!("node {id} listening on {}; commands: put, get, del, cas, status, quit", node.local_addr());

    let mut watch = node.role_watch();
    let watcher = smol::spawn(async move {
        while let Some(r) = watch.changed().await {
            println!("[node {id}] {:?} in term {}, leader {:?}", r.role, r.term, r.leader.map(|l| l.0));
        }
    });

    let (tx, lines) = smol::channel::unbounded();
    std::thread::spawn(move || kv_cli::read_stdin(|l| tx.try_send(l).is_ok()));
    let client = kv_cli::client_id(id);
    let mut seq = 0;
    while let Ok(line) = lines.recv().await {
        match line {
            Line::Quit => break,
            Line::Status => println!("{:#?}", node.status()),
            Line::Bad(why) => println!("? {why}"),
            Line::Op(op) => {
                seq += 1;
                let get = matches!(op, KvOp::Get { .. });
                let cmd = encode_command(&KvCommand { client, seq, op });
                let answer = if get { node.read(cmd).await } else { node.propose(cmd).await };
                match answer {
                    Ok(Ok(out)) => println!("{out}"),
                    Ok(Err(e)) => println!("error: {e}"),
                    Err(ProposeError::NotLeader { leader_hint: Some(l) }) => {
                        println!(
                            "not the leader: ask node {l} ({})",
                            peers.get(&l.0).map_or("?".into(), |a| a.to_string())
                        )
                    }
                    Err(e) => println!("failed: {e}"),
                }
            }
        }
    }
    node.shutdown().await;
    watcher.await;
    println!("node {id} stopped");
    Ok(())
}

fn node_config(
    id: u64,
    listen: SocketAddr,
    peers: &BTreeMap<u64, SocketAddr>,
    data_dir: PathBuf,
    key: ClusterKey,
    cluster_id: u64,
) -> NodeConfig {
    let members = std::iter::once(id).chain(peers.keys().copied()).map(NodeId);
    let raft = Config::new(NodeId(id), members);
    let mut config = NodeConfig::new(raft, data_dir, listen, peers.iter().map(|(&p, &a)| (NodeId(p), a)), key);
    config.cluster_id = cluster_id;
    config
}
