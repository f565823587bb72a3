//! `core-bench`: the throughput and latency workloads on raft-rs (and, later, our core).
//!
//! ```text
//! cargo run --release -p raft-bench --bin core-bench -- --proposals 200000 --batch 256 --payload 128
//! ```

use std::process::ExitCode;

use raft_bench::raftrs::run_raftrs;
use raft_bench::workload::{Report, Workload};

const USAGE: &str = "\
usage: core-bench [OPTIONS]

Runs a 3-node cluster in one thread, messages in memory, storage durable at once.

options:
  --proposals N          commands in the throughput run (default 200000)
  --batch N              commands proposed per round in the throughput run (default 256)
  --payload N            bytes per command, at least 8 (default 128); both runs
  --latency-proposals N  commands in the latency run, batch 1 (default 20000; 0 skips it)
  --runs N               repeat each run N times (default 1)
  --no-warmup            skip the untimed warm-up run of each workload
  -h, --help             print this help";

#[derive(Debug)]
struct Args {
    throughput: Workload,
    latency: Option<Workload>,
    runs: usize,
    warmup: bool,
}

fn parse_number(flag: &str, value: &str) -> Result<usize, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: expected a non-negative integer, got {value:?}"))
}

/// `Ok(None)` means help was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut throughput = Workload::THROUGHPUT;
    let mut latency_proposals = Workload::LATENCY.proposals;
    let mut runs = 1;
    let mut warmup = true;
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
            None => args
                .next()
                .ok_or_else(|| format!("{flag}: missing value"))?,
        };
        *target = parse_number(&flag, &value)?;
    }
    throughput
        .validate()
        .map_err(|e| format!("throughput run: {e}"))?;
    if runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let latency = (latency_proposals > 0).then_some(Workload {
        proposals: latency_proposals,
        batch: 1,
        payload_bytes: throughput.payload_bytes,
    });
    Ok(Some(Args {
        throughput,
        latency,
        runs,
        warmup,
    }))
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
        run_raftrs(&args.throughput);
        // our core: added by the lead (warm-up: run_core(&args.throughput);)
        if let Some(latency) = &args.latency {
            run_raftrs(latency);
            // our core: added by the lead (warm-up: run_core(latency);)
        }
    }

    for _ in 0..args.runs {
        let raftrs = run_raftrs(&args.throughput);
        print_throughput(&raftrs, &args.throughput);
        // our core: added by the lead
        // let core = run_core(&args.throughput);
        // print_throughput(&core, &args.throughput);
        // println!("ratio core/raft-rs: {:.2}x", core.committed_per_sec / raftrs.committed_per_sec);
    }

    if let Some(latency) = &args.latency {
        for _ in 0..args.runs {
            let raftrs = run_raftrs(latency);
            print_latency(&raftrs, latency);
            // our core: added by the lead
            // let core = run_core(latency);
            // print_latency(&core, latency);
            // println!("ratio core/raft-rs: {:.2}x throughput, {:.2}x latency", ...);
        }
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
        let args = parse(&["--proposals", "1000", "--batch=16", "--payload", "64"])
            .unwrap()
            .unwrap();
        assert_eq!(
            args.throughput,
            Workload {
                proposals: 1000,
                batch: 16,
                payload_bytes: 64
            }
        );
        assert_eq!(args.latency.unwrap().payload_bytes, 64);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["--frobnicate"]).unwrap_err().contains("unknown"));
        assert!(parse(&["--batch"]).unwrap_err().contains("missing value"));
        assert!(parse(&["--batch", "x"]).unwrap_err().contains("integer"));
        assert!(parse(&["--batch", "0"]).unwrap_err().contains("batch"));
        assert!(parse(&["--payload", "4"]).unwrap_err().contains("payload"));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(
            parse(&["--latency-proposals", "0"])
                .unwrap()
                .unwrap()
                .latency
                .is_none()
        );
    }
}
