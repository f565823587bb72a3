//! Disk-log recovery: `raft_host::DiskLog::open` on a directory whose files
//! the input writes or damages.
//!
//! Two starting points, chosen by the input: an empty log (just its `meta`
//! stamp), or a real log with a snapshot, a truncation and several segments.
//! Then the input adds files with fuzzed names and contents, or damages the
//! existing ones (flips a byte, cuts, appends, replaces, deletes).

use arbitrary::{Result, Unstructured};
use raft_core::{Bytes, Entry, HardState, LogIndex, NodeId, Payload, Snapshot, SnapshotMeta, Term, Write};
use raft_host::{DiskLog, DiskLogOptions, NodeMeta, Recovered};
use std::fs;
use std::path::Path;

/// Small segments, so a short log spans several files.
const SEGMENT_BYTES: u64 = 128;
/// At most this many file operations per input.
const MAX_FILE_OPS: usize = 6;
/// Names tried for new files, besides fuzzed ones.
const NAMES: &[&str] = &[
    "meta",
    "hardstate",
    "snapshot",
    "LOCK",
    "log-00000000000000000001.seg",
    "log-00000000000000000004.seg",
    "log-00000000000000000099.seg",
    "hardstate.tmp",
    "snapshot.tmp",
];

fn me() -> NodeMeta {
    NodeMeta::new(NodeId(1), 42)
}

fn options() -> DiskLogOptions {
    DiskLogOptions::default().segment_bytes(SEGMENT_BYTES)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(Bytes::from(format!("e{index}t{term}").as_str())),
    }
}

fn hard_state(term: u64, vote: u64) -> HardState {
    HardState { term: Term(term), voted_for: Some(NodeId(vote)), ..HardState::default() }
}

/// The writes of the real log, and what a clean recovery returns.
fn history() -> (Vec<Write>, Recovered) {
    let mut writes = Vec::new();
    let mut w = Write::default();
    w.hard_state = Some(hard_state(1, 1));
    w.entries = (1..=6).map(|i| entry(1, i)).collect();
    writes.push(w);
    let mut w = Write::default();
    w.hard_state = Some(hard_state(2, 2));
    w.truncate_from = Some(LogIndex(5));
    w.entries = (5..=7).map(|i| entry(2, i)).collect();
    writes.push(w);
    let mut w = Write::default();
    w.snapshot = Some(Box::new(Snapshot {
        meta: SnapshotMeta { index: LogIndex(3), term: Term(1) },
        data: Bytes::from("state at 3"),
        ..Snapshot::default()
    }));
    w.entries = (8..=9).map(|i| entry(2, i)).collect();
    writes.push(w);
    let mut expected = Recovered::default();
    expected.hard_state = hard_state(2, 2);
    expected.snapshot = writes[2].snapshot.as_deref().cloned();
    expected.entries = (4..=4).map(|i| entry(1, i)).chain((5..=9).map(|i| entry(2, i))).collect();
    (writes, expected)
}

/// Builds the directory the input describes and opens it. No panic on any
/// contents. A clean real log recovers exactly what was written. Whatever
/// opens is a valid log: the entries after the snapshot are contiguous with
/// non-decreasing terms and agree with every entry written at their index;
/// a new entry appended and synced comes back, with everything else, when
/// the log is opened again.
pub fn run(data: &[u8]) {
    let _ = steps(&mut Unstructured::new(data));
}

fn steps(u: &mut Unstructured<'_>) -> Result<()> {
    let tmp = scratch_dir();
    let dir = tmp.path().join("log");
    let real: bool = u.arbitrary()?;
    let (writes, expected) = history();
    {
        let (mut log, _) = DiskLog::open_with(&dir, me(), options()).unwrap_or_else(|e| panic!("fresh log: {e}"));
        if real {
            for w in &writes {
                log.write(w).unwrap_or_else(|e| panic!("writing {w:?}: {e}"));
                log.sync().unwrap_or_else(|e| panic!("sync: {e}"));
            }
        }
    }
    let mut touched = false;
    for _ in 0..u.int_in_range(0..=MAX_FILE_OPS)? {
        touched |= file_op(u, &dir)?;
    }
    let Ok((log, rec)) = DiskLog::open_with(&dir, me(), options()) else {
        // Refusing is allowed (the error names the file); a clean log must open.
        assert!(touched, "a clean log failed to open");
        return Ok(());
    };
    if real && !touched {
        assert_eq!(rec, expected, "a clean log recovered something else");
    }
    check_valid(&rec, real.then_some(&expected));
    reopen_after_append(log, rec, &dir);
    Ok(())
}

