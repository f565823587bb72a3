//! The soak runner behind `sim soak`: every simulator scenario and property
//! test binary of this package (`tests/*.rs`), over many seeds, on every
//! core.
//!
//! It builds the test binaries once (`cargo test -p raft-tests --no-run`,
//! test profile), then runs them in chunks, `--jobs` at a time, giving each
//! binary about the same share of the time (so fast ones run more seeds),
//! until every seed ran or `--minutes` passed: chunk `k` of
//! a binary runs each of its seeded tests over `--chunk` seeds starting at
//! `--offset + k * chunk` past the test's own base (`RAFT_SEEDS`,
//! `RAFT_SEED_OFFSET`; quickcheck tests get a generator seed of their own
//! per chunk, `RAFT_QC_SEED`). Seeds are counted as the tests report them
//! ([`crate::sim::soak_report`]), so a test without seeds counts nothing
//! and its binary is run once only. `long_run` runs 20,000 proposals per
//! seed here instead of 1,000,000 (`RAFT_LONG_PROPOSALS`). Progress goes to standard output every
//! few seconds (seeds, seeds per second); a failing chunk prints its
//! failing tests, the seed, the command that replays it, and where its whole
//! output was saved. The exit status is 1 if anything failed.
//!
//! Reading the wall clock and spawning processes is fine here: this is the
//! driver around the deterministic runs, not part of them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a test prints (on standard error, under `RAFT_SOAK=1`) before the
/// number of seeds that just passed.
pub const MARKER: &str = "raft-soak: seeds passed: ";

/// Proposals per seed of `long_run` in a soak (its default is 1,000,000).
const LONG_RUN_PROPOSALS: u64 = 20_000;

/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The soak command's options (`sim soak --help`).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct SoakArgs {
    /// Seeds per seeded test of each binary.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// Seeds per test in one run of a binary (at most `--seeds`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk: u64,
    /// Runs at once (one per core unless told).
    #[arg(long, default_value_t = every_core(), value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub jobs: u64,
    /// Added to every seed range, so that soaks can cover fresh seeds.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Only these test binaries, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Start no chunk after this many minutes (default: run every seed).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub minutes: Option<u64>,
}

/// One job per core the system reports.
fn every_core() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

impl SoakArgs {
    /// Seeds per test in one run: `--chunk`, but no more than `--seeds`.
    fn chunk_len(&self) -> u64 {
        self.chunk.min(self.seeds)
    }
}

/// One test binary.
#[derive(Clone, Debug)]
struct Kind {
    name: String,
    exe: PathBuf,
}

/// Builds the test binaries and returns them, by name.
fn build(workspace: &Path) -> Result<Vec<Kind>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building the test binaries: {cargo} test -p raft-tests --no-run");
    let out = Command::new(&cargo)
        .args(["test", "-p", "raft-tests", "--no-run", "--message-format=json-render-diagnostics"])
        .current_dir(workspace)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!("the build failed ({})", out.status));
    }
    let mut kinds = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let target = &v["target"];
        let is_test = target["kind"].as_array().is_some_and(|k| k.iter().any(|x| x == "test"));
        if let (true, Some(name), Some(exe)) = (is_test, target["name"].as_str(), v["executable"].as_str()) {
            kinds.push(Kind { name: name.to_owned(), exe: PathBuf::from(exe) });
        }
    }
    kinds.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(kinds)
}

/// A failed chunk, as reported.
#[derive(Debug)]
struct Failure {
    kind: String,
    report: String,
}

/// Per-kind counters.
#[derive(Debug, Default, Clone)]
struct Tally {
    seeds: u64,
    chunks: u64,
    busy: Duration,
    failed: u64,
    unseeded: bool,
}

/// What every worker shares.
#[derive(Debug)]
struct Shared {
    /// The next chunk of each kind.
    next: Vec<u64>,
    /// Chunks of each kind.
    chunks: u64,
    /// No chunk starts after this.
    stop_at: Option<Instant>,
    /// Chunks of each kind running now.
    running: Vec<u32>,
    tallies: Vec<Tally>,
    failures: Vec<Failure>,
}

