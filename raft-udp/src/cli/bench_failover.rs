//! `raft-udp bench-failover`: failover as a user sees it. Starts a local
//! cluster (as `cluster` does), then in each round kills the leader with
//! SIGKILL and runs the one-shot `raft-udp put` (default timeout), again
//! and again until one exits 0. The time from the kill to that success is
//! the round's result; the killed node is restarted and caught up before
//! the next round. One JSON line per round, then a summary line.
//!
//! Each round writes once before the kill. By default the kill then comes
//! after a random delay shorter than a heartbeat interval, so that it falls
//! at any point of the heartbeat cycle, as a crash does; followers restart
//! their election timers at every heartbeat, so the phase is worth up to a
//! heartbeat (half of one on average) of election time. `--kill-phase
//! after-write` kills right after the write (every follower's timer has
//! just restarted): the worst phase.

use super::cluster::{Nodes, free_addrs, load_or_make_key};
use super::kv::print_line;
use super::{DEFAULT_HEARTBEAT_MS, args};
use crate::client::query_status;
use crate::packet::NodeStatus;
use clap::Args;
use raft_host::ClusterKey;
use serde_json::json;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracing::level_filters::LevelFilter;

#[derive(Args, Debug, Clone)]
pub(crate) struct BenchFailoverArgs {
    /// How many times to kill the leader.
    #[arg(long, default_value = "7", value_parser = args::positive)]
    rounds: u64,
    /// How many nodes.
    #[arg(long, default_value = "3", value_parser = clap::value_parser!(u64).range(3..=7))]
    nodes: u64,
    /// Directory for the key file, data and logs (default: a temporary one, removed at exit).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Passed to each one-shot put as --timeout-ms (default: the put's own default).
    #[arg(long, value_parser = args::positive)]
    put_timeout_ms: Option<u64>,
    /// The raft-udp binary that runs the nodes and the puts (default: this
    /// one), to compare builds back to back.
    #[arg(long, value_name = "FILE")]
    exe: Option<PathBuf>,
    /// When the leader is killed after the round's write.
    #[arg(long, value_enum, default_value_t = KillPhase::Random)]
    kill_phase: KillPhase,
}

/// `--kill-phase`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum KillPhase {
    /// After a random delay in [0, heartbeat interval).
    Random,
    /// At once.
    AfterWrite,
}

/// What one round measured.
struct Round {
    killed: u64,
    elapsed: Duration,
    /// When a surviving node first reported itself leader (polled every 5 ms).
    elected: Option<Duration>,
    /// One-shot puts started (the last one succeeded).
    puts: u32,
}

