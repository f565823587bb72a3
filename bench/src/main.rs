//! `core-bench`: the throughput and latency workloads on our core (`raft-core`) and on
//! raft-rs, side by side, with the ratio between the two.
//!
//! ```text
//! cargo run --release -p raft-bench --bin core-bench -- --proposals 200000 --batch 256 --payload 128
//! ```

use std::process::ExitCode;

use raft_bench::core::run_core;
use raft_bench::raftrs::run_raftrs;
use raft_bench::workload::{Report, Workload};

const USAGE: &str = "\
usage: core-bench [OPTIONS]

Runs a 3-node cluster in one thread, messages in memory, storage durable at once, on our
core (\"raft-core\") and on tikv's raft-rs (\"raft-rs\"), and prints the ratio core/raft-rs.

options:
  --proposals N          commands in the throughput run (default 200000)
  --batch N              commands proposed per round in the throughput run (default 256)
  --payload N            bytes per command, at least 8 (default 128); both runs
  --latency-proposals N  commands in the latency run, batch 1 (default 20000; 0 skips it)
  --runs N               repeat each run N times (default 1)
  --no-warmup            skip the untimed warm-up run of each workload
  --only core|raftrs     run only one implementation (no ratios)
  -h, --help             print this help";

#[derive(Debug)]
struct Args {
    throughput: Workload,
    latency: Option<Workload>,
    runs: usize,
    warmup: bool,
    /// Run our core.
    core: bool,
    /// Run raft-rs.
    raftrs: bool,
}

fn parse_number(flag: &str, value: &str) -> Result<usize, String> {
    value.replace('_', "").parse().map_err(|_| format!("{flag}: expected a non-negative integer, got {value:?}"))
}

/// `Ok(None)` means help was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut throughput = Workload::THROUGHPUT;
    let mut latency_proposals = Workload::LATENCY.proposals;
    let mut runs = 1;
    let mut warmup = true;
    let (mut core, mut raftrs) = (true, true);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if arg == "--no-warmup" {
            warmup = false;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        if flag == "--only" {
            let value = match inline {
                Some(v) => v,
                None => args.next().ok_or("--only: missing value")?,
            };
            (core, raftrs) = match value.as_str() {
                "core" => (true, false),
                "raftrs" | "raft-rs" => (false, true),
                _ => return Err(format!("--only: expected core or raftrs, got {value:?}")),
            };
            continue;
        }
        let target = match flag.as_str() {
            "--proposals" => &mut throughput.proposals,
            "--batch" => &mut throughput.batch,
            "--payload" => &mut throughput.payload_bytes,
            "--latency-proposals" => &mut latency_proposals,
            "--runs" => &mut runs,
            _ => return Err(format!("unknown argument {flag:?}")),
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{flag}: missing value"))?,
        };
        *target = parse_number(&flag, &value)?;
    }
    throughput.validate().map_err(|e| format!("throughput run: {e}"))?;
    if runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let latency = (latency_proposals > 0).then_some(Workload {
        proposals: latency_proposals,
        batch: 1,
        payload_bytes: throughput.payload_bytes,
    });
    Ok(Some(Args { throughput, latency, runs, warmup, core, raftrs }))
}

fn print_throughput(report: &Report, workload: &Workload) {
    println!(
        "{:<9} throughput: {} proposals in {:.2} s = {:.0}k entries/s committed \
         (batch {}, {} B payload, {} entries applied on 3 nodes, mean latency {})",
        report.name,
        report.proposals,
        report.elapsed.as_secs_f64(),
        report.committed_per_sec / 1e3,
        workload.batch,
        workload.payload_bytes,
        report.applied_entries_all_nodes,
        fmt_latency(report.mean_latency_us),
    );
}

fn print_latency(report: &Report, workload: &Workload) {
    println!(
        "{:<9} latency:    {} proposals in {:.2} s = {:.1}k entries/s committed, \
         mean propose->leader-apply {} (batch 1, {} B payload)",
        report.name,
        report.proposals,
        report.elapsed.as_secs_f64(),
        report.committed_per_sec / 1e3,
        fmt_latency(report.mean_latency_us),
        workload.payload_bytes,
    );
}

/// The core/raft-rs ratios of every run, for the summary.
#[derive(Debug, Default)]
struct Ratios {
    throughput: Vec<f64>,
    latency_run_throughput: Vec<f64>,
    latency: Vec<f64>,
}

