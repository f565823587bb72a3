//! Membership changes over the binary: replacing a dead voter while clients
//! write (the history stays linearizable, no acknowledged write is lost),
//! growing 3 -> 5 and shrinking back, removing the leader, and the
//! command line's errors.

mod common;

use common::Cluster;
use common::history::{Clients, Tally, check_linearizable};
use raft_tests::wait::poll_until;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// `member SUB ARGS`: (exit status, its JSON line).
fn member(c: &Cluster, sub: &str, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["member", sub, "--servers"];
    let servers = c.servers();
    let key = c.key_file.display().to_string();
    a.extend([servers.as_str(), "--key-file", key.as_str()]);
    a.extend(args);
    let out = common::run(&a, "", Duration::from_secs(60));
    let json = out.json();
    assert_eq!(json.len(), 1, "{out:?}");
    (out.code.expect("killed"), json.into_iter().next().unwrap())
}

fn ids(v: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> =
        v.as_array().unwrap().iter().map(|x| x.as_u64().or_else(|| x["id"].as_u64()).unwrap()).collect();
    ids.sort_unstable();
    ids
}

fn add(c: &Cluster, i: usize, extra: &[&str]) -> (i32, Value) {
    let id = (i + 1).to_string();
    let addr = c.addrs[i].to_string();
    let mut args = vec!["--id", id.as_str(), "--addr", addr.as_str()];
    args.extend(extra);
    member(c, "add", &args)
}

fn remove(c: &Cluster, i: usize) -> (i32, Value) {
    let id = (i + 1).to_string();
    member(c, "remove", &["--id", id.as_str()])
}

/// Waits until node `i` reports `role`.
fn wait_role(c: &Cluster, i: usize, role: &str) -> Value {
    poll_until(WAIT, Duration::from_millis(100), &format!("node {} to be {role}", i + 1), || {
        let st = c.status();
        match st.into_iter().find(|(j, _)| *j == i) {
            Some((_, v)) if v["role"] == role => Ok(v),
            other => Err(format!("{other:?}")),
        }
    })
}