/// A fresh directory, in RAM when `/dev/shm` exists: every open and write
/// syncs, which on a real disk makes a run a hundred times slower.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    dir.unwrap_or_else(|e| panic!("no temp dir: {e}"))
}

/// One change to the directory; returns whether it changed anything.
fn file_op(u: &mut Unstructured<'_>, dir: &Path) -> Result<bool> {
    let mut files: Vec<_> = fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    let op = u.int_in_range(0..=5u8)?;
    if op == 5 || files.is_empty() {
        // A new file (or a replaced one) with a fuzzed or a likely name.
        let name = if u.arbitrary()? {
            u.choose(NAMES)?.to_string()
        } else {
            let s: String = u.arbitrary()?;
            s.chars().filter(|c| c.is_ascii_alphanumeric() || "-._".contains(*c)).take(40).collect()
        };
        if name.is_empty() || name == "." || name == ".." {
            return Ok(false);
        }
        let contents: &[u8] = u.arbitrary()?;
        return Ok(fs::write(dir.join(name), contents).is_ok());
    }
    let path = u.choose(&files)?.clone();
    let Ok(mut bytes) = fs::read(&path) else { return Ok(false) };
    match op {
        0 if !bytes.is_empty() => {
            let at = u.choose_index(bytes.len())?;
            bytes[at] ^= 1 << u.int_in_range(0..=7u8)?;
        }
        1 => bytes.truncate(u.int_in_range(0..=bytes.len())?),
        2 => bytes.extend_from_slice(u.arbitrary()?),
        3 => bytes = u.arbitrary::<&[u8]>()?.to_vec(),
        4 => return Ok(fs::remove_file(&path).is_ok()),
        _ => return Ok(false),
    }
    Ok(fs::write(&path, bytes).is_ok())
}

fn last_index(rec: &Recovered) -> LogIndex {
    rec.entries.last().map(|e| e.index).or(rec.snapshot.as_ref().map(|s| s.meta.index)).unwrap_or(LogIndex(0))
}

fn check_valid(rec: &Recovered, written: Option<&Recovered>) {
    let base = rec.snapshot.as_ref().map(|s| s.meta).unwrap_or_default();
    let mut prev = (base.index, base.term);
    for e in &rec.entries {
        assert_eq!(e.index.0, prev.0.0 + 1, "recovered entries are not contiguous: {rec:?}");
        assert!(e.term >= prev.1, "recovered terms decrease: {rec:?}");
        prev = (e.index, e.term);
    }
    if let Some(w) = written {
        // Every entry ever written at an index is the one the final log holds
        // there or an older one at 5-6 (term 1, truncated); recovery may lose
        // a damaged suffix but never invents or mixes entries.
        for e in &rec.entries {
            let now = w.entries.iter().find(|x| x.index == e.index);
            let old = (e.index.0 <= 6).then(|| entry(1, e.index.0));
            assert!(now == Some(e) || old.as_ref() == Some(e), "recovered {e:?}, never written");
        }
    }
}

fn reopen_after_append(mut log: DiskLog, rec: Recovered, dir: &Path) {
    let last = last_index(&rec);
    let term = rec.entries.last().map(|e| e.term).or(rec.snapshot.as_ref().map(|s| s.meta.term)).unwrap_or(Term(1));
    let mut w = Write::default();
    w.entries = vec![Entry { term, index: LogIndex(last.0 + 1), payload: Payload::Command(Bytes::from("after")) }];
    if last.0 >= u64::MAX / 2 {
        return; // an index near the top (a fuzzed snapshot file); appending is refused
    }
    log.write(&w).unwrap_or_else(|e| panic!("appending i{} to a recovered log {rec:?}: {e}", last.0 + 1));
    log.sync().unwrap_or_else(|e| panic!("sync: {e}"));
    drop(log);
    let (_, again) =
        DiskLog::open_with(dir, me(), options()).unwrap_or_else(|e| panic!("reopening after an append: {e}"));
    let mut expected = rec;
    expected.entries.extend(w.entries);
    assert_eq!(again, expected, "the log reopened differently after an append");
}
