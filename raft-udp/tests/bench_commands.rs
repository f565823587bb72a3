//! End to end: `bench` with reads and the floor probe, and `bench-failover`,
//! run as a user runs them; their JSON carries what the README reports.

mod common;

use common::Cluster;
use std::time::Duration;

#[test]
fn bench_mixes_reads_and_measures_the_floor() {
    let mut c = Cluster::new(3);
    c.start_all();
    c.wait_leader(Duration::from_secs(15));
    let dir = c.data_dir(0).display().to_string();
    let args = ["--clients", "4", "--duration", "2s", "--read-ratio", "0.5", "--floor", "--floor-dir", &dir];
    let out = c.cli("bench", &args, "");
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json().pop().expect("a result line");
    for field in ["writes", "reads", "writes_per_sec", "reads_per_sec"] {
        assert!(v[field].as_f64().unwrap() > 0.0, "{field} in {v}");
    }
    let (p50, p99) = (v["read_p50_ms"].as_f64().unwrap(), v["read_p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p99 >= p50, "{v}");
    let floor = v["floor_ms"].as_f64().unwrap();
    let parts = v["floor_client_leader_rtt_ms"].as_f64().unwrap()
        + v["floor_leader_follower_rtt_ms"].as_f64().unwrap()
        + v["floor_fdatasync_ms"].as_f64().unwrap();
    assert!(floor > 0.0 && (floor - parts).abs() < 0.01, "{v}");
    let ratio = v["p50_over_floor"].as_f64().unwrap();
    assert!((ratio - v["p50_ms"].as_f64().unwrap() / floor).abs() < 0.05, "{v}");
    // Nothing stray left in the data directory.
    let stray =
        std::fs::read_dir(c.data_dir(0)).unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains("floor"));
    assert!(!stray);

    let bad = c.cli("bench", &["--read-ratio", "1.5"], "");
    assert_eq!(bad.code, Some(2), "{bad:?}");
}

#[test]
fn bench_failover_reports_each_round() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("failover").display().to_string();
    let out = common::run(&["bench-failover", "--rounds", "2", "--dir", &d], "", Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = out.json();
    assert_eq!(lines.len(), 3, "{out:?}");
    for (i, round) in lines[..2].iter().enumerate() {
        assert_eq!(round["round"], (i + 1) as u64);
        assert!((1..=3).contains(&round["killed"].as_u64().unwrap()), "{round}");
        let ms = round["ms"].as_f64().unwrap();
        // An election follows the kill: at least the minimum election timeout.
        assert!(ms > 100.0 && ms < 60_000.0, "{round}");
        assert!(round["puts"].as_u64().unwrap() >= 1);
        // By default the kill falls somewhere in a heartbeat interval (110 ms).
        let delay = round["delay_ms"].as_f64().unwrap();
        assert!((0.0..110.0).contains(&delay), "{round}");
        // The put cannot succeed before a new leader exists (seen by polling
        // every 5 ms, so roughly; a put faster than the poll leaves it null).
        if let Some(elected) = round["elected_ms"].as_f64() {
            assert!(elected > 100.0 && elected <= ms + 10.0, "{round}");
        }
    }
    assert_eq!(lines[2]["rounds"], 2);
    assert!(lines[2]["max_ms"].as_f64().unwrap() >= lines[2]["p50_ms"].as_f64().unwrap());

    let d = dir.path().join("after-write").display().to_string();
    let args = ["bench-failover", "--rounds", "1", "--dir", &d, "--kill-phase", "after-write"];
    let out = common::run(&args, "", Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()[0]["delay_ms"], 0.0, "{out:?}");
    let out = common::run(&["bench-failover", "--kill-phase", "never"], "", Duration::from_secs(10));
    assert_eq!(out.code, Some(2), "{out:?}");
}