impl Ratios {
    fn print_medians(&self) {
        let lines = [
            ("throughput ratio (throughput run)", &self.throughput),
            ("throughput ratio (latency run)", &self.latency_run_throughput),
            ("mean latency ratio (latency run)", &self.latency),
        ];
        for (what, values) in lines {
            if let Some(m) = median(values) {
                println!("median of {} runs: core/raft-rs {what}: {m:.2}x", values.len());
            }
        }
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn fmt_latency(us: Option<f64>) -> String {
    match us {
        Some(us) => format!("{us:.1} us"),
        None => "n/a".into(),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("core-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    // The first run in a process pays for page faults on a fresh heap (10-20% slower
    // here, once 3x); run each workload once untimed so neither side pays it when timed.
    if args.warmup {
        let workloads = std::iter::once(&args.throughput).chain(&args.latency);
        for workload in workloads {
            if args.raftrs {
                run_raftrs(workload);
            }
            if args.core {
                run_core(workload);
            }
        }
    }

    if args.core && args.raftrs {
        println!(
            "raft-core = our core, raft-rs = tikv raft 0.7 (peer baseline); ratios are \
             core/raft-rs: throughput above 1x and latency below 1x mean our core is faster"
        );
    }
    let mut ratios = Ratios::default();
    for _ in 0..args.runs {
        let raftrs = args.raftrs.then(|| run_raftrs(&args.throughput));
        if let Some(r) = &raftrs {
            print_throughput(r, &args.throughput);
        }
        let core = args.core.then(|| run_core(&args.throughput));
        if let Some(c) = &core {
            print_throughput(c, &args.throughput);
        }
        if let (Some(c), Some(r)) = (&core, &raftrs) {
            let ratio = c.committed_per_sec / r.committed_per_sec;
            println!("core/raft-rs throughput ratio: {ratio:.2}x");
            ratios.throughput.push(ratio);
        }
    }

    if let Some(latency) = &args.latency {
        for _ in 0..args.runs {
            let raftrs = args.raftrs.then(|| run_raftrs(latency));
            if let Some(r) = &raftrs {
                print_latency(r, latency);
            }
            let core = args.core.then(|| run_core(latency));
            if let Some(c) = &core {
                print_latency(c, latency);
            }
            if let (Some(c), Some(r)) = (&core, &raftrs) {
                let ratio = c.committed_per_sec / r.committed_per_sec;
                ratios.latency_run_throughput.push(ratio);
                print!("core/raft-rs throughput ratio: {ratio:.2}x (batch 1)");
                if let (Some(cl), Some(rl)) = (c.mean_latency_us, r.mean_latency_us) {
                    let ratio = cl / rl;
                    ratios.latency.push(ratio);
                    print!(", mean latency ratio: {ratio:.2}x (below 1: core faster)");
                }
                println!();
            }
        }
    }

    if args.runs > 1 {
        ratios.print_medians();
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let args = parse(&["--proposals", "1000", "--batch=16", "--payload", "64"]).unwrap().unwrap();
        assert_eq!(args.throughput, Workload { proposals: 1000, batch: 16, payload_bytes: 64 });
        assert_eq!(args.latency.unwrap().payload_bytes, 64);
        assert!(args.core && args.raftrs);
    }

    #[test]
    fn only_selects_one_side() {
        let args = parse(&["--only", "core"]).unwrap().unwrap();
        assert!(args.core && !args.raftrs);
        let args = parse(&["--only=raftrs"]).unwrap().unwrap();
        assert!(!args.core && args.raftrs);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["--frobnicate"]).unwrap_err().contains("unknown"));
        assert!(parse(&["--batch"]).unwrap_err().contains("missing value"));
        assert!(parse(&["--batch", "x"]).unwrap_err().contains("integer"));
        assert!(parse(&["--batch", "0"]).unwrap_err().contains("batch"));
        assert!(parse(&["--payload", "4"]).unwrap_err().contains("payload"));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--only", "both"]).unwrap_err().contains("--only"));
        assert!(parse(&["--only"]).unwrap_err().contains("missing value"));
        assert!(parse(&["--latency-proposals", "0"]).unwrap().unwrap().latency.is_none());
    }
}
