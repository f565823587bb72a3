//! Three nodes in three network namespaces, each joined by a veth link to a
//! bridge in a fourth namespace: elect a leader, partition it by taking its
//! link down, see the others elect another, heal, and converge. Needs root
//! and `ip`; skipped with a printed reason otherwise. The namespaces (with
//! unique names per run) are removed even if the test fails.

mod common;

use common::{BIN, Out, Proc, run_program};
use raft_tests::wait::poll_until;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const N: usize = 3;
const PORT: u16 = 7000;

fn ip(args: &[&str]) -> Out {
    run_program("ip", args, "", Duration::from_secs(10))
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert_eq!(out.code, Some(0), "ip {args:?}: {}", out.stderr);
}

/// Namespaces deleted on drop.
struct Namespaces {
    bridge: String,
    nodes: Vec<String>,
}

impl Namespaces {
    fn names(&self) -> impl Iterator<Item = &String> {
        self.nodes.iter().chain(std::iter::once(&self.bridge))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.names() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn why_skip() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    match Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => {}
        _ => return Some("the `ip` command (iproute2) is missing".into()),
    }
    let probe = format!("raftudp-probe-{}", std::process::id());
    let out = ip(&["netns", "add", &probe]);
    if out.code != Some(0) {
        return Some(format!("cannot create a network namespace: {}", out.stderr.trim()));
    }
    let _ = ip(&["netns", "del", &probe]);
    None
}

fn addr(k: usize) -> String {
    format!("10.213.77.{}:{PORT}", k + 1)
}

fn setup(tag: &str) -> Namespaces {
    let ns = Namespaces { bridge: format!("ru{tag}b"), nodes: (0..N).map(|k| format!("ru{tag}n{k}")).collect() };
    for name in ns.names() {
        ip_ok(&["netns", "add", name]);
    }
    ip_ok(&["-n", &ns.bridge, "link", "add", "br0", "type", "bridge"]);
    ip_ok(&["-n", &ns.bridge, "link", "set", "br0", "up"]);
    for (k, node) in ns.nodes.iter().enumerate() {
        let (v, b) = (format!("v{k}"), format!("b{k}"));
        ip_ok(&["link", "add", &v, "netns", node, "type", "veth", "peer", "name", &b, "netns", &ns.bridge]);
        ip_ok(&["-n", &ns.bridge, "link", "set", &b, "master", "br0"]);
        ip_ok(&["-n", &ns.bridge, "link", "set", &b, "up"]);
        ip_ok(&["-n", node, "addr", "add", &format!("10.213.77.{}/24", k + 1), "dev", &v]);
        ip_ok(&["-n", node, "link", "set", &v, "up"]);
        ip_ok(&["-n", node, "link", "set", "lo", "up"]);
    }
    ns
}

/// `raft-udp ARGS` inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str], within: Duration) -> Out {
    let mut a = vec!["netns", "exec", ns, BIN];
    a.extend_from_slice(args);
    run_program("ip", &a, "", within)
}

/// Status of the `servers` (node indexes) asked from inside namespace `from`.
fn status(ns: &Namespaces, from: usize, servers: &[usize], key: &str) -> Vec<Value> {
    let list: Vec<String> = servers.iter().map(|k| addr(*k)).collect();
    let out = in_ns(
        &ns.nodes[from],
        &["status", "--servers", &list.join(","), "--key-file", key, "--timeout-ms", "300"],
        Duration::from_secs(10),
    );
    out.json()
}

/// Waits until `servers` agree on one leader among them; returns its index.
fn wait_leader(ns: &Namespaces, from: usize, servers: &[usize], key: &str) -> usize {
    let what = format!("an agreed leader among {servers:?}");
    poll_until(Duration::from_secs(20), Duration::from_millis(200), &what, || {
        let st = status(ns, from, servers, key);
        let leaders: Vec<&Value> = st.iter().filter(|v| v["role"] == "leader").collect();
        if st.len() == servers.len() && leaders.len() == 1 {
            let (id, term) = (&leaders[0]["id"], &leaders[0]["term"]);
            if st.iter().all(|v| v["leader"] == *id && v["term"] == *term) {
                return Ok(id.as_u64().unwrap() as usize - 1);
            }
        }
        Err(format!("{st:?}"))
    })
}

fn kv(ns: &Namespaces, from: usize, servers: &[usize], key: &str, args: &[&str]) -> Value {
    let list = servers.iter().map(|k| addr(*k)).collect::<Vec<_>>().join(",");
    let mut a = vec![args[0], "--servers", &list, "--key-file", key];
    a.extend_from_slice(&args[1..]);
    let out = in_ns(&ns.nodes[from], &a, Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
    out.json().remove(0)
}

#[test]
fn partition_the_leader_by_its_link_then_heal() {
    if let Some(why) = why_skip() {
        eprintln!("netns test skipped: {why}");
        return;
    }
    let tag = format!("{:06x}", raft_udp::random_u64() & 0xFF_FFFF);
    let ns = setup(&tag);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cluster.key");
    std::fs::write(&key_file, common::run(&["keygen"], "", Duration::from_secs(10)).stdout).unwrap();
    let key = key_file.display().to_string();

    let mut nodes: Vec<Proc> = Vec::new();
    for k in 0..N {
        let data = dir.path().join(format!("node-{k}")).display().to_string();
        let log = std::fs::File::create(dir.path().join(format!("node-{k}.log"))).unwrap();
        let listen = addr(k);
        let id = (k + 1).to_string();
        let mut args = vec!["netns", "exec", &ns.nodes[k], BIN, "node", "--id", &id, "--listen", &listen];
        let peers: Vec<String> = (0..N).filter(|j| *j != k).map(|j| format!("{}={}", j + 1, addr(j))).collect();
        for p in &peers {
            args.extend(["--peer", p]);
        }
        args.extend(["--data-dir", &data, "--key-file", &key]);
        args.extend(common::FAST);
        nodes.push(Proc(
            Command::new("ip").args(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap(),
        ));
    }
    let all: Vec<usize> = (0..N).collect();
    let leader = wait_leader(&ns, 0, &all, &key);
    assert_eq!(kv(&ns, 0, &all, &key, &["put", "a", "1"])["ok"], true);

    // Take the leader's link down at the bridge: the others elect a new leader.
    let link = format!("b{leader}");
    ip_ok(&["-n", &ns.bridge, "link", "set", &link, "down"]);
    let others: Vec<usize> = all.iter().copied().filter(|k| *k != leader).collect();
    let new = wait_leader(&ns, others[0], &others, &key);
    assert_ne!(new, leader);
    assert_eq!(kv(&ns, others[0], &others, &key, &["put", "b", "2"])["ok"], true);

    // Heal: the old leader follows the new term and catches up.
    ip_ok(&["-n", &ns.bridge, "link", "set", &link, "up"]);
    let leader_now = wait_leader(&ns, leader, &all, &key);
    poll_until(Duration::from_secs(20), Duration::from_millis(200), "every node to converge", || {
        let st = status(&ns, leader, &all, &key);
        let commit = st.iter().find(|v| v["id"] == (leader_now + 1) as u64).map(|v| v["commit_index"].clone());
        if st.len() == N && st.iter().all(|v| Some(&v["last_applied"]) == commit.as_ref()) {
            Ok(())
        } else {
            Err(format!("{st:?}"))
        }
    });
    assert_eq!(kv(&ns, leader, &all, &key, &["get", "b"])["value"], "2");
    assert_eq!(kv(&ns, leader, &all, &key, &["get", "a"])["value"], "1");
    drop(nodes);
}