fn put_ok(c: &Cluster, key: &str, value: &str) {
    let (code, v) = c.kv(&["put", key, value]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn a_dead_voter_is_replaced_by_a_joining_node_while_clients_write() {
    let mut c = Cluster::new(4);
    c.bootstrap = 3;
    for i in 0..3 {
        c.start(i);
    }
    let leader = c.wait_leader_among(&[0, 1, 2], WAIT);
    let key = raft_host::secure::KeyFile::parse(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap().key;
    let clients = Clients::start(c.addrs.clone(), key, 3, Duration::from_millis(3000));
    std::thread::sleep(Duration::from_millis(800));

    // A follower dies for good; a new machine (id 4, empty data dir) joins.
    let dead = (leader + 1) % 3;
    c.kill9(dead);
    c.start(3);
    let (code, v) = add(&c, 3, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(ids(&v["voters"]), [1, 2, 3, 4]);
    let (code, v) = remove(&c, dead);
    assert_eq!(code, 0, "{v}");
    let mut want: Vec<u64> = [0usize, 1, 2, 3].iter().filter(|&&i| i != dead).map(|&i| i as u64 + 1).collect();
    want.sort_unstable();
    assert_eq!(ids(&v["voters"]), want);
    let replaced = clients.now();

    // The new member learnt every address from the configuration.
    let (code, list) = member(&c, "list", &[]);
    assert_eq!(code, 0, "{list}");
    assert_eq!(list["joint"], false);
    for m in list["voters"].as_array().unwrap() {
        let i = m["id"].as_u64().unwrap() as usize - 1;
        assert_eq!(m["addr"], c.addrs[i].to_string(), "{list}");
    }
    std::thread::sleep(Duration::from_millis(1000));
    // The survivors and the new node carry on without the old leader too.
    let live: Vec<usize> = [0, 1, 2, 3].into_iter().filter(|&i| i != dead).collect();
    let l = c.wait_leader_among(&live, WAIT);
    c.kill9(l);
    let rest: Vec<usize> = live.into_iter().filter(|&i| i != l).collect();
    c.wait_leader_among(&rest, WAIT);
    std::thread::sleep(Duration::from_millis(1000));
    let Tally { ok, unknown, ok_after: late, .. } = check_linearizable(clients.finish(), replaced);
    eprintln!("history: {ok} ok, {unknown} unknown, {late} after the replacement");
    assert!(ok >= 50 && late > 0, "too little completed: {ok} ok, {late} after the replacement");
    // Node 4 holds the data: every key reads the same through it as a leader would.
    let st = c.status();
    let n4 = st.iter().find(|(i, _)| *i == 3).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(ids(&n4["voters"]), want);
}

#[test]
fn grow_three_to_five_then_shrink_back() {
    let mut c = Cluster::new(5);
    c.bootstrap = 3;
    for i in 0..5 {
        c.start(i);
    }
    c.wait_leader_among(&[0, 1, 2], WAIT);
    put_ok(&c, "a", "1");
    // A joining node is not a member and never campaigns.
    let v = wait_role(&c, 3, "follower");
    assert_eq!(ids(&v["voters"]), Vec::<u64>::new());

    let (code, v) = add(&c, 3, &["--learner"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!((ids(&v["voters"]), ids(&v["learners"])), (vec![1, 2, 3], vec![4]));
    assert_eq!(add(&c, 3, &[]).0, 0);
    let (code, v) = add(&c, 4, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!((ids(&v["voters"]), ids(&v["learners"])), (vec![1, 2, 3, 4, 5], vec![]));
    put_ok(&c, "b", "2");
    c.wait_leader(WAIT);
    let st = c.status();
    assert!(st.iter().all(|(_, v)| ids(&v["voters"]) == [1, 2, 3, 4, 5]), "{st:?}");

    // Shrink back: remove the two new nodes (whichever leads).
    for i in [3, 4] {
        let (code, v) = remove(&c, i);
        assert_eq!(code, 0, "{v}");
    }
    let (code, list) = member(&c, "list", &[]);
    assert_eq!((code, ids(&list["voters"]), ids(&list["learners"])), (0, vec![1, 2, 3], vec![]), "{list}");
    for i in [3, 4] {
        wait_role(&c, i, "removed");
    }
    c.wait_leader_among(&[0, 1, 2], WAIT);
    put_ok(&c, "c", "3");
    let (code, v) = c.kv(&["get", "b"]);
    assert_eq!((code, &v["value"]), (0, &Value::from("2")));
    poll_until(WAIT, Duration::from_millis(100), "node 4 to log its removal", || {
        let log = std::fs::read_to_string(c.log_path(3)).unwrap();
        if log.contains("was removed from the cluster") { Ok(()) } else { Err(log) }
    });
    std::thread::sleep(Duration::from_millis(1200));
    let log = std::fs::read_to_string(c.log_path(3)).unwrap();
    assert_eq!(log.matches("was removed from the cluster").count(), 1, "logged more than once: {log}");

    // A restart with stale --peer flags keeps the logged configuration.
    c.kill9(0);
    c.start(0);
    c.wait_leader_among(&[0, 1, 2], WAIT);
    let log = std::fs::read_to_string(c.log_path(0)).unwrap();
    assert!(log.contains("flags ignored"), "{log}");
}

#[test]
fn removing_the_leader_hands_leadership_to_the_others() {
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader(WAIT);
    put_ok(&c, "k", "v1");
    let (code, v) = remove(&c, leader);
    assert_eq!(code, 0, "{v}");
    assert!(!ids(&v["voters"]).contains(&(leader as u64 + 1)), "{v}");
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    c.wait_leader_among(&others, WAIT);
    wait_role(&c, leader, "removed");
    put_ok(&c, "k", "v2");
    let (code, v) = c.kv(&["get", "k"]);
    assert_eq!((code, &v["value"]), (0, &Value::from("v2")));
    // The removed node stays quiet: the others keep their term.
    let term = |c: &Cluster| c.status().iter().find(|(i, _)| *i == others[0]).map(|(_, v)| v["term"].clone());
    let before = term(&c);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(term(&c), before);
    // Refusals exit 1: the last voters cannot all go, unknown nodes cannot be removed.
    let (code, v) = member(&c, "remove", &["--id", "99"]);
    assert_eq!((code, &v["ok"]), (1, &Value::from(false)), "{v}");
}

#[test]
fn bad_member_flags_exit_2() {
    let c = Cluster::new(1);
    let key = c.key_file.display().to_string();
    for args in [
        vec!["member", "add", "--servers", "127.0.0.1:1", "--key-file", key.as_str(), "--addr", "127.0.0.1:2"],
        vec!["member", "add", "--servers", "127.0.0.1:1", "--key-file", key.as_str(), "--id", "x", "--addr", "h:1"],
        vec!["member", "remove", "--servers", "127.0.0.1:1", "--key-file", key.as_str()],
        vec!["member", "list", "--key-file", key.as_str()],
        vec!["member", "frobnicate"],
        vec![
            "node",
            "--id",
            "4",
            "--listen",
            "127.0.0.1:1",
            "--data-dir",
            "/tmp/x",
            "--key-file",
            key.as_str(),
            "--join",
            "--peer",
            "1=127.0.0.1:2",
        ],
    ] {
        let out = common::run(&args, "", Duration::from_secs(10));
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("raft-udp: "), "{out:?}");
    }
}

#[test]
fn cluster_add_and_remove_change_the_running_cluster() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().display().to_string();
    let input = "put a 1\nadd\nremove 1\nput b 2\nget a\nstatus --json\n";
    let out = common::run(&["cluster", "--nodes", "3", "--dir", &dir], input, Duration::from_secs(90));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("node 4 ("), "{}", out.stderr);
    assert!(out.stderr.contains("added; voters [1, 2, 3, 4]"), "{}", out.stderr);
    assert!(out.stderr.contains("node 1 removed; its process stopped; voters [2, 3, 4]"), "{}", out.stderr);
    let lines = out.json();
    assert_eq!(lines[0]["ok"], true, "{lines:?}");
    assert_eq!((&lines[1]["ok"], &lines[2]["value"]), (&Value::from(true), &Value::from("1")), "{lines:?}");
    // The status lines cover the added node, which the leader reached
    // before promoting it.
    let st: Vec<&Value> = lines[3..].iter().collect();
    assert!(st.iter().any(|v| v["id"] == 4 && v["term"].as_u64() > Some(0)), "{st:?}");
    assert!(st.iter().any(|v| v["role"] == "leader" && ids(&v["voters"]) == [2, 3, 4]), "{st:?}");
}
