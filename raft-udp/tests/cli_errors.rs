//! Bad flags, bad key files, and data directories of another node, cluster
//! or process: exit status 2 and exactly one clear line on standard error.

mod common;

use common::{BIN, Cluster, Proc, free_addrs, run};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `raft-udp ARGS`; asserts exit 2 and one stderr line containing every `needle`.
fn fails(args: &[&str], needles: &[&str]) {
    let out = run(args, "", Duration::from_secs(20));
    assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line, got {:?}", out.stderr);
    assert!(lines[0].starts_with("raft-udp: "), "{:?}", lines[0]);
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: {:?} lacks {n:?}", lines[0]);
    }
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn keygen_prints_a_key_file() {
    let out = run(&["keygen"], "", Duration::from_secs(10));
    assert_eq!(out.code, Some(0));
    let keys = raft_host::secure::KeyFile::parse(&out.stdout).expect("a version 2 key file");
    let again = run(&["keygen"], "", Duration::from_secs(10));
    let other = raft_host::secure::KeyFile::parse(&again.stdout).expect("a version 2 key file");
    assert_ne!(keys.key, other.key, "a fresh key each time");
    assert_ne!(keys.incarnation, other.incarnation, "a fresh incarnation each time");
}

#[test]
fn bad_flags_and_key_files() {
    let c = Cluster::new(2);
    let dir = c.path().to_path_buf();
    let key = c.key_file.display().to_string();
    let data = dir.join("d").display().to_string();
    let listen = free_addrs(1)[0].to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "node",
            "--id",
            "1",
            "--listen",
            &listen,
            "--peer",
            "2=127.0.0.1:9",
            "--data-dir",
            &data,
            "--key-file",
            &key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let check = |extra: &[&str], needles: &[&str]| {
        let a = base(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fails(&a, needles);
    };
    check(&["--bogus"], &["--bogus"]);
    check(&["--watermark", "lazy"], &["--watermark"]);
    check(&["--read-mode", "fast"], &["--read-mode"]);
    check(&["--max-clock-drift-ms", "10"], &["--max-clock-drift-ms", "lease"]);
    check(&["--read-mode", "lease", "--max-clock-drift-ms", "300"], &["drift"]);
    check(&["--heartbeat-ms", "x"], &["--heartbeat-ms"]);
    check(&["--election-timeout-ms", "600-300"], &["MIN-MAX"]);
    check(&["--heartbeat-ms", "400"], &["heartbeat"]);
    check(&["--max-datagram", "10"], &["--max-datagram"]);
    check(&["--peer", "1=127.0.0.1:9"], &["itself"]);
    check(&["--peer", "2=127.0.0.1:10"], &["twice"]);
    check(&["--peer", "3"], &["ID=ADDR"]);
    fails(
        &["node", "--id", "1", "--listen", "no-such-host.invalid:1", "--data-dir", &data, "--key-file", &key],
        &["--listen"],
    );
    fails(
        &["node", "--id", "1", "--listen", "192.0.2.1:7000", "--data-dir", &data, "--key-file", &key],
        &["cannot listen"],
    );
    fails(&["put", "--servers", "127.0.0.1:1", "--key-file", &key, "k"], &["VALUE"]);
    fails(&["status", "--key-file", &key], &["--servers"]);
    fails(&["bench", "--servers", "127.0.0.1:1", "--key-file", &key, "--duration", "soon"], &["duration"]);

    // Key files: missing, not a key.
    let missing = dir.join("missing.key").display().to_string();
    fails(
        &["node", "--id", "1", "--listen", &listen, "--data-dir", &data, "--key-file", &missing],
        &["cannot read key file", "missing.key"],
    );
    let garbage = dir.join("garbage.key");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    let garbage = garbage.display().to_string();
    fails(&["node", "--id", "1", "--listen", &listen, "--data-dir", &data, "--key-file", &garbage], &["garbage.key"]);
    fails(&["get", "--servers", "127.0.0.1:1", "--key-file", &garbage, "k"], &["garbage.key"]);
}

#[test]
fn data_dir_of_another_node_cluster_or_process_is_refused() {
    let mut c = Cluster::new(2);
    // Node 1 stamps its directory, then stops.
    c.start(0);
    let mut first = c.nodes[0].take().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    first.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(first.wait_for(Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    let dir1 = c.data_dir(0).display().to_string();
    let key = c.key_file.display().to_string();
    let listen = free_addrs(1)[0].to_string();

    // Node 2 given node 1's directory.
    fails(
        &["node", "--id", "2", "--listen", &listen, "--peer", "1=127.0.0.1:9", "--data-dir", &dir1, "--key-file", &key],
        &["belongs to node 1", "not node 2"],
    );
    // Node 1 of another cluster (another key).
    let other = c.path().join("other.key");
    std::fs::write(&other, run(&["keygen"], "", Duration::from_secs(10)).stdout).unwrap();
    let other = other.display().to_string();
    fails(
        &[
            "node",
            "--id",
            "1",
            "--listen",
            &listen,
            "--peer",
            "2=127.0.0.1:9",
            "--data-dir",
            &dir1,
            "--key-file",
            &other,
        ],
        &["belongs to cluster"],
    );
    // The same directory while node 1 runs in it.
    let args = c.node_args(0);
    let _running = Proc(Command::new(BIN).args(&args).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    fails(
        &["node", "--id", "1", "--listen", &listen, "--peer", "2=127.0.0.1:9", "--data-dir", &dir1, "--key-file", &key],
        &["already in use"],
    );
}