pub(super) fn run(a: &BenchFailoverArgs, log_level: LevelFilter) -> Result<u8, String> {
    let (dir, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("raft-udp-failover-{:016x}", crate::random_u64())), true),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key_file = dir.join("cluster.key");
    let key = load_or_make_key(&key_file)?.key;
    let exe = match &a.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find the raft-udp executable: {e}"))?,
    };
    let n = a.nodes as usize;
    let addrs = free_addrs(n)?;
    let mut nodes = Nodes { exe, dir: dir.clone(), key_file, log_level, addrs, children: Vec::new(), bootstrap: n };
    nodes.children.resize_with(n, || None);
    let result = rounds(a, &mut nodes, &key);
    nodes.stop_all();
    if temporary {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

fn rounds(a: &BenchFailoverArgs, nodes: &mut Nodes, key: &ClusterKey) -> Result<u8, String> {
    for i in 0..nodes.addrs.len() {
        nodes.start(i)?;
    }
    let runtime = super::runtime()?;
    let servers: Vec<String> = nodes.addrs.iter().map(ToString::to_string).collect();
    let servers = servers.join(",");
    let mut results = Vec::new();
    for round in 1..=a.rounds {
        // Every node up, one leader, everyone caught up with it.
        let leader = runtime.block_on(settled(&nodes.addrs, key))?;
        put(&nodes.exe, &nodes.key_file, &servers, a.put_timeout_ms, &format!("warm-{round}"))?;
        let delay = match a.kill_phase {
            KillPhase::Random => Duration::from_micros(crate::random_u64() % (DEFAULT_HEARTBEAT_MS * 1000)),
            KillPhase::AfterWrite => Duration::ZERO,
        };
        std::thread::sleep(delay);
        let i = usize::try_from(leader - 1).map_err(|e| e.to_string())?;
        let killed_at = Instant::now();
        nodes.kill9(i);
        // The puts run beside a watch for the new leader, which tells the
        // election's share of the time from the client's.
        let (exe, key_file) = (nodes.exe.clone(), nodes.key_file.clone());
        let (servers_list, timeout) = (servers.clone(), a.put_timeout_ms);
        let puts = std::thread::spawn(move || -> Result<(u32, Duration), String> {
            let mut puts = 0;
            loop {
                puts += 1;
                if put(&exe, &key_file, &servers_list, timeout, &format!("failover-{round}"))? {
                    return Ok((puts, killed_at.elapsed()));
                }
                if killed_at.elapsed() > Duration::from_secs(60) {
                    return Err(format!("round {round}: no put succeeded within 60 s of the kill"));
                }
            }
        });
        let survivors: Vec<SocketAddr> =
            nodes.addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| *a).collect();
        let elected = runtime.block_on(new_leader(&survivors, key, &puts, killed_at));
        let (puts, elapsed) = puts.join().map_err(|_| "the put thread panicked".to_string())??;
        let r = Round { killed: leader, elapsed, elected, puts };
        print_line(
            &json!({
                "round": round,
                "killed": r.killed,
                "delay_ms": ms(delay),
                "ms": ms(r.elapsed),
                "elected_ms": r.elected.map(ms),
                "puts": r.puts,
            })
            .to_string(),
        );
        results.push(r);
        nodes.start(i)?;
    }
    let mut times: Vec<Duration> = results.iter().map(|r| r.elapsed).collect();
    times.sort_unstable();
    let p50 = times.get(times.len() / 2).copied().unwrap_or_default();
    let max = times.last().copied().unwrap_or_default();
    let mut elections: Vec<Duration> = results.iter().filter_map(|r| r.elected).collect();
    elections.sort_unstable();
    let election_p50 = elections.get(elections.len() / 2).copied().map(ms);
    print_line(
        &json!({"rounds": times.len(), "p50_ms": ms(p50), "max_ms": ms(max), "elected_p50_ms": election_p50})
            .to_string(),
    );
    Ok(0)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Polls `survivors` until one reports itself leader (or `puts` ends first);
/// the time since `since`.
async fn new_leader(
    survivors: &[SocketAddr],
    key: &ClusterKey,
    puts: &std::thread::JoinHandle<Result<(u32, Duration), String>>,
    since: Instant,
) -> Option<Duration> {
    while !puts.is_finished() {
        let answers = query_status(survivors, key, Duration::from_millis(5)).await.ok()?;
        if answers.iter().flatten().any(|s| s.role == "leader") {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// One one-shot `raft-udp put` as a user runs it; true if it exited 0.
fn put(
    exe: &std::path::Path,
    key_file: &std::path::Path,
    servers: &str,
    timeout_ms: Option<u64>,
    key: &str,
) -> Result<bool, String> {
    let mut cmd = Command::new(exe);
    cmd.args(["put", "--servers", servers, "--key-file"]).arg(key_file).args([key, "v"]);
    if let Some(t) = timeout_ms {
        cmd.args(["--timeout-ms", &t.to_string()]);
    }
    let status = cmd
        .args(["--log-level", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run raft-udp put: {e}"))?;
    Ok(status.success())
}

/// Waits until every node answers, exactly one leads, and every node has
/// applied what the leader had committed; then a little longer, so that
/// heartbeats flow to the restarted node. Returns the leader's id.
async fn settled(addrs: &[SocketAddr], key: &ClusterKey) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let answers = query_status(addrs, key, Duration::from_millis(300)).await.map_err(|e| e.to_string())?;
        let all: Vec<&NodeStatus> = answers.iter().flatten().collect();
        let leaders: Vec<&&NodeStatus> = all.iter().filter(|s| s.role == "leader").collect();
        if all.len() == addrs.len()
            && let [leader] = leaders.as_slice()
            && all.iter().all(|s| s.leader == Some(leader.id) && s.last_applied >= leader.commit_index)
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(leader.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the cluster did not settle (all nodes up, one leader, caught up) within 60 s".into())
}
