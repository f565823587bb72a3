//! The `kv` example's runtime-independent part (this crate's copy; the
//! other runtime crate keeps its own): command-line parsing, stdin commands, starting the node and
//! serving the commands. It runs on the example's adapter, which
//! it names as `super::{Handle, Node, NodeConfig, ProposeError, RoleWatch}`;
//! only spawning and the stdin channel are the example's own.

use super::{Handle, Node, NodeConfig, ProposeError, RoleWatch};
use raft_core::{Config, NodeId};
use raft_host::KvStore;
use raft_host::kv::{KvCommand, KvOp, KvOutput};
use raft_host::secure::{KeyFile, OsEntropy};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) const USAGE: &str = "\
usage: kv --gen-key FILE
       kv --id N --listen ADDR --peer ID=ADDR [--peer ID=ADDR...] --data-dir DIR --key-file FILE [--cluster-id N]
stdin: put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED|- NEW | status | quit";

/// What to run.
pub(crate) struct Options {
    pub(crate) id: u64,
    pub(crate) listen: SocketAddr,
    pub(crate) peers: BTreeMap<u64, SocketAddr>,
    pub(crate) data_dir: PathBuf,
    pub(crate) key: KeyFile,
    pub(crate) cluster_id: u64,
}

/// Parses the arguments; `Ok(None)` if the job is already done (`--gen-key`, `--help`).
pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let (mut id, mut listen, mut data_dir, mut key_file, mut cluster_id) = (None, None, None, None, 1);
    let mut peers = BTreeMap::new();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--gen-key" => {
                let path = PathBuf::from(value()?);
                let key = KeyFile::generate(&mut OsEntropy).map_err(|e| e.to_string())?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                std::fs::write(&path, key.format()).map_err(|e| format!("{}: {e}", path.display()))?;
                println!("wrote a new cluster key to {}", path.display());
                return Ok(None);
            }
            "--id" => id = Some(value()?.parse::<u64>().map_err(|e| format!("--id: {e}"))?),
            "--listen" => listen = Some(value()?.parse::<SocketAddr>().map_err(|e| format!("--listen: {e}"))?),
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--key-file" => key_file = Some(PathBuf::from(value()?)),
            "--cluster-id" => cluster_id = value()?.parse().map_err(|e| format!("--cluster-id: {e}"))?,
            "--peer" => {
                let v = value()?;
                let (pid, addr) = v.split_once('=').ok_or_else(|| format!("--peer {v}: expected ID=ADDR"))?;
                let pid = pid.parse::<u64>().map_err(|e| format!("--peer {v}: {e}"))?;
                let addr = addr.parse::<SocketAddr>().map_err(|e| format!("--peer {v}: {e}"))?;
                peers.insert(pid, addr);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let key_file = key_file.ok_or("--key-file is required")?;
    let text = std::fs::read_to_string(&key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let key = KeyFile::parse(&text).map_err(|e| format!("{}: {e}", key_file.display()))?;
    Ok(Some(Options {
        id: id.ok_or("--id is required")?,
        listen: listen.ok_or("--listen is required")?,
        peers,
        data_dir: data_dir.ok_or("--data-dir is required")?,
        key,
        cluster_id,
    }))
}

/// One line of input.
pub(crate) enum Line {
    Op(KvOp),
    Status,
    Quit,
    Bad(String),
}

pub(crate) fn parse_line(line: &str) -> Option<Line> {
    let words: Vec<&str> = line.split_whitespace().collect();
    Some(match words.as_slice() {
        [] => return None,
        ["put", k, v] => Line::Op(KvOp::put(*k, *v)),
        ["get", k] => Line::Op(KvOp::get(*k)),
        ["delete", k] => Line::Op(KvOp::delete(*k)),
        ["cas", k, e, n] => Line::Op(KvOp::cas(*k, (*e != "-").then_some(*e), *n)),
        ["status"] => Line::Status,
        ["quit"] | ["exit"] => Line::Quit,
        _ => {
            Line::Bad("commands: put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED|- NEW | status | quit".into())
        }
    })
}

/// Reads stdin on the calling (plain) thread until EOF or `send` refuses.
pub(crate) fn read_stdin(mut send: impl FnMut(Line) -> bool) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(l) = parse_line(&line)
            && !send(l)
        {
            return;
        }
    }
    send(Line::Quit);
}

/// A session id for this run of the client (unique enough for a demo).
pub(crate) fn client_id(node: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ node
}

/// The node's configuration from the options.
fn node_config(o: &Options) -> NodeConfig {
    let members = std::iter::once(o.id).chain(o.peers.keys().copied()).map(NodeId);
    let raft = Config::new(NodeId(o.id), members);
    let peers = o.peers.iter().map(|(&p, &a)| (NodeId(p), a));
    let mut config = NodeConfig::new(raft, o.data_dir.clone(), o.listen, peers, o.key.clone());
    config.cluster_id = o.cluster_id;
    config
}

/// Starts the node the options describe.
pub(crate) async fn start(o: &Options) -> Result<Handle<KvStore>, String> {
    let node = Node::start(node_config(o), KvStore::new()).await.map_err(|e| e.to_string())?;
    println!("node {} listening on {}; commands: put, get, delete, cas, status, quit", o.id, node.local_addr());
    Ok(node)
}

/// Prints role changes until the node stops.
pub(crate) async fn print_roles(id: u64, mut watch: RoleWatch) {
    while let Some(r) = watch.changed().await {
        println!("[node {id}] {:?} in term {}, leader {:?}", r.role, r.term, r.leader.map(|l| l.0));
    }
}

/// Runs the commands `next_line` yields on `node` until `quit` or the end of input.
pub(crate) async fn serve(node: &Handle<KvStore>, o: &Options, mut next_line: impl AsyncFnMut() -> Option<Line>) {
    let client = client_id(o.id);
    let mut seq = 0;
    while let Some(line) = next_line().await {
        match line {
            Line::Quit => break,
            Line::Status => println!("{:#?}", node.status()),
            Line::Bad(why) => println!("? {why}"),
            Line::Op(op) => {
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
                        println!(
                            "not the leader: ask node {l} ({})",
                            o.peers.get(&l.0).map_or("?".into(), |a| a.to_string())
                        )
                    }
                    Err(e) => println!("failed: {e}"),
                }
            }
        }
    }
}

/// The options from the command line, or the exit code if there is nothing
/// (more) to run.
pub(crate) fn options() -> Result<Options, ExitCode> {
    match parse(std::env::args().skip(1)) {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// The exit code for the example's outcome.
pub(crate) fn exit(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
