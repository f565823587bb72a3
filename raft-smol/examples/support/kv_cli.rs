//! Command-line parsing and stdin commands shared by the `kv` examples of
//! raft-smol and raft-tokio (runtime-independent; included by path).

use raft_host::ClusterKey;
use raft_host::kv::KvOp;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

pub(crate) const USAGE: &str = "\
usage: kv --gen-key FILE
       kv --id N --listen ADDR --peer ID=ADDR [--peer ID=ADDR...] --data-dir DIR --key-file FILE [--cluster-id N]
stdin: put KEY VALUE | get KEY | del KEY | cas KEY EXPECTED|- NEW | status | quit";

/// What to run.
pub(crate) struct Options {
    pub(crate) id: u64,
    pub(crate) listen: SocketAddr,
    pub(crate) peers: BTreeMap<u64, SocketAddr>,
    pub(crate) data_dir: PathBuf,
    pub(crate) key: ClusterKey,
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
                let key = ClusterKey::generate().map_err(|e| e.to_string())?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                std::fs::write(&path, key.to_hex() + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
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
    let key = ClusterKey::from_hex(&text).map_err(|e| format!("{}: {e}", key_file.display()))?;
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
        ["del", k] => Line::Op(KvOp::delete(*k)),
        ["cas", k, e, n] => Line::Op(KvOp::cas(*k, (*e != "-").then_some(*e), *n)),
        ["status"] => Line::Status,
        ["quit"] | ["exit"] => Line::Quit,
        _ => Line::Bad("commands: put KEY VALUE | get KEY | del KEY | cas KEY EXPECTED|- NEW | status | quit".into()),
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
