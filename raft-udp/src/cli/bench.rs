//! `raft-udp bench`: closed-loop put load.

use super::args;
use crate::client::{Client, CommandOutcome};
use clap::Args;
use raft_host::KvOp;
use serde_json::json;
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
}

#[derive(Default)]
struct Progress {
    writes: AtomicU64,
    errors: AtomicU64,
}

/// Each client puts to its own 1024 keys until the time is up; returns its latencies.
async fn one_client(
    mut client: Client,
    index: u64,
    value: String,
    until: Instant,
    progress: Arc<Progress>,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while Instant::now() < until {
        let op = KvOp::put(format!("bench-{index}-{}", n % 1024), value.clone());
        n += 1;
        let started = Instant::now();
        match client.execute(op).await {
            CommandOutcome::Ok(_) => {
                latencies.push(started.elapsed());
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
    let key = crate::keyfile::read_key(&a.key_file)?.key;
    if a.value_size > crate::server::MAX_ENTRY_BYTES / 2 {
        return Err(format!(
            "--value-size {} is too large (at most {})",
            a.value_size,
            crate::server::MAX_ENTRY_BYTES / 2
        ));
    }
    let value: String = (0..a.value_size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    super::runtime()?.block_on(async {
        let timeout = Duration::from_millis(a.timeout_ms);
        let progress = Arc::new(Progress::default());
        let started = Instant::now();
        let until = started + a.duration;
        let mut tasks = Vec::new();
        for i in 0..a.clients {
            let client = Client::connect(a.servers.clone(), key.clone(), timeout)
                .await
                .map_err(|e| format!("cannot open a client socket: {e}"))?;
            tasks.push(tokio::spawn(one_client(client, i, value.clone(), until, progress.clone())));
        }
        let ticker = tokio::spawn(report_progress(progress.clone(), started));
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap_or_default());
        }
        ticker.abort();
        let elapsed = started.elapsed().as_secs_f64();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        latencies.sort_unstable();
        let writes = latencies.len() as u64;
        let line = json!({
            "clients": a.clients,
            "duration_s": (elapsed * 1000.0).round() / 1000.0,
            "writes": writes,
            "writes_per_sec": (writes as f64 / elapsed).round(),
            "p50_ms": percentile_ms(&latencies, 50.0),
            "p99_ms": percentile_ms(&latencies, 99.0),
            "max_ms": latencies.last().map_or(0.0, |d| (d.as_secs_f64() * 1e6).round() / 1e3),
            "errors": progress.errors.load(Ordering::Relaxed),
        });
        super::kv::print_line(&line.to_string());
        Ok(if writes == 0 { 1 } else { 0 })
    })
}

/// A progress line on stderr every second (redrawn in place on a terminal).
async fn report_progress(progress: Arc<Progress>, started: Instant) {
    let tty = std::io::stderr().is_terminal();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let writes = progress.writes.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let line = format!(
            "bench: {:>5.1}s  {writes} writes  {}/s  {errors} errors",
            started.elapsed().as_secs_f64(),
            writes - last
        );
        last = writes;
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
