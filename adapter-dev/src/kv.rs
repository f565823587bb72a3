//! The `kv` example: one node of the replicated key-value store, commands
//! typed on stdin (`put KEY VALUE`, `get KEY`, `delete KEY`,
//! `cas KEY EXPECTED|- NEW`, `status`, `quit`). Commands go to this node; a
//! follower answers with the leader to ask instead.

use clap::Parser;
use raft_core::{Config, NodeId};
use raft_host::kv::{KvCommand, KvOp, KvOutput};
use raft_host::{ClusterKey, KvStore};
use raft_net::{Handle, NodeConfig, ProposeError, RoleWatch, Runtime};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// One node of the replicated key-value store (commands on stdin).
#[derive(Debug, Parser)]
#[command(
    name = "kv",
    after_help = "stdin: put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED|- NEW | status | quit"
)]
pub struct Args {
    /// Write a new cluster key to FILE and exit.
    #[arg(long, value_name = "FILE", exclusive = true)]
    pub gen_key: Option<PathBuf>,
    /// This node's id (not 0).
    #[arg(long, required_unless_present = "gen_key", value_parser = clap::value_parser!(u64).range(1..))]
    pub id: Option<u64>,
    /// The address to listen on for peers.
    #[arg(long, required_unless_present = "gen_key")]
    pub listen: Option<SocketAddr>,
    /// Another member: ID=ADDR (repeat for each).
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = parse_peer)]
    pub peers: Vec<(u64, SocketAddr)>,
    /// The node's data directory (created if missing).
    #[arg(long, required_unless_present = "gen_key")]
    pub data_dir: Option<PathBuf>,
    /// The cluster key file (see --gen-key).
    #[arg(long, required_unless_present = "gen_key")]
    pub key_file: Option<PathBuf>,
    /// The cluster id every member shares.
    #[arg(long, default_value_t = 1)]
    pub cluster_id: u64,
}

fn parse_peer(s: &str) -> Result<(u64, SocketAddr), String> {
    let (id, addr) = s.split_once('=').ok_or("expected ID=ADDR")?;
    let id = id.parse::<u64>().map_err(|e| format!("id {id:?}: {e}"))?;
    let addr = addr.parse::<SocketAddr>().map_err(|e| format!("address {addr:?}: {e}"))?;
    Ok((id, addr))
}

/// A node to run, from [`Args`].
#[derive(Debug)]
struct Options {
    id: u64,
    listen: SocketAddr,
    peers: BTreeMap<u64, SocketAddr>,
    data_dir: PathBuf,
    key: ClusterKey,
    cluster_id: u64,
}

fn gen_key(path: &PathBuf) -> Result<(), String> {
    let key = ClusterKey::generate().map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, key.to_hex() + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote a new cluster key to {}", path.display());
    Ok(())
}

impl Options {
    /// `None` for `--gen-key` (done here); clap has checked the required flags.
    fn from_args(a: Args) -> Result<Option<Options>, String> {
        if let Some(path) = &a.gen_key {
            gen_key(path)?;
            return Ok(None);
        }
        let (Some(id), Some(listen), Some(data_dir), Some(key_file)) = (a.id, a.listen, a.data_dir, a.key_file) else {
            return Err("--id, --listen, --data-dir and --key-file are required".into());
        };
        let text = std::fs::read_to_string(&key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
        let key = ClusterKey::from_hex(&text).map_err(|e| format!("{}: {e}", key_file.display()))?;
        let mut peers = BTreeMap::new();
        for (pid, addr) in a.peers {
            if pid == id || peers.insert(pid, addr).is_some() {
                return Err(format!("--peer {pid}: listed twice, or this node's own id"));
            }
        }
        Ok(Some(Options { id, listen, peers, data_dir, key, cluster_id: a.cluster_id }))
    }

    fn node_config(&self) -> NodeConfig {
        let members = std::iter::once(self.id).chain(self.peers.keys().copied()).map(NodeId);
        let raft = Config::new(NodeId(self.id), members);
        let peers = self.peers.iter().map(|(&p, &a)| (NodeId(p), a));
        let mut config = NodeConfig::new(raft, self.data_dir.clone(), self.listen, peers, self.key.clone());
        config.cluster_id = self.cluster_id;
        config
    }
}

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Op(KvOp),
    Status,
    Quit,
    Bad,
}

const COMMANDS: &str = "commands: put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED|- NEW | status | quit";

fn parse_line(line: &str) -> Option<Line> {
    let words: Vec<&str> = line.split_whitespace().collect();
    Some(match words.as_slice() {
        [] => return None,
        ["put", k, v] => Line::Op(KvOp::put(*k, *v)),
        ["get", k] => Line::Op(KvOp::get(*k)),
        ["delete", k] => Line::Op(KvOp::delete(*k)),
        ["cas", k, e, n] => Line::Op(KvOp::cas(*k, (*e != "-").then_some(*e), *n)),
        ["status"] => Line::Status,
        ["quit"] | ["exit"] => Line::Quit,
        _ => Line::Bad,
    })
}

