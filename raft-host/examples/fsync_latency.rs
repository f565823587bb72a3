//! fdatasync latency of one small durable append, on the disk holding the
//! given directory (default: the system temp directory; use a real disk, not
//! tmpfs). Four cases, measured in turn sample by sample (so that load from
//! elsewhere hits all of them alike):
//!
//! * raw: a 256-byte append that grows a file, then fdatasync;
//! * raw: a 256-byte overwrite in a preallocated (zero-filled) file, then fdatasync;
//! * `DiskLog` write + sync of one entry with a 256-byte command, growing
//!   segment (`preallocate_bytes(0)`): two fdatasyncs, the records then the
//!   segment's synced watermark;
//! * the same with the default preallocated segments.
//!
//! `cargo run --release -p raft-host --example fsync_latency -- [DIR] [N]`

use raft_core::{Bytes, Entry, LogIndex, NodeId, Payload, Term, Write};
use raft_host::{DiskLog, DiskLogOptions, NodeMeta};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

const RECORD: usize = 256;

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_micros();
    println!(
        "{what:<48} p50 {:>6} µs   p90 {:>6} µs   p99 {:>6} µs   (n = {})",
        at(0.5),
        at(0.9),
        at(0.99),
        samples.len()
    );
}

/// One way of making 256 bytes durable.
enum Case {
    Growing(File),
    Preallocated(File, u64),
    Log(Box<DiskLog>, u64),
}

impl Case {
    fn step(&mut self) {
        let buf = [7u8; RECORD];
        match self {
            Case::Growing(f) => {
                f.write_all(&buf).unwrap();
                f.sync_data().unwrap();
            }
            Case::Preallocated(f, at) => {
                f.seek(SeekFrom::Start(*at)).unwrap();
                f.write_all(&buf).unwrap();
                f.sync_data().unwrap();
                *at += RECORD as u64;
            }
            Case::Log(log, next) => {
                let mut w = Write::default();
                w.entries.push(Entry {
                    term: Term(1),
                    index: LogIndex(*next),
                    payload: Payload::Command(Bytes::from(buf.to_vec())),
                });
                log.write(&w).unwrap();
                log.sync().unwrap();
                *next += 1;
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    let n: usize = args.next().map_or(2000, |s| s.parse().expect("N must be a number"));
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let dir: &Path = tmp.path();
    let growing = OpenOptions::new().create(true).append(true).open(dir.join("growing")).unwrap();
    let mut prealloc = OpenOptions::new().create(true).truncate(true).write(true).open(dir.join("prealloc")).unwrap();
    prealloc.write_all(&vec![0u8; n * RECORD + 4096]).unwrap();
    prealloc.sync_all().unwrap();
    let me = NodeMeta::new(NodeId(1), 1);
    let open = |name: &str, options| DiskLog::open_with(dir.join(name), me, options).unwrap().0;
    let mut cases = [
        ("raw: append 256 B to a growing file", Case::Growing(growing)),
        ("raw: overwrite 256 B in a preallocated file", Case::Preallocated(prealloc, 0)),
        (
            "DiskLog, growing segment",
            Case::Log(Box::new(open("grow", DiskLogOptions::default().preallocate_bytes(0))), 1),
        ),
        ("DiskLog, preallocated segment (default)", Case::Log(Box::new(open("pre", DiskLogOptions::default())), 1)),
    ];
    let mut samples: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::with_capacity(n)).collect();
    for _ in 0..n {
        for (case, out) in cases.iter_mut().zip(&mut samples) {
            let t = Instant::now();
            case.1.step();
            out.push(t.elapsed());
        }
    }
    println!("durable 256-byte appends in {} ({n} samples each, interleaved)", base.display());
    for ((what, _), s) in cases.iter().zip(samples) {
        report(what, s);
    }
}
