//! End to end, real processes on loopback: a follower whose log segment is
//! damaged below its synced watermark refuses to start (naming the file, the
//! offset and `--repair`); started once with `--repair` it says what it cut
//! away, catches up from the leader and serves every acknowledged write.

mod common;

use common::{BIN, Cluster};
use raft_tests::wait::poll_until;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// The first log segment (by name, so the oldest) in `dir`.
fn first_segment(dir: &std::path::Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("log-") && n.ends_with(".seg"))
        })
        .collect();
    segs.sort();
    segs.into_iter().next().unwrap_or_else(|| panic!("no segment in {}", dir.display()))
}

fn put(c: &Cluster, k: &str, v: &str) {
    let (code, json) = c.kv(&["put", k, v]);
    assert_eq!(code, 0, "put {k}: {json}");
}

#[test]
fn a_damaged_follower_refuses_to_start_then_repairs_and_catches_up() {
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(15));
    for k in 0..20 {
        put(&c, &format!("k{k}"), &format!("v{k}"));
    }
    let f = (0..3).find(|i| *i != leader).unwrap();
    let commit = c.status().into_iter().find(|(i, _)| *i == leader).unwrap().1["commit_index"].as_u64().unwrap();
    c.wait_applied(&[f], commit, Duration::from_secs(15));
    c.kill9(f);

    // Flip one bit in the first record of the follower's first segment
    // (just past the 64-byte header): it was synced before the follower
    // acknowledged it, so it lies below the watermark.
    let seg = first_segment(&c.data_dir(f));
    let mut bytes = fs::read(&seg).unwrap();
    bytes[64 + 12] ^= 0x10;
    fs::write(&seg, &bytes).unwrap();

    // Without --repair: start-up refused, exit status 2, one clear line.
    let args = c.node_args(f);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = common::run_program(BIN, &argv, "", Duration::from_secs(20));
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(refused.stderr.contains("corrupt raft data") && refused.stderr.contains("--repair"), "{}", refused.stderr);
    assert!(refused.stderr.contains(seg.file_name().unwrap().to_str().unwrap()), "{}", refused.stderr);

    // The cluster keeps going without it.
    for k in 20..25 {
        put(&c, &format!("k{k}"), &format!("v{k}"));
    }

    // With --repair: the damage is logged, the node starts and catches up.
    c.extra.push("--repair".into());
    c.start(f);
    c.extra.pop();
    let log_file = c.path().join(format!("node-{}.log", f + 1));
    let leader = c.wait_leader(Duration::from_secs(15));
    let commit = c.status().into_iter().find(|(i, _)| *i == leader).unwrap().1["commit_index"].as_u64().unwrap();
    c.wait_applied(&[f], commit, Duration::from_secs(20));
    let log = fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("--repair: damaged log cut here"), "{log}");
    assert!(log.contains(seg.file_name().unwrap().to_str().unwrap()), "{log}");
    assert!(c.nodes[f].as_mut().unwrap().0.try_wait().unwrap().is_none(), "the repaired node stopped:\n{log}");

    // Every write is served with the repaired node in the only majority
    // left (the other follower killed).
    let other = (0..3).find(|i| *i != leader && *i != f).unwrap();
    c.kill9(other);
    for k in 0..25 {
        let (code, json) = c.kv(&["get", &format!("k{k}")]);
        assert_eq!(code, 0, "get k{k}: {json}");
        assert_eq!(json["value"], format!("v{k}"), "get k{k}: {json}");
    }

    // A second --repair on the now sound log changes nothing and says so.
    c.kill9(f);
    c.extra.push("--repair".into());
    c.start(f);
    c.extra.pop();
    poll_until(Duration::from_secs(15), Duration::from_millis(50), "the second repair's log line", || {
        let log = fs::read_to_string(&log_file).unwrap_or_default();
        if log.contains("--repair: the log is sound") { Ok(()) } else { Err(log) }
    });
}
