//! `core-bench`: the throughput and latency workloads on our core (`raft-core`) and on
//! raft-rs, side by side, with the ratio between the two.
//!
//! ```text
//! cargo run --release -p raft-bench --bin core-bench -- --proposals 200000 --batch 256 --payload 128
//! ```

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use raft_bench::core::run_core;
use raft_bench::raftrs::run_raftrs;
use raft_bench::workload::{Report, Workload};

/// Runs a 3-node cluster in one thread, messages in memory, storage durable
/// at once, on our core ("raft-core") and on tikv's raft-rs ("raft-rs"), and
/// prints the ratio core/raft-rs.
#[derive(Debug, Parser)]
#[command(name = "core-bench")]
struct Cli {
    /// Commands in the throughput run.
    #[arg(long, default_value_t = Workload::THROUGHPUT.proposals, value_parser = number)]
    proposals: usize,
    /// Commands proposed per round in the throughput run.
    #[arg(long, default_value_t = Workload::THROUGHPUT.batch, value_parser = number)]
    batch: usize,
    /// Bytes per command, at least 8; both runs.
    #[arg(long, default_value_t = Workload::THROUGHPUT.payload_bytes, value_parser = number)]
    payload: usize,
    /// Commands in the latency run, batch 1 (0 skips it).
    #[arg(long, default_value_t = Workload::LATENCY.proposals, value_parser = number)]
    latency_proposals: usize,
    /// Repeat each run this many times.
    #[arg(long, default_value_t = 1, value_parser = number)]
    runs: usize,
    /// Skip the untimed warm-up run of each workload.
    #[arg(long)]
    no_warmup: bool,
    /// Run only one implementation (no ratios).
    #[arg(long, value_enum)]
    only: Option<Only>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    Core,
    #[value(alias = "raft-rs")]
    Raftrs,
}

/// A count, `_` separators allowed (`200_000`).
fn number(value: &str) -> Result<usize, String> {
    value.replace('_', "").parse().map_err(|_| format!("expected a non-negative integer, got {value:?}"))
}

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

impl Args {
    /// The run plan, or why the flags make no sense together.
    fn from_cli(cli: Cli) -> Result<Args, String> {
        let throughput = Workload { proposals: cli.proposals, batch: cli.batch, payload_bytes: cli.payload };
        throughput.validate().map_err(|e| format!("throughput run: {e}"))?;
        if cli.runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        let latency = (cli.latency_proposals > 0).then_some(Workload {
            proposals: cli.latency_proposals,
            batch: 1,
            payload_bytes: throughput.payload_bytes,
        });
        let (core, raftrs) = match cli.only {
            None => (true, true),
            Some(Only::Core) => (true, false),
            Some(Only::Raftrs) => (false, true),
        };
        Ok(Args { throughput, latency, runs: cli.runs, warmup: !cli.no_warmup, core, raftrs })
    }
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
    let args = match Args::from_cli(Cli::parse()) {
        Ok(args) => args,
        Err(e) => Cli::command().error(clap::error::ErrorKind::ValueValidation, e).exit(),
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

    fn parse(args: &[&str]) -> Result<Args, String> {
        let cli = Cli::try_parse_from(std::iter::once("core-bench").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Args::from_cli(cli)
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let args = parse(&["--proposals", "1_000", "--batch=16", "--payload", "64"]).unwrap();
        assert_eq!(args.throughput, Workload { proposals: 1000, batch: 16, payload_bytes: 64 });
        assert_eq!(args.latency.unwrap().payload_bytes, 64);
        assert!(args.core && args.raftrs);
    }

    #[test]
    fn only_selects_one_side() {
        let args = parse(&["--only", "core"]).unwrap();
        assert!(args.core && !args.raftrs);
        let args = parse(&["--only=raft-rs"]).unwrap();
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
        assert!(parse(&["--frobnicate"]).unwrap_err().contains("unexpected argument"));
        assert!(parse(&["--batch"]).unwrap_err().contains("a value is required"));
        assert!(parse(&["--batch", "x"]).unwrap_err().contains("integer"));
        assert!(parse(&["--batch", "0"]).unwrap_err().contains("batch"));
        assert!(parse(&["--payload", "4"]).unwrap_err().contains("payload"));
        assert!(parse(&["--runs", "0"]).unwrap_err().contains("--runs"));
        assert!(parse(&["--only", "both"]).unwrap_err().contains("--only"));
        assert!(parse(&["--only"]).unwrap_err().contains("a value is required"));
        assert!(parse(&["--latency-proposals", "0"]).unwrap().latency.is_none());
        Cli::command().debug_assert();
    }
}
