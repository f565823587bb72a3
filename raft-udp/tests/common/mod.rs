//! Shared test harness: real `raft-udp` processes on loopback, killed when
//! the harness is dropped (also on panic), with bounded waits everywhere.
#![allow(dead_code, unreachable_pub)]

pub mod history;
pub mod hostile;
pub mod proxy;

use raft_tests::wait::poll_until;
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_raft-udp");

/// Faster timers than the defaults, so tests spend less time waiting.
pub const FAST: &[&str] = &["--heartbeat-ms", "50", "--election-timeout-ms", "250-500"];

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.id() as i32)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("kill(2)");
    }

    /// Waits for the process to exit, at most `within`.
    pub fn wait_for(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.0.try_wait().expect("try_wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` loopback addresses whose UDP ports were free a moment ago. They are
/// taken below the kernel's ephemeral range, so that the many client
/// sockets the tests bind to port 0 cannot take a port a node is about to
/// (re)start on.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (lo, hi) = if ephemeral_low > 12_000 { (10_000u16, ephemeral_low) } else { (ephemeral_low, 0) };
    let mut held: Vec<UdpSocket> = Vec::new();
    for _ in 0..10_000 {
        if held.len() == n {
            break;
        }
        let bind = if hi > lo {
            let port = lo + (raft_udp::random_u64() % u64::from(hi - lo)) as u16;
            UdpSocket::bind(("127.0.0.1", port))
        } else {
            UdpSocket::bind("127.0.0.1:0")
        };
        if let Ok(s) = bind {
            held.push(s);
        }
    }
    assert_eq!(held.len(), n, "no free UDP ports");
    held.iter().map(|s| s.local_addr().unwrap()).collect()
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Stdout's lines as JSON values.
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

/// Runs `raft-udp ARGS` with `stdin`, killing it if it runs past `within`.
pub fn run(args: &[&str], stdin: &str, within: Duration) -> Out {
    run_program(BIN, args, stdin, within)
}

/// Runs `program ARGS` with `stdin`, killing it if it runs past `within`.
pub fn run_program(program: &str, args: &[&str], stdin: &str, within: Duration) -> Out {
    let mut child = Proc(
        Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}")),
    );
    let mut input = child.0.stdin.take().unwrap();
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = child.wait_for(within);
    drop(child); // kills it if still running, which ends the readers
    let _ = writer.join();
    Out { code: status.and_then(|s| s.code()), stdout: reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

/// A cluster of `raft-udp node` processes in a temporary directory.
pub struct Cluster {
    pub nodes: Vec<Option<Proc>>,
    pub addrs: Vec<SocketAddr>,
    /// `routes[i][j]`: the address node `i` is told for node `j`.
    pub routes: Vec<Vec<SocketAddr>>,
    pub key_file: PathBuf,
    pub extra: Vec<String>,
    /// Nodes `0..bootstrap` form the initial cluster; the others start with
    /// `--join` (not members until `member add`).
    pub bootstrap: usize,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes that reach each other directly; not started.
    pub fn new(n: usize) -> Cluster {
        let addrs = free_addrs(n);
        let routes = vec![addrs.clone(); n];
        Cluster::with_routes(addrs, routes)
    }

    /// Nodes listening on `addrs`, told `routes[i][j]` for their peers.
    pub fn with_routes(addrs: Vec<SocketAddr>, routes: Vec<Vec<SocketAddr>>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("cluster.key");
        let key = run(&["keygen"], "", Duration::from_secs(10));
        assert_eq!(key.code, Some(0));
        fs::write(&key_file, &key.stdout).unwrap();
        let nodes = addrs.iter().map(|_| None).collect();
        let extra = FAST.iter().map(|s| s.to_string()).collect();
        let bootstrap = addrs.len();
        Cluster { nodes, addrs, routes, key_file, extra, bootstrap, dir }
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{}", i + 1))
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{}.log", i + 1))
    }

    /// The command line of node `i` (id `i + 1`).
    pub fn node_args(&self, i: usize) -> Vec<String> {
        let mut a: Vec<String> = vec!["node".into(), "--id".into(), (i + 1).to_string()];
        a.extend(["--listen".into(), self.addrs[i].to_string()]);
        if i >= self.bootstrap {
            a.push("--join".into());
        }
        for j in (0..self.bootstrap).filter(|j| *j != i && i < self.bootstrap) {
            a.extend(["--peer".into(), format!("{}={}", j + 1, self.routes[i][j])]);
        }
        a.extend(["--data-dir".into(), self.data_dir(i).display().to_string()]);
        a.extend(["--key-file".into(), self.key_file.display().to_string()]);
        a.extend(self.extra.iter().cloned());
        a
    }

    pub fn start(&mut self, i: usize) {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path(i)).unwrap();
        let child = Command::new(BIN)
            .args(self.node_args(i))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn node");
        self.nodes[i] = Some(Proc(child));
    }

    pub fn start_all(&mut self) {
        for i in 0..self.addrs.len() {
            self.start(i);
        }
    }

    pub fn kill9(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    pub fn proc(&mut self, i: usize) -> &mut Proc {
        self.nodes[i].as_mut().expect("node not running")
    }

    pub fn servers(&self) -> String {
        self.addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }

    fn conn_args(&self, cmd: &str) -> Vec<String> {
        vec![cmd.into(), "--servers".into(), self.servers(), "--key-file".into(), self.key_file.display().to_string()]
    }

    /// Runs a client-side subcommand against the cluster.
    pub fn cli(&self, cmd: &str, args: &[&str], stdin: &str) -> Out {
        let mut a = self.conn_args(cmd);
        a.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&a, stdin, Duration::from_secs(60))
    }

    /// One-shot command: (exit status, its JSON line).
    pub fn kv(&self, args: &[&str]) -> (i32, Value) {
        let (cmd, rest) = args.split_first().unwrap();
        let out = self.cli(cmd, rest, "");
        let json = out.json();
        assert_eq!(json.len(), 1, "{out:?}");
        (out.code.expect("killed"), json.into_iter().next().unwrap())
    }

    /// The status of every node that answers (by node index).
    pub fn status(&self) -> Vec<(usize, Value)> {
        let out = self.cli("status", &["--timeout-ms", "300"], "");
        out.json()
            .into_iter()
            .map(|v| {
                let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
                (self.addrs.iter().position(|a| *a == addr).unwrap(), v)
            })
            .collect()
    }

    /// Waits until the nodes in `among` agree on one leader among them, of
    /// one term, with no other leader around; returns its index.
    pub fn wait_leader_among(&self, among: &[usize], within: Duration) -> usize {
        let what = format!("an agreed leader among {among:?}");
        poll_until(within, Duration::from_millis(100), &what, || {
            let st: Vec<(usize, Value)> = self.status().into_iter().filter(|(i, _)| among.contains(i)).collect();
            let leaders: Vec<usize> = st.iter().filter(|(_, v)| v["role"] == "leader").map(|(i, _)| *i).collect();
            if st.len() == among.len() && leaders.len() == 1 {
                let l = leaders[0];
                let lid = (l + 1) as u64;
                let term = &st.iter().find(|(i, _)| *i == l).unwrap().1["term"];
                if st.iter().all(|(_, v)| v["leader"] == lid && v["term"] == *term) {
                    return Ok(l);
                }
            }
            Err(format!("{st:?}"))
        })
    }

    pub fn wait_leader(&self, within: Duration) -> usize {
        let all: Vec<usize> = (0..self.addrs.len()).collect();
        self.wait_leader_among(&all, within)
    }

    /// Waits until every running node has applied at least `index`.
    pub fn wait_applied(&self, among: &[usize], index: u64, within: Duration) {
        let what = format!("nodes {among:?} to apply {index}");
        poll_until(within, Duration::from_millis(100), &what, || {
            let st = self.status();
            let ok = among.iter().all(|i| st.iter().any(|(j, v)| j == i && v["last_applied"].as_u64() >= Some(index)));
            if ok { Ok(()) } else { Err(format!("{st:?}")) }
        })
    }

    pub fn dump_logs(&self) {
        for i in 0..self.addrs.len() {
            if let Ok(log) = fs::read_to_string(self.log_path(i)) {
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("---- node {} log (last lines) ----", i + 1);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear(); // kill before the directory goes
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}