/// A session id for this run of the client (unique enough for a demo).
fn client_id(node: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ node
}

async fn print_roles(id: u64, mut watch: RoleWatch) {
    while let Some(r) = watch.changed().await {
        println!("[node {id}] {:?} in term {}, leader {:?}", r.role, r.term, r.leader.map(|l| l.0));
    }
}

/// Runs the commands from `lines` on `node` until `quit` or the end of input.
async fn serve(node: &Handle<KvStore>, o: &Options, lines: async_channel::Receiver<Line>) {
    let client = client_id(o.id);
    let mut seq = 0;
    while let Ok(line) = lines.recv().await {
        let op = match line {
            Line::Quit => break,
            Line::Status => {
                println!("{:#?}", node.status());
                continue;
            }
            Line::Bad => {
                println!("? {COMMANDS}");
                continue;
            }
            Line::Op(op) => op,
        };
        seq += 1;
        // Gets are linearizable reads (no log write); the rest are proposals.
        let answer = match op {
            KvOp::Get { key } => node.read(move |kv| Ok(KvOutput::get(kv.get_local(&key)))).await,
            op => node.propose(&KvCommand { client, seq, op }).await,
        };
        match answer {
            Ok(Ok(out)) => println!("{out}"),
            Ok(Err(e)) => println!("error: {e}"),
            Err(ProposeError::NotLeader { leader_hint: Some(l) }) => {
                let addr = o.peers.get(&l.0).map_or("?".into(), |a| a.to_string());
                println!("not the leader: ask node {l} ({addr})")
            }
            Err(e) => println!("failed: {e}"),
        }
    }
}

async fn run<R: Runtime>(rt: R, o: Options) -> Result<(), String> {
    let node = raft_net::Node::start(rt.clone(), o.node_config(), KvStore::new()).await.map_err(|e| e.to_string())?;
    println!("node {} listening on {}; {COMMANDS}", o.id, node.local_addr());
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let watch = node.role_watch();
    rt.spawn(async move {
        print_roles(o.id, watch).await;
        let _ = done_tx.send(()).await;
    });
    let (tx, lines) = async_channel::unbounded();
    // Stdin blocks: a plain thread reads it.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Some(l) = parse_line(&line)
                && tx.send_blocking(l).is_err()
            {
                return;
            }
        }
        let _ = tx.send_blocking(Line::Quit);
    });
    serve(&node, &o, lines).await;
    node.shutdown().await;
    let _ = done_rx.recv().await;
    println!("node {} stopped", o.id);
    Ok(())
}

/// The example's whole program on runtime `rt`: parses the command line
/// (clap: usage errors exit 2), then runs the node until `quit`.
pub async fn main<R: Runtime>(rt: R) -> ExitCode {
    let args = Args::parse();
    match Options::from_args(args) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(o)) => crate::exit(run(rt, o).await),
        Err(e) => crate::exit(Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_parse_and_bad_flags_are_refused() {
        let a = Args::try_parse_from([
            "kv",
            "--id",
            "1",
            "--listen",
            "127.0.0.1:7001",
            "--peer",
            "2=127.0.0.1:7002",
            "--data-dir",
            "/tmp/d",
            "--key-file",
            "/tmp/k",
        ])
        .unwrap();
        assert_eq!(a.id, Some(1));
        assert_eq!(a.peers, vec![(2, "127.0.0.1:7002".parse().unwrap())]);
        assert!(Args::try_parse_from(["kv", "--gen-key", "/tmp/k"]).unwrap().id.is_none());
        for bad in [
            &["kv", "--id", "1"][..],
            &["kv", "--gen-key", "/tmp/k", "--id", "1"],
            &["kv", "--id", "0", "--listen", "127.0.0.1:1", "--data-dir", "d", "--key-file", "k"],
            &["kv", "--id", "1", "--listen", "127.0.0.1:1", "--data-dir", "d", "--key-file", "k", "--peer", "2"],
            &["kv", "--id", "1", "--listen", "nowhere", "--data-dir", "d", "--key-file", "k"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn stdin_lines_use_the_cli_words() {
        assert_eq!(parse_line("put a 1"), Some(Line::Op(KvOp::put("a", "1"))));
        assert_eq!(parse_line("delete a"), Some(Line::Op(KvOp::delete("a"))));
        assert_eq!(parse_line("cas a - 2"), Some(Line::Op(KvOp::cas("a", None, "2"))));
        assert_eq!(parse_line("del a"), Some(Line::Bad));
        assert_eq!(parse_line("   "), None);
        assert_eq!(parse_line("quit"), Some(Line::Quit));
    }
}
