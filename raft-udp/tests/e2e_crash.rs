//! End to end, real processes on loopback: `kill -9` of the leader while a
//! client writes, of a follower (which then catches up), of every node; and
//! a leader paused with SIGSTOP that rejoins after SIGCONT. Every write the
//! client was told succeeded is read back afterwards.

mod common;

use common::{BIN, Cluster, Proc};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Starts `raft-udp client` fed `input`; its JSON lines arrive on the channel.
fn background_client(c: &Cluster, input: String) -> (Proc, mpsc::Receiver<Value>) {
    let mut child = Proc(
        Command::new(BIN)
            .args(["client", "--servers", &c.servers(), "--key-file", &c.key_file.display().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&line).expect("client printed non-JSON")).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Records acknowledged puts (`ok: true`) of `put KEY VALUE` lines, in `acked`.
fn collect(rx: &mpsc::Receiver<Value>, inputs: &[(String, String)], acked: &mut BTreeMap<String, String>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while got < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx.recv_timeout(left).expect("client output stalled");
        if v["ok"] == true {
            let key = v["key"].as_str().unwrap().to_owned();
            let value = inputs.iter().find(|(k, _)| *k == key).unwrap().1.clone();
            acked.insert(key, value);
        } else {
            assert_eq!(v["error"], "timeout", "a put definitely failed: {v}");
        }
        got += 1;
    }
}

fn puts(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("{prefix}{i}"), format!("v{i}-{prefix}"))).collect()
}

fn script(p: &[(String, String)]) -> String {
    p.iter().map(|(k, v)| format!("put {k} {v}\n")).collect()
}

/// Reads every acknowledged key back through the cluster.
fn check_all(c: &Cluster, acked: &BTreeMap<String, String>) {
    let input: String = acked.keys().map(|k| format!("get {k}\n")).collect();
    let out = c.cli("client", &[], &input);
    let got = out.json();
    assert_eq!(got.len(), acked.len(), "{out:?}");
    for (v, (k, want)) in got.iter().zip(acked) {
        assert_eq!(v["key"], k.as_str());
        assert_eq!(v["ok"], true, "read of {k} failed: {v}");
        assert_eq!(v["value"], want.as_str(), "acknowledged write of {k} lost");
    }
}

fn commit_of(c: &Cluster, node: usize) -> u64 {
    let st = c.status();
    st.iter().find(|(i, _)| *i == node).expect("node answers").1["commit_index"].as_u64().unwrap_or(0)
}

#[test]
fn kill9_leader_follower_and_everyone_loses_no_acknowledged_write() {
    kill9_leader_follower_and_everyone(&[]);
}

/// The same with one fdatasync per group commit (`--watermark deferred`):
/// acknowledged means durable there too.
#[test]
fn kill9_with_the_deferred_watermark_loses_no_acknowledged_write() {
    kill9_leader_follower_and_everyone(&["--watermark", "deferred"]);
}

fn kill9_leader_follower_and_everyone(extra: &[&str]) {
    let mut c = Cluster::new(3);
    c.extra.extend(extra.iter().map(|s| s.to_string()));
    c.start_all();
    let old = c.wait_leader(Duration::from_secs(15));

    // Kill -9 the leader while a client is writing.
    let first = puts("a", 150);
    let (mut client, rx) = background_client(&c, script(&first));
    let mut acked = BTreeMap::new();
    collect(&rx, &first, &mut acked, 30);
    c.kill9(old);
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = c.wait_leader_among(&others, Duration::from_secs(15));
    assert_ne!(new, old);
    collect(&rx, &first, &mut acked, first.len() - 30);
    assert!(client.wait_for(Duration::from_secs(10)).is_some());
    eprintln!("{} of 150 writes acknowledged across the leader's crash", acked.len());
    assert!(acked.len() >= 100, "only {} of 150 writes acknowledged", acked.len());
    check_all(&c, &acked);

    // The old leader restarts and catches up.
    c.start(old);
    let leader = c.wait_leader(Duration::from_secs(15));
    c.wait_applied(&[0, 1, 2], commit_of(&c, leader), Duration::from_secs(15));

    // Kill -9 a follower; the others keep committing; it restarts and catches up.
    let follower = (0..3).find(|i| *i != leader).unwrap();
    c.kill9(follower);
    let second = puts("b", 40);
    let out = c.cli("client", &[], &script(&second));
    for v in out.json() {
        assert_eq!(v["ok"], true, "with a majority up every put succeeds: {v}");
        let k = v["key"].as_str().unwrap().to_owned();
        acked.insert(k.clone(), second.iter().find(|(x, _)| *x == k).unwrap().1.clone());
    }
    let commit = commit_of(&c, leader);
    c.start(follower);
    c.wait_applied(&[follower], commit, Duration::from_secs(15));

    // Kill -9 everyone, restart: every acknowledged write is there.
    for i in 0..3 {
        c.kill9(i);
    }
    c.start_all();
    c.wait_leader(Duration::from_secs(15));
    check_all(&c, &acked);
}

