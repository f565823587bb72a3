//! End to end: `raft-udp node --metrics-listen ADDR` serves the Prometheus
//! text format over HTTP, and its values follow what the cluster does.

mod common;

use common::{BIN, Cluster, Proc};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A loopback TCP address whose port was free a moment ago.
fn free_tcp_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `GET path` over HTTP/1.0: (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text: {body}");
    body
}

/// The value of the sample `name` (with its labels, as printed), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}: bad value {v:?}")))
}

fn value(text: &str, name: &str) -> f64 {
    sample(text, name).unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// Starts every node of `c` with `--metrics-listen`; returns where each serves.
fn start_with_metrics(c: &mut Cluster) -> Vec<SocketAddr> {
    let metrics: Vec<SocketAddr> = (0..c.addrs.len()).map(|_| free_tcp_addr()).collect();
    for (i, m) in metrics.iter().enumerate() {
        let log = std::fs::File::create(c.dir.path().join(format!("metrics-node-{}.log", i + 1))).unwrap();
        let child = Command::new(BIN)
            .args(c.node_args(i))
            .args(["--metrics-listen", &m.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn node");
        c.nodes[i] = Some(Proc(child));
    }
    metrics
}

const APPLIED: &str = "raft_proposals_total{outcome=\"applied\"}";

/// A client given a follower first is served there once (the follower
/// forwards the command), learns the leader from that answer, and sends
/// every later command to the leader: the proposals are then made, and
/// counted, on the leader.
#[test]
fn a_client_served_by_a_follower_sends_its_next_commands_to_the_leader() {
    let mut c = Cluster::new(3);
    let metrics = start_with_metrics(&mut c);
    let leader = c.wait_leader(Duration::from_secs(15));
    let follower = (leader + 1) % 3;
    let applied = |i: usize| sample(&scrape(metrics[i]), APPLIED).unwrap_or(0.0);
    let before = [applied(follower), applied(leader)];

    let key = raft_host::secure::KeyFile::parse(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap().key;
    let servers = vec![c.addrs[follower], c.addrs[leader]];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = raft_udp::client::Client::connect(servers, key, Duration::from_secs(5)).await.unwrap();
        for k in 0..10 {
            let outcome = client.execute(raft_host::KvOp::put(format!("k{k}"), "v")).await;
            assert!(matches!(outcome, raft_udp::client::CommandOutcome::Ok(_)), "put {k}: {outcome:?}");
        }
    });

    // The follower proposed the session's registration; the ten puts were
    // proposed on the leader.
    let after = [applied(follower), applied(leader)];
    let (at_follower, at_leader) = (after[0] - before[0], after[1] - before[1]);
    assert!(
        at_follower <= 1.0 && at_leader >= 10.0,
        "proposals: {at_follower} on the follower, {at_leader} on the leader"
    );
}

#[test]
fn scraped_values_follow_the_cluster() {
    let mut c = Cluster::new(3);
    c.extra.extend(["--snapshot-after-entries".to_string(), "10".to_string()]);
    let metrics = start_with_metrics(&mut c);
    let leader = c.wait_leader(Duration::from_secs(15));
    let follower = (leader + 1) % 3;

    let before = scrape(metrics[leader]);
    // A command or a get may go through any node (a follower forwards the
    // command, or asks the leader for a read index): proposals and reads are
    // counted where they were made, so these two are summed over the nodes.
    let total = |name: &str| -> f64 { (0..3).map(|j| sample(&scrape(metrics[j]), name).unwrap_or(0.0)).sum() };
    const SERVED: &str = "raft_reads_total{outcome=\"served\"}";
    const COMMITTED: &str = "raft_commit_latency_seconds_count";
    let (applied_before, reads_before, timed_before) = (total(APPLIED), total(SERVED), total(COMMITTED));
    assert_eq!(value(&before, "raft_role{role=\"leader\"}"), 1.0);
    assert_eq!(value(&before, "raft_role{role=\"follower\"}"), 0.0);
    assert!(value(&before, "raft_term") >= 1.0);
    let peers: Vec<u64> = (0..3).filter(|j| *j != leader).map(|j| j as u64 + 1).collect();
    for p in &peers {
        assert!(sample(&before, &format!("raft_peer_match_index{{peer=\"{p}\"}}")).is_some(), "{before}");
    }

    for k in 0..20 {
        let (code, _) = c.kv(&["put", &format!("k{k}"), "v"]);
        assert_eq!(code, 0);
    }
    for k in 0..5 {
        let (code, _) = c.kv(&["get", &format!("k{k}")]);
        assert_eq!(code, 0);
    }

    let after = scrape(metrics[leader]);
    let moved = |name: &str, by: f64| {
        let (b, a) = (sample(&before, name).unwrap_or(0.0), value(&after, name));
        assert!(a >= b + by, "{name}: {b} -> {a}, expected a rise of at least {by}");
    };
    moved("raft_commit_index", 20.0);
    moved("raft_applied_index", 20.0);
    moved("raft_last_log_index", 20.0);
    let (applied_after, reads_after, timed_after) = (total(APPLIED), total(SERVED), total(COMMITTED));
    // Commit latency is timed for the commands proposed on the leader itself
    // (a forwarded command's proposal time is on another node).
    let at_leader = value(&after, APPLIED) - sample(&before, APPLIED).unwrap_or(0.0);
    assert!(
        timed_after - timed_before >= at_leader.max(1.0),
        "commit latencies timed: {timed_before} -> {timed_after}, {at_leader} proposals applied at the leader"
    );
    assert!(applied_after >= applied_before + 20.0, "proposals applied: {applied_before} -> {applied_after}");
    assert!(reads_after >= reads_before + 5.0, "reads served: {reads_before} -> {reads_after}, expected 5 more");
    moved("raft_disk_sync_seconds_count", 20.0);
    moved("raft_apply_latency_seconds_count", 20.0);
    moved("raft_snapshots_taken_total", 1.0);
    moved("raft_snapshot_taken_bytes_total", 1.0);
    let last = value(&after, "raft_last_log_index");
    for p in &peers {
        let matched = value(&after, &format!("raft_peer_match_index{{peer=\"{p}\"}}"));
        let lag = value(&after, &format!("raft_peer_lag_entries{{peer=\"{p}\"}}"));
        assert!(matched <= last && lag == last - matched, "peer {p}: match {matched}, lag {lag}, last {last}");
    }
    // Every sample of a latency histogram is counted once, in +Inf.
    assert_eq!(
        value(&after, "raft_commit_latency_seconds_bucket{le=\"+Inf\"}"),
        value(&after, "raft_commit_latency_seconds_count")
    );
    for kind in ["bad_frame", "malformed", "oversize", "unknown_peer", "unexpected", "incomplete"] {
        assert!(sample(&after, &format!("raft_datagrams_dropped_total{{kind=\"{kind}\"}}")).is_some(), "{kind}");
    }

    // The session table, as the node's status reports it (every one-shot put
    // registered a session): the gauges are refreshed every half second.
    let what = "raft_kv_session* to match the leader's status";
    raft_tests::wait::poll_until(Duration::from_secs(10), Duration::from_millis(100), what, || {
        let m = scrape(metrics[leader]);
        let st = c.status().into_iter().find(|(i, _)| *i == leader).map(|(_, v)| v);
        let st = st.ok_or("the leader did not answer status")?;
        let gauges = ["raft_kv_sessions", "raft_kv_session_bytes", "raft_kv_session_limit_bytes"].map(|n| value(&m, n));
        let fields = ["sessions", "session_bytes", "session_limit_bytes"].map(|f| st[f].as_f64().unwrap_or(-1.0));
        if gauges == fields && gauges[0] >= 20.0 && gauges[1] > 0.0 {
            Ok(())
        } else {
            Err(format!("gauges {gauges:?}, status {fields:?}"))
        }
    });

    // A follower has no peers' progress to report, and applied the writes too.
    let f = scrape(metrics[follower]);
    assert_eq!(value(&f, "raft_role{role=\"follower\"}"), 1.0);
    assert!(!f.contains("raft_peer_match_index{"), "{f}");
    assert!(value(&f, "raft_disk_sync_seconds_count") >= 1.0);

    let (status, _) = http_get(metrics[leader], "/elsewhere");
    assert!(status.contains("404"), "{status}");
}