impl Shared {
    /// The next chunk to run: of the kind with the least running time so
    /// far (each kind gets about the same share of the machine, so fast
    /// ones run more seeds), `None` when all are done or time is up. A
    /// binary that counted no seeds runs once.
    fn take(&mut self) -> Option<(usize, u64)> {
        if self.stop_at.is_some_and(|t| Instant::now() >= t) {
            return None;
        }
        let cost = |t: &Tally, running: u32| {
            let each = if t.chunks == 0 { Duration::from_secs(10) } else { t.busy / t.chunks as u32 };
            t.busy + each * running
        };
        let i = (0..self.next.len())
            .filter(|&i| self.next[i] < self.chunks && !self.tallies[i].unseeded)
            .min_by_key(|&i| cost(&self.tallies[i], self.running[i]))?;
        self.running[i] += 1;
        let k = self.next[i];
        self.next[i] += 1;
        Some((i, k))
    }
}

/// A small, well-mixed number from `(a, b)`: the quickcheck seed of a chunk.
fn mix(a: u64, b: u64) -> u64 {
    crate::sim::rng::mix64(a ^ crate::sim::rng::mix64(b))
}

/// Runs chunk `k` of `kind`; returns the seeds it reported and, if it
/// failed, what to print.
fn run_chunk(args: &SoakArgs, kind: &Kind, index: usize, k: u64, logs: &Path) -> (u64, Option<String>) {
    let offset = args.offset + k * args.chunk_len();
    let qc = mix(offset, index as u64 + 1);
    let out = Command::new(&kind.exe)
        .args(["--test-threads", "1", "--nocapture"])
        .env_remove("RAFT_SEED")
        .env("RAFT_SEEDS", args.chunk_len().to_string())
        .env("RAFT_SEED_OFFSET", offset.to_string())
        .env("RAFT_QC_SEED", qc.to_string())
        .env("RAFT_SOAK", "1")
        .env("RAFT_LONG_PROPOSALS", LONG_RUN_PROPOSALS.to_string())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return (0, Some(format!("cannot run {}: {e}", kind.exe.display()))),
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let seeds: u64 = stderr
        .lines()
        .chain(stdout.lines())
        .filter_map(|l| l.strip_prefix(MARKER).and_then(|n| n.trim().parse::<u64>().ok()))
        .sum();
    if out.status.success() {
        return (seeds, None);
    }
    let log = logs.join(format!("{}-{offset}.log", kind.name));
    let _ = std::fs::write(&log, format!("{stdout}\n---- stderr ----\n{stderr}"));
    let mut r = String::new();
    let _ = writeln!(r, "FAILED: {} chunk at offset {offset} ({})", kind.name, out.status);
    let failed_tests: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter_map(|l| l.strip_prefix("test ").and_then(|t| t.strip_suffix(" ... FAILED")))
        .collect();
    let seeds_failed: Vec<&str> =
        stderr.lines().filter_map(|l| l.strip_prefix("FAILED with seed ").and_then(|t| t.split(';').next())).collect();
    let panics: Vec<&str> = stderr.lines().filter(|l| l.contains("panicked at")).collect();
    for t in &failed_tests {
        let _ = writeln!(r, "  test {t}");
    }
    for p in panics.iter().take(3) {
        let _ = writeln!(r, "  {p}");
    }
    let filter = failed_tests.first().map_or(String::new(), |t| format!(" -- --exact {t}"));
    match seeds_failed.first() {
        Some(seed) => {
            let _ = writeln!(r, "  replay: RAFT_SEED={seed} cargo test -p raft-tests --test {}{filter}", kind.name);
        }
        None => {
            let _ = writeln!(
                r,
                "  replay: RAFT_QC_SEED={qc} RAFT_SEEDS={} RAFT_SEED_OFFSET={offset} cargo test -p raft-tests --test {}{filter}",
                args.chunk_len(),
                kind.name
            );
        }
    }
    let _ = writeln!(r, "  whole output: {}", log.display());
    (seeds, Some(r))
}

