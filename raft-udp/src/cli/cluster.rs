//! `raft-udp cluster`: a local cluster of child processes, a live status
//! view on standard error, and KV commands from standard input.

use super::kv::{json_line, parse_line, print_line};
use crate::client::{Client, query_status};
use crate::packet::NodeStatus;
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use raft_host::ClusterKey;
use std::fs::{self, OpenOptions};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::level_filters::LevelFilter;

#[derive(Args, Debug, Clone)]
pub(crate) struct ClusterArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=15))]
    nodes: u64,
    /// Directory for the key file, data and logs; reused if it exists (the
    /// cluster restarts from its data). Default: a fresh temporary directory,
    /// removed at exit.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The children and how to start them again.
pub(super) struct Nodes {
    pub(super) exe: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) key_file: PathBuf,
    pub(super) log_level: LevelFilter,
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) children: Vec<Option<Child>>,
    /// Nodes `0..bootstrap` form the initial cluster; later ones (`add`) join.
    pub(super) bootstrap: usize,
}

impl Nodes {
    pub(super) fn start(&mut self, i: usize) -> Result<(), String> {
        let id = i + 1;
        let log_path = self.dir.join(format!("node-{id}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("node")
            .args(["--id", &id.to_string(), "--listen", &self.addrs[i].to_string()])
            .args(["--data-dir"])
            .arg(self.dir.join(format!("node-{id}")))
            .arg("--key-file")
            .arg(&self.key_file)
            .args(["--log-level", &self.log_level.to_string().to_lowercase(), "--exit-on-stdin-eof"]);
        if i >= self.bootstrap {
            cmd.arg("--join");
        }
        for (j, a) in
            self.addrs.iter().enumerate().filter(|(j, _)| *j != i && i < self.bootstrap && *j < self.bootstrap)
        {
            cmd.arg("--peer").arg(format!("{}={a}", j + 1));
        }
        // Its own process group: Ctrl-C reaches only this process, which stops
        // the children in order. The piped stdin ends if this process dies,
        // which stops the children too.
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(log).process_group(0);
        let child = cmd.spawn().map_err(|e| format!("cannot start node {id}: {e}"))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// Reports children that exited on their own.
    fn reap(&mut self) {
        for (i, slot) in self.children.iter_mut().enumerate() {
            if let Some(child) = slot
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = self.dir.join(format!("node-{}.log", i + 1));
                eprintln!("node {} exited ({status}); its log: {}", i + 1, log.display());
                *slot = None;
            }
        }
    }

    pub(super) fn kill9(&mut self, i: usize) -> bool {
        match self.children.get_mut(i).and_then(Option::take) {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                true
            }
            None => false,
        }
    }

    /// SIGTERM to every child, then SIGKILL to those still running after 5 s.
    pub(super) fn stop_all(&mut self) {
        for child in self.children.iter().flatten() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for mut child in self.children.iter_mut().filter_map(Option::take) {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Loopback addresses with ports free right now.
pub(super) fn free_addrs(n: usize) -> Result<Vec<SocketAddr>, String> {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find a free UDP port: {e}"))?;
    sockets.iter().map(|s| s.local_addr().map_err(|e| e.to_string())).collect()
}

pub(super) fn load_or_make_key(path: &Path) -> Result<ClusterKey, String> {
    if path.exists() {
        return crate::keyfile::read_key(path);
    }
    let key = ClusterKey::generate().map_err(|e| e.to_string())?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create key file {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{}\n", key.to_hex()).as_bytes())
        .map_err(|e| format!("cannot write key file {}: {e}", path.display()))?;
    Ok(key)
}

pub(super) fn run(args: ClusterArgs, log_level: LevelFilter) -> Result<u8, String> {
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("raft-udp-cluster-{:016x}", crate::random_u64())), true),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key_file = dir.join("cluster.key");
    let key = load_or_make_key(&key_file)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the raft-udp executable: {e}"))?;
    let n = args.nodes as usize;
    let addrs = free_addrs(n)?;
    let mut nodes = Nodes {
        exe,
        dir: dir.clone(),
        key_file: key_file.clone(),
        log_level,
        addrs,
        children: Vec::new(),
        bootstrap: n,
    };
    nodes.children.resize_with(n, || None);
    for i in 0..n {
        nodes.start(i)?;
    }
    let servers: Vec<String> = nodes.addrs.iter().map(ToString::to_string).collect();
    eprintln!("raft-udp cluster: {n} nodes on {}; data and logs in {}", servers.join(" "), dir.display());
    eprintln!("  other terminal: raft-udp client --servers {} --key-file {}", servers.join(","), key_file.display());
    eprintln!("  type: {HELP} | help");
    eprintln!("  Ctrl-C or end of input stops the cluster.");
    let nodes = Arc::new(Mutex::new(nodes));
    let runtime = super::runtime()?;
    let result = runtime.block_on(interact(nodes.clone(), key));
    runtime.shutdown_background();
    if let Ok(mut nodes) = nodes.lock() {
        nodes.stop_all();
    }
    eprintln!("cluster stopped");
    if temporary {
        let _ = fs::remove_dir_all(&dir);
    } else {
        eprintln!("data kept in {0}; restart with: raft-udp cluster --nodes {n} --dir {0}", dir.display());
    }
    result
}

/// What `cluster` understands on standard input.
const HELP: &str = "put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED NEW | status [--json] | kill N | start N \
                    | transfer N | add | remove N";

async fn interact(nodes: Arc<Mutex<Nodes>>, key: ClusterKey) -> Result<u8, String> {
    let addrs = nodes.lock().map_err(|_| "lock poisoned")?.addrs.clone();
    let view = tokio::spawn(status_view(nodes.clone(), key.clone()));
    let mut client = Client::connect(addrs.clone(), key.clone(), Duration::from_secs(2))
        .await
        .map_err(|e| format!("cannot open a client socket: {e}"))?;
    let mut lines = super::stdin_lines();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async move {
        match &mut term {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sigterm);
    loop {
        let line = tokio::select! {
            line = lines.recv() => match line {
                Some(Ok(line)) => line,
                _ => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            () = &mut sigterm => break,
        };
        // Nodes added with `add` count too.
        let addrs = nodes.lock().map(|g| g.addrs.clone()).unwrap_or_else(|_| addrs.clone());
        let words: Vec<&str> = line.split_whitespace().collect();
        let index = |w: &str| w.parse::<usize>().ok().filter(|i| (1..=addrs.len()).contains(i)).map(|i| i - 1);
        match words.as_slice() {
            ["help"] => eprintln!("{HELP}"),
            ["add"] => eprintln!("{}", super::cluster_member::add(&nodes, &key).await),
            ["remove", n] if index(n).is_some() => {
                eprintln!("{}", super::cluster_member::remove(&nodes, &key, index(n).unwrap_or_default()).await)
            }
            ["status"] => {
                let answers = query_status(&addrs, &key, Duration::from_millis(500)).await.unwrap_or_default();
                eprint!("{}", super::status_table::table(&addrs, &answers));
            }
            ["status", "--json"] => {
                let answers = query_status(&addrs, &key, Duration::from_millis(500)).await.unwrap_or_default();
                for (a, s) in addrs.iter().zip(answers) {
                    match s {
                        Some(s) => print_line(&super::status::json_line(*a, &s)),
                        None => eprintln!("no answer from {a}"),
                    }
                }
            }
            ["kill", n] if index(n).is_some() => {
                let i = index(n).unwrap_or_default();
                let killed = nodes.lock().map(|mut g| g.kill9(i)).unwrap_or(false);
                eprintln!(
                    "{}",
                    if killed { format!("node {n} killed (SIGKILL)") } else { format!("node {n} is not running") }
                );
            }
            ["transfer", n] if index(n).is_some() => {
                let to = n.parse().unwrap_or_default();
                super::transfer::transfer_and_print(&addrs, &key, to, Duration::from_secs(2)).await;
            }
            ["start", n] if index(n).is_some() => {
                let i = index(n).unwrap_or_default();
                let result = match nodes.lock() {
                    Ok(mut g) if g.children[i].is_none() => g.start(i).map(|()| format!("node {n} started")),
                    _ => Ok(format!("node {n} is already running")),
                };
                eprintln!("{}", result.unwrap_or_else(|e| e));
            }
            _ => match parse_line(&line) {
                Ok(None) => {}
                Ok(Some(op)) => {
                    let outcome = client.execute(op.clone()).await;
                    print_line(&json_line(&op, &outcome));
                }
                Err(json) => print_line(&json),
            },
        }
    }
    view.abort();
    Ok(0)
}

/// One line per node: `n2 leader t3 c17`, or `n2 down`.
fn summary(addrs: &[SocketAddr], answers: &[Option<NodeStatus>], with_commit: bool) -> String {
    let mut parts = Vec::new();
    for (i, (_, a)) in addrs.iter().zip(answers).enumerate() {
        parts.push(match a {
            Some(s) if with_commit => format!("n{} {} t{} commit {}", s.id, s.role, s.term, s.commit_index),
            Some(s) => format!("n{} {} t{}", s.id, s.role, s.term),
            None => format!("n{} down", i + 1),
        });
    }
    let leader = answers.iter().flatten().find(|s| s.role == "leader").map(|s| format!("leader n{}", s.id));
    format!("{} | {}", leader.unwrap_or_else(|| "no leader".into()), parts.join(" | "))
}

/// Polls every node twice a second; prints a line when roles, terms or
/// liveness change, and every 5 s while commit indexes move.
async fn status_view(nodes: Arc<Mutex<Nodes>>, key: ClusterKey) {
    let started = Instant::now();
    let mut shape = String::new();
    let mut full = String::new();
    let mut printed = Instant::now();
    loop {
        let addrs = match nodes.lock() {
            Ok(mut g) => {
                g.reap();
                g.addrs.clone()
            }
            Err(_) => return,
        };
        let answers = query_status(&addrs, &key, Duration::from_millis(400)).await.unwrap_or_default();
        let new_shape = summary(&addrs, &answers, false);
        let new_full = summary(&addrs, &answers, true);
        let moved = new_full != full && printed.elapsed() >= Duration::from_secs(5);
        if new_shape != shape || moved {
            eprintln!("[{:>6.1}s] {new_full}", started.elapsed().as_secs_f64());
            shape = new_shape;
            full = new_full;
            printed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
