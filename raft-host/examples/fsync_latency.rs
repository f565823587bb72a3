//! fdatasync latency of one small durable append, on the disk holding the
//! given directory (default: the system temp directory; use a real disk, not
//! tmpfs): a raw 256-byte append that grows a file, a raw 256-byte overwrite
//! in a preallocated file, and a `DiskLog` write + sync of one entry with a
//! 256-byte command (which also moves the segment's synced watermark).
//!
//! `cargo run --release -p raft-host --example fsync_latency -- [DIR] [N]`

use raft_core::{Bytes, Entry, LogIndex, NodeId, Payload, Term, Write};
use raft_host::{DiskLog, DiskLogOptions, NodeMeta};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

const RECORD: usize = 256;

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_micros();
    println!(
        "{what:<58} p50 {:>6} µs   p99 {:>6} µs   max {:>6} µs   (n = {})",
        at(0.5),
        at(0.99),
        at(1.0),
        samples.len()
    );
}

fn raw_growing(dir: &Path, n: usize) -> Vec<Duration> {
    let path = dir.join("growing");
    let mut f = OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let buf = [7u8; RECORD];
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&buf).unwrap();
            f.sync_data().unwrap();
            t.elapsed()
        })
        .collect();
    std::fs::remove_file(path).unwrap();
    samples
}

fn raw_preallocated(dir: &Path, n: usize) -> Vec<Duration> {
    let path = dir.join("preallocated");
    let mut f = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    f.write_all(&vec![0u8; n * RECORD + 4096]).unwrap();
    f.sync_all().unwrap();
    let buf = [7u8; RECORD];
    let samples = (0..n)
        .map(|i| {
            let t = Instant::now();
            f.seek(SeekFrom::Start((i * RECORD) as u64)).unwrap();
            f.write_all(&buf).unwrap();
            f.sync_data().unwrap();
            t.elapsed()
        })
        .collect();
    std::fs::remove_file(path).unwrap();
    samples
}

fn disk_log(dir: &Path, n: usize, options: DiskLogOptions) -> Vec<Duration> {
    let dir = dir.join("disklog");
    let _ = std::fs::remove_dir_all(&dir);
    let (mut log, _) = DiskLog::open_with(&dir, NodeMeta::new(NodeId(1), 1), options).unwrap();
    let samples = (1..=n as u64)
        .map(|i| {
            let mut w = Write::default();
            w.entries.push(Entry {
                term: Term(1),
                index: LogIndex(i),
                payload: Payload::Command(Bytes::from(vec![7u8; RECORD])),
            });
            let t = Instant::now();
            log.write(&w).unwrap();
            log.sync().unwrap();
            t.elapsed()
        })
        .collect();
    drop(log);
    std::fs::remove_dir_all(&dir).unwrap();
    samples
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    let n: usize = args.next().map_or(2000, |s| s.parse().expect("N must be a number"));
    let dir = tempfile::tempdir_in(&base).unwrap();
    println!("fdatasync latency in {} ({n} samples each)", base.display());
    report("raw: append 256 B to a growing file + fdatasync", raw_growing(dir.path(), n));
    report("raw: overwrite 256 B in a preallocated file + fdatasync", raw_preallocated(dir.path(), n));
    report("DiskLog: write + sync of one 256-B entry", disk_log(dir.path(), n, DiskLogOptions::default()));
}
