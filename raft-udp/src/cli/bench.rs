//! `raft-udp bench`: closed-loop put (and get) load, with an optional
//! measurement of the physical floor first ([`super::floor`]).

use super::args;
use crate::client::{Client, CommandOutcome};
use clap::Args;
use raft_host::KvOp;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub(crate) struct BenchArgs {
    /// The nodes' addresses, comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',', required = true, value_parser = args::addr)]
    servers: Vec<SocketAddr>,
    /// File holding the cluster key.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Concurrent clients; each waits for its reply before its next put.
    #[arg(long, default_value = "64", value_parser = args::positive)]
    clients: u64,
    /// How long to run: 10s, 500ms, 2m...
    #[arg(long, default_value = "10s", value_parser = args::duration)]
    duration: Duration,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    value_size: usize,
    /// Give up on one put after this many milliseconds (counted as an error).
    #[arg(long, default_value = "2000", value_parser = args::positive)]
    timeout_ms: u64,
    /// Fraction of operations that are gets (linearizable ReadIndex reads), 0.0 to 1.0.
    #[arg(long, default_value = "0", value_parser = ratio)]
    read_ratio: f64,
    /// First measure the floor of one durable write (round trips to the
    /// nodes + fdatasync in --floor-dir) and report p50 as a multiple of it.
    #[arg(long)]
    floor: bool,
    /// Where the floor probe times fdatasync: a directory on the nodes' file system.
    #[arg(long, value_name = "DIR", default_value = ".")]
    floor_dir: PathBuf,
}

/// A fraction from 0.0 to 1.0.
fn ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("expected a fraction from 0.0 to 1.0, found {text:?}")),
    }
}

#[derive(Default)]
struct Progress {
    writes: AtomicU64,
    reads: AtomicU64,
    errors: AtomicU64,
}

/// Latencies of one client's successful operations.
#[derive(Default)]
struct Latencies {
    writes: Vec<Duration>,
    reads: Vec<Duration>,
}

/// Each client puts to (and, `read_ratio` of the time, gets from) its own
/// 1024 keys until the time is up; returns its latencies.
async fn one_client(
    mut client: Client,
    index: u64,
    value: String,
    read_ratio: f64,
    until: Instant,
    progress: Arc<Progress>,
) -> Latencies {
    let mut latencies = Latencies::default();
    let mut n = 0u64;
    let mut rng = crate::random_u64() | 1;
    while Instant::now() < until {
        // xorshift64: which operation comes next.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let read = ((rng >> 11) as f64 / (1u64 << 53) as f64) < read_ratio;
        let key = format!("bench-{index}-{}", n % 1024);
        let op = if read { KvOp::get(key) } else { KvOp::put(key, value.clone()) };
        n += 1;
        let started = Instant::now();
        match client.execute(op).await {
            CommandOutcome::Ok(_) if read => {
                latencies.reads.push(started.elapsed());
                progress.reads.fetch_add(1, Ordering::Relaxed);
            }
            CommandOutcome::Ok(_) => {
                latencies.writes.push(started.elapsed());
                progress.writes.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                progress.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    latencies
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let d = sorted[rank.clamp(1, sorted.len()) - 1];
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub(super) fn run(a: &BenchArgs) -> Result<u8, String> {
    let key = crate::keyfile::read_key(&a.key_file)?;
    if a.value_size > crate::server::MAX_ENTRY_BYTES / 2 {
        return Err(format!(
            "--value-size {} is too large (at most {})",
            a.value_size,
            crate::server::MAX_ENTRY_BYTES / 2
        ));
    }
    let value: String = (0..a.value_size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    super::runtime()?.block_on(async {
        // The entry a put makes: the value, its key and the session's framing, about.
        let record_bytes = a.value_size + 64;
        let floor = match a.floor {
            true => Some(super::floor::measure(&a.servers, &key, &a.floor_dir, record_bytes).await?),
            false => None,
        };
        let timeout = Duration::from_millis(a.timeout_ms);
        let progress = Arc::new(Progress::default());
        let started = Instant::now();
        let until = started + a.duration;
        let mut tasks = Vec::new();
        for i in 0..a.clients {
            let client = Client::connect(a.servers.clone(), key.clone(), timeout)
                .await
                .map_err(|e| format!("cannot open a client socket: {e}"))?;
            tasks.push(tokio::spawn(one_client(client, i, value.clone(), a.read_ratio, until, progress.clone())));
        }
        let ticker = tokio::spawn(report_progress(progress.clone(), started));
        let (mut latencies, mut reads) = (Vec::new(), Vec::new());
        for t in tasks {
            let l = t.await.unwrap_or_default();
            latencies.extend(l.writes);
            reads.extend(l.reads);
        }
        ticker.abort();
        let elapsed = started.elapsed().as_secs_f64();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        latencies.sort_unstable();
        reads.sort_unstable();
        let writes = latencies.len() as u64;
        let mut line = json!({
            "clients": a.clients,
            "duration_s": (elapsed * 1000.0).round() / 1000.0,
            "writes": writes,
            "writes_per_sec": (writes as f64 / elapsed).round(),
            "p50_ms": percentile_ms(&latencies, 50.0),
            "p99_ms": percentile_ms(&latencies, 99.0),
            "max_ms": latencies.last().map_or(0.0, |d| (d.as_secs_f64() * 1e6).round() / 1e3),
            "errors": progress.errors.load(Ordering::Relaxed),
            "reads": reads.len(),
            "reads_per_sec": (reads.len() as f64 / elapsed).round(),
            "read_p50_ms": percentile_ms(&reads, 50.0),
            "read_p99_ms": percentile_ms(&reads, 99.0),
        });
        if let (Some(floor), Some(fields)) = (floor, line.as_object_mut()) {
            let Value::Object(parts) = floor.json() else { unreachable!("an object") };
            fields.extend(parts);
            let p50 = percentile_ms(&latencies, 50.0);
            let ratio = p50 / super::floor::ms(floor.total()).max(0.001);
            fields.insert("p50_over_floor".into(), json!((ratio * 100.0).round() / 100.0));
        }
        super::kv::print_line(&line.to_string());
        Ok(if writes + reads.len() as u64 == 0 { 1 } else { 0 })
    })
}

/// A progress line on stderr every second (redrawn in place on a terminal).
async fn report_progress(progress: Arc<Progress>, started: Instant) {
    let tty = std::io::stderr().is_terminal();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let writes = progress.writes.load(Ordering::Relaxed);
        let reads = progress.reads.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let line = format!(
            "bench: {:>5.1}s  {writes} writes  {reads} reads  {}/s  {errors} errors",
            started.elapsed().as_secs_f64(),
            writes + reads - last
        );
        last = writes + reads;
        let mut err = std::io::stderr().lock();
        let _ = if tty { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 50.0), 50.0);
        assert_eq!(percentile_ms(&d, 99.0), 99.0);
        assert_eq!(percentile_ms(&[], 99.0), 0.0);
    }
}