/// Runs the soak; returns whether everything passed.
pub fn run(args: &SoakArgs) -> Result<bool, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut kinds = build(&workspace)?;
    if !args.kinds.is_empty() {
        if let Some(k) = args.kinds.iter().find(|k| !kinds.iter().any(|x| &&x.name == k)) {
            let all: Vec<&str> = kinds.iter().map(|k| k.name.as_str()).collect();
            return Err(format!("no test binary {k:?} (there are: {})", all.join(", ")));
        }
        kinds.retain(|k| args.kinds.contains(&k.name));
    }
    let logs = workspace.join("target").join("soak");
    // Run copies, so that a rebuild during a long soak replaces nothing in use.
    let bin = logs.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("cannot create {}: {e}", bin.display()))?;
    for k in &mut kinds {
        let copy = bin.join(&k.name);
        std::fs::copy(&k.exe, &copy)
            .map_err(|e| format!("cannot copy {} to {}: {e}", k.exe.display(), copy.display()))?;
        k.exe = copy;
    }
    let chunks = args.seeds.div_ceil(args.chunk_len());
    // Chunk-major order: every kind makes progress from the start.
    println!(
        "soak: {} test binaries x {} seeds per test, in chunks of {}, {} at once (offset {})",
        kinds.len(),
        args.seeds,
        args.chunk_len(),
        args.jobs,
        args.offset
    );
    let shared = Arc::new(Mutex::new(Shared {
        next: vec![0; kinds.len()],
        running: vec![0; kinds.len()],
        chunks,
        stop_at: args.minutes.map(|m| Instant::now() + Duration::from_secs(m * 60)),
        tallies: vec![Tally::default(); kinds.len()],
        failures: Vec::new(),
    }));
    let start = Instant::now();
    let workers: Vec<_> = (0..args.jobs)
        .map(|_| {
            let (shared, kinds, args, logs) = (Arc::clone(&shared), kinds.clone(), args.clone(), logs.clone());
            std::thread::spawn(move || {
                loop {
                    let job = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let Some((i, k)) = job else { return };
                    let t0 = Instant::now();
                    let (seeds, failure) = run_chunk(&args, &kinds[i], i, k, &logs);
                    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    s.running[i] -= 1;
                    let t = &mut s.tallies[i];
                    t.seeds += seeds;
                    t.chunks += 1;
                    t.busy += t0.elapsed();
                    t.unseeded |= seeds == 0 && failure.is_none();
                    if let Some(report) = failure {
                        t.failed += 1;
                        print!("{report}");
                        s.failures.push(Failure { kind: kinds[i].name.clone(), report });
                    }
                }
            })
        })
        .collect();
    let mut last = Instant::now();
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            let total: u64 = s.tallies.iter().map(|t| t.seeds).sum();
            let secs = start.elapsed().as_secs_f64();
            println!(
                "[{:>6.0} s] {total} seeds passed ({:.0}/s), {} chunks run, {} failures",
                secs,
                total as f64 / secs.max(1e-9),
                s.tallies.iter().map(|t| t.chunks).sum::<u64>(),
                s.failures.len()
            );
        }
    }
    for w in workers {
        let _ = w.join();
    }
    let s = shared.lock().unwrap_or_else(|e| e.into_inner());
    let secs = start.elapsed().as_secs_f64();
    println!("\n{:<20} {:>10} {:>7} {:>12} {:>8}", "test binary", "seeds", "chunks", "seeds/cpu-s", "failed");
    for (k, t) in kinds.iter().zip(&s.tallies) {
        let rate = t.seeds as f64 / t.busy.as_secs_f64().max(1e-9);
        let seeds = if t.unseeded { "(no seeds)".to_owned() } else { t.seeds.to_string() };
        println!("{:<20} {seeds:>10} {:>7} {rate:>12.1} {:>8}", k.name, t.chunks, t.failed);
    }
    let total: u64 = s.tallies.iter().map(|t| t.seeds).sum();
    println!(
        "soak: {total} seeds passed in {secs:.0} s ({:.0} seeds/s) on {} jobs; {} failed chunks",
        total as f64 / secs.max(1e-9),
        args.jobs,
        s.failures.len()
    );
    for f in &s.failures {
        print!("[{}] {}", f.kind, f.report);
    }
    Ok(s.failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        soak: SoakArgs,
    }

    fn parse(v: &[&str]) -> Result<SoakArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("soak").chain(v.iter().copied())).map(|c| c.soak)
    }

    #[test]
    fn flags() {
        let a = parse(&["--seeds", "100", "--chunk=30", "--jobs", "3", "--kinds", "figure8,election"]).unwrap();
        assert_eq!((a.seeds, a.chunk_len(), a.jobs, a.offset), (100, 30, 3, 0));
        assert_eq!(a.kinds, ["figure8", "election"]);
        assert_eq!(parse(&["--seeds", "10"]).unwrap().chunk_len(), 10, "a chunk is at most the seeds");
        assert_eq!(parse(&[]).unwrap().jobs, every_core());
        for bad in [&["--seeds", "0"][..], &["--jobs"], &["--chunk", "x"], &["--minutes", "0"], &["--bogus"]] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
        assert_eq!(parse(&["--help"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
