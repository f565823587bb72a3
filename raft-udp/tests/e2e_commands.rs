//! End to end, real processes on loopback: leader election as `status`
//! shows it, every command through the one-shot commands and the `client`
//! line protocol (JSON and exit statuses), and a clean SIGTERM.

mod common;

use common::{Cluster, free_addrs};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn election_and_every_command() {
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(15));

    let st = c.status();
    assert_eq!(st.len(), 3);
    for (i, v) in &st {
        let role = if *i == leader { "leader" } else { "follower" };
        assert_eq!(v["role"], role, "{v}");
        assert_eq!(v["id"], (*i + 1) as u64);
        assert_eq!(v["leader"], (leader + 1) as u64);
        for field in ["term", "commit_index", "last_applied", "last_log_index", "snapshot_index"] {
            assert!(v[field].is_u64(), "{field} missing in {v}");
        }
    }

    // One-shot commands: one JSON line, exit status 0.
    let cases: &[(&[&str], Value)] = &[
        (&["put", "a", "1"], json!({"op":"put","key":"a","ok":true})),
        (&["get", "a"], json!({"op":"get","key":"a","ok":true,"value":"1"})),
        (&["cas", "a", "1", "2"], json!({"op":"cas","key":"a","ok":true,"swapped":true,"value":"2"})),
        (&["cas", "a", "1", "3"], json!({"op":"cas","key":"a","ok":true,"swapped":false,"value":"2"})),
        (&["delete", "a"], json!({"op":"delete","key":"a","ok":true,"existed":true})),
        (&["delete", "a"], json!({"op":"delete","key":"a","ok":true,"existed":false})),
        (&["get", "a"], json!({"op":"get","key":"a","ok":true,"value":null})),
    ];
    for (args, want) in cases {
        assert_eq!(c.kv(args), (0, want.clone()), "{args:?}");
    }

    // Gets write nothing to the log (ReadIndex): 20 of them move no node's
    // last log index, while they still see the latest value.
    assert_eq!(c.kv(&["put", "r", "7"]).0, 0);
    let last = |c: &Cluster| c.status().iter().map(|(_, v)| v["last_log_index"].as_u64().unwrap()).max().unwrap();
    let before = last(&c);
    for _ in 0..20 {
        assert_eq!(c.kv(&["get", "r"]), (0, json!({"op":"get","key":"r","ok":true,"value":"7"})));
    }
    assert_eq!(last(&c), before, "gets appended log entries");

    // The line protocol: in order, one JSON line per command, errors included.
    let out = c.cli("client", &[], "put x 1\nget x\n\ncas x 1 2\nget x\nbogus y\nput z\ndelete x\nget x\n");
    assert_eq!(out.code, Some(0), "{out:?}");
    let want = vec![
        json!({"op":"put","key":"x","ok":true}),
        json!({"op":"get","key":"x","ok":true,"value":"1"}),
        json!({"op":"cas","key":"x","ok":true,"swapped":true,"value":"2"}),
        json!({"op":"get","key":"x","ok":true,"value":"2"}),
        json!({"op":"bogus","key":"y","ok":false,"error":"unknown command (use put, get, delete or cas)"}),
        json!({"op":"put","key":"z","ok":false,"error":"usage: put KEY VALUE"}),
        json!({"op":"delete","key":"x","ok":true,"existed":true}),
        json!({"op":"get","key":"x","ok":true,"value":null}),
    ];
    assert_eq!(out.json(), want);

    // Definitely failed: exit 1. A value too large for one datagram.
    let big = "v".repeat(70_000);
    let (code, v) = c.kv(&["put", "big", &big]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("too large"), "{v}");

    // Unknown outcome: exit 2 with "timeout" (a server that never answers).
    let dead = free_addrs(1)[0].to_string();
    let key = c.key_file.display().to_string();
    let out = common::run(
        &["get", "--servers", &dead, "--key-file", &key, "--timeout-ms", "300", "k"],
        "",
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.json(), vec![json!({"op":"get","key":"k","ok":false,"error":"timeout"})]);

    // Every node applied the same history.
    let commit = c.status().iter().find(|(i, _)| *i == leader).unwrap().1["commit_index"].as_u64().unwrap();
    c.wait_applied(&[0, 1, 2], commit, Duration::from_secs(10));
}

#[test]
fn sigterm_stops_cleanly_and_keeps_the_data() {
    let mut c = Cluster::new(1);
    c.start_all();
    c.wait_leader(Duration::from_secs(10));
    assert_eq!(c.kv(&["put", "k", "kept"]).0, 0);
    c.proc(0).signal(Signal::SIGTERM);
    let status = c.proc(0).wait_for(Duration::from_secs(10)).expect("node did not stop on SIGTERM");
    assert_eq!(status.code(), Some(0), "SIGTERM exit status");
    // The data directory is released and holds the write.
    c.start(0);
    c.wait_leader(Duration::from_secs(10));
    assert_eq!(c.kv(&["get", "k"]), (0, json!({"op":"get","key":"k","ok":true,"value":"kept"})));
    c.proc(0).signal(Signal::SIGINT);
    let status = c.proc(0).wait_for(Duration::from_secs(10)).expect("node did not stop on SIGINT");
    assert_eq!(status.code(), Some(0), "SIGINT exit status");
}

#[test]
fn cluster_command_starts_serves_and_stops_its_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let d_str = d.display().to_string();
    let out = common::run(
        &["cluster", "--nodes", "3", "--dir", &d_str],
        "put a 1\nget a\nstatus\nstatus --json\n",
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = out.json();
    assert_eq!(lines[0], json!({"op":"put","key":"a","ok":true}));
    assert_eq!(lines[1], json!({"op":"get","key":"a","ok":true,"value":"1"}));
    assert_eq!(lines.len(), 5, "{out:?}");
    assert_eq!(lines[2..].iter().filter(|v| v["role"] == "leader").count(), 1, "{out:?}");
    // `status` is a table for people (on stderr, beside the live view); `status --json` gave the lines above.
    let header = out.stderr.lines().position(|l| l.starts_with("node  addr")).expect("a status table");
    let rows: Vec<&str> = out.stderr.lines().skip(header + 1).take(3).collect();
    assert_eq!(rows.iter().filter(|r| r.split_whitespace().nth(2) == Some("leader")).count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("cluster stopped"), "{}", out.stderr);
    assert!(d.join("cluster.key").exists());
    for i in 1..=3 {
        let log = std::fs::read_to_string(d.join(format!("node-{i}.log"))).unwrap();
        assert!(log.contains("stopped; disk writes flushed"), "node {i} did not stop cleanly:\n{log}");
    }
}