#[test]
fn a_paused_leader_rejoins_after_sigcont() {
    let mut c = Cluster::new(3);
    c.start_all();
    let old = c.wait_leader(Duration::from_secs(15));
    assert_eq!(c.kv(&["put", "before", "1"]).0, 0);

    c.proc(old).signal(Signal::SIGSTOP);
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = c.wait_leader_among(&others, Duration::from_secs(15));
    assert_ne!(new, old);
    assert_eq!(c.kv(&["put", "during", "2"]).0, 0);

    c.proc(old).signal(Signal::SIGCONT);
    let leader = c.wait_leader(Duration::from_secs(15));
    assert_eq!(c.kv(&["put", "after", "3"]).0, 0);
    c.wait_applied(&[0, 1, 2], commit_of(&c, leader), Duration::from_secs(15));
    let out = c.cli("client", &[], "get before\nget during\nget after\n");
    let values: Vec<Value> = out.json().iter().map(|v| v["value"].clone()).collect();
    assert_eq!(values, vec!["1", "2", "3"]);
}

#[test]
fn a_follower_behind_a_snapshot_catches_up_and_snapshots_survive_restarts() {
    let mut c = Cluster::new(3);
    c.extra.extend(["--snapshot-after-entries".into(), "50".into()]);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(15));
    let follower = (0..3).find(|i| *i != leader).unwrap();
    c.kill9(follower);

    // Enough writes for several snapshots while the follower is down: the
    // leader compacts its log past it and must send a snapshot (fragmented:
    // the key-value state is larger than one datagram).
    let writes = puts("s", 300);
    let out = c.cli("client", &[], &script(&writes));
    let mut acked = BTreeMap::new();
    for v in out.json() {
        assert_eq!(v["ok"], true, "{v}");
        let k = v["key"].as_str().unwrap().to_owned();
        acked.insert(k.clone(), writes.iter().find(|(x, _)| *x == k).unwrap().1.clone());
    }
    let st = c.status();
    let lead = &st.iter().find(|(i, _)| *i == leader).unwrap().1;
    assert!(lead["snapshot_index"].as_u64().unwrap() >= 250, "no snapshot taken: {lead}");

    c.start(follower);
    c.wait_applied(&[follower], commit_of(&c, leader), Duration::from_secs(20));
    let st = c.status();
    let f = &st.iter().find(|(i, _)| *i == follower).unwrap().1;
    assert!(f["snapshot_index"].as_u64().unwrap() >= 250, "follower did not install a snapshot: {f}");

    // Everyone restarts from snapshot plus log; then only the caught-up
    // follower and one other serve: both must hold every write.
    for i in 0..3 {
        c.kill9(i);
    }
    c.start_all();
    c.wait_leader(Duration::from_secs(15));
    let other = (0..3).find(|i| *i != follower && *i != leader).unwrap();
    c.kill9(leader);
    c.wait_leader_among(&[follower, other], Duration::from_secs(15));
    check_all(&c, &acked);
}
