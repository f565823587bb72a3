//! Start-up: rebuilding the log from the directory, cutting off a torn tail,
//! refusing anything a crash cannot explain.

use super::error::StorageError;
use super::files;
use super::fs::{Fs, OpenMode};
use super::record::{self, Change, Record};
use super::segment;
use super::shape::Shape;
use super::{hard_state, snapshot_file};
use raft_core::{Entry, HardState, LogIndex, Snapshot, SnapshotDigest, SnapshotMeta};
use std::path::{Path, PathBuf};

/// Everything read back from a directory.
#[derive(Debug)]
pub(super) struct Recovery {
    pub(super) hard_state: HardState,
    pub(super) snapshot: Option<Snapshot>,
    /// Set (and the snapshot's data left empty) when recovery was asked to
    /// leave the snapshot's data on disk.
    pub(super) snapshot_digest: Option<SnapshotDigest>,
    /// The entries after the snapshot.
    pub(super) entries: Vec<Entry>,
    pub(super) shape: Shape,
    /// The segment to keep appending to.
    pub(super) last_segment: Option<LastSegment>,
    /// The first index of every segment left, in order.
    pub(super) segments: Vec<u64>,
    /// A snapshot file newer than the log's last `Snapshot` record (a crash
    /// came between the two) is already applied to `entries` and `shape`; the
    /// caller must append these records for it (a `Truncate` if it disagrees
    /// with an entry the log holds, then the `Snapshot`), each with the log's
    /// next index before it.
    pub(super) adopted: Vec<(Change<'static>, u64)>,
}

/// The last segment as recovery left it.
#[derive(Debug)]
pub(super) struct LastSegment {
    pub(super) path: PathBuf,
    pub(super) first_index: u64,
    /// Where its valid records end.
    pub(super) len: u64,
    /// The file's size (zeros after `len`).
    pub(super) file_len: u64,
    /// Its synced watermark and the watermark's generation.
    pub(super) synced: u64,
    pub(super) generation: u64,
}

/// The log's entries and shape, rebuilt record by record.
#[derive(Default)]
struct Replay {
    shape: Shape,
    entries: Vec<Entry>,
}

impl Replay {
    fn apply(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Append(e) => {
                self.shape.check_append(e.index, e.term)?;
                self.shape.push(e.term);
                self.entries.push(e);
            }
            Record::Truncate { from } => {
                self.shape.check_truncate(from)?;
                self.shape.truncate(from);
                // `entries` are exactly the entries whose terms the shape knows.
                self.entries.truncate(self.shape.known_len());
            }
            Record::Snapshot { index, term } => {
                let meta = SnapshotMeta { index, term };
                self.shape.check_snapshot(meta)?;
                self.compact(meta);
            }
        }
        Ok(())
    }

    fn compact(&mut self, meta: SnapshotMeta) {
        let known_before = self.shape.known_len();
        if self.shape.compact(meta) {
            let dropped = known_before - self.shape.known_len();
            self.entries.drain(..dropped);
        } else {
            self.entries.clear();
        }
    }
}

/// True if `dir` holds anything a log writes besides its stamp.
pub(super) fn has_data(fs: &dyn Fs, dir: &Path) -> Result<bool, StorageError> {
    let exists = |p: PathBuf| fs.exists(&p).map_err(StorageError::io("stat", &p));
    Ok(exists(hard_state::path(dir))? || exists(snapshot_file::path(dir))? || !list_segments(fs, dir)?.is_empty())
}

/// The segments in `dir`, by first index. Removes segments whose creation a
/// crash interrupted (they never held a record).
pub(super) fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for name in fs.list(dir).map_err(StorageError::io("list", dir))? {
        let Some(name) = name.to_str() else { continue };
        let path = dir.join(name);
        if segment::is_leftover(name) {
            fs.remove_file(&path).map_err(StorageError::io("remove leftover", &path))?;
            continue;
        }
        let Some(parsed) = segment::parse_name(name) else {
            continue;
        };
        let first = parsed.ok_or_else(|| StorageError::corrupt(&path, 0, "malformed segment file name"))?;
        found.push((first, path));
    }
    found.sort();
    Ok(found)
}

/// Reads everything back. See [`DiskLog`](super::DiskLog) for the rules.
/// With `data_in_memory` false the snapshot's data stays on disk (checked,
/// not kept).
pub(super) fn recover(fs: &dyn Fs, dir: &Path, data_in_memory: bool) -> Result<Recovery, StorageError> {
    let hard_state = hard_state::read(fs, dir)?;
    let (snapshot, snapshot_digest) = if data_in_memory {
        (snapshot_file::read(fs, dir)?, None)
    } else {
        snapshot_file::read_digest(fs, dir)?.map_or((None, None), |(s, d)| (Some(s), Some(d)))
    };
    let segments = list_segments(fs, dir)?;
    let mut replay = Replay::default();
    if let Some((first, path)) = segments.first()
        && *first != 1
    {
        // Compaction removed the segments before it: the snapshot must cover
        // every entry they held, and replay starts with those entries opaque.
        match snapshot.as_ref().map(|s| s.meta.index.0) {
            None => {
                let why = format!("missing, but the first segment starts at index {first}, not 1");
                return Err(StorageError::corrupt(snapshot_file::path(dir), 0, why));
            }
            Some(s) if *first == 0 || s < *first - 1 => {
                let why = format!(
                    "the first segment starts at index {first}, but the snapshot covers only up to index {s} (missing segment)"
                );
                return Err(StorageError::corrupt(path, 0, why));
            }
            Some(_) => {}
        }
        replay.shape = Shape::after_removed_segments(*first);
    }
    let mut last_segment = None;
    for (i, (first, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let bytes = fs.read(path).map_err(StorageError::io("read", path))?;
        let scan = segment::scan(&bytes, *first, is_last, path)?;
        if replay.shape.next_index() != *first {
            let why = format!(
                "segment starts at index {first} but the log before it ends at {} (missing or extra segment)",
                replay.shape.next_index() - 1
            );
            return Err(StorageError::corrupt(path, 0, why));
        }
        for (offset, payload) in scan.frames {
            let record = record::decode(payload)
                .map_err(|e| StorageError::corrupt(path, offset as u64, format!("undecodable record: {e}")))?;
            replay.apply(record).map_err(|why| StorageError::corrupt(path, offset as u64, why))?;
        }
        let len = scan.end as u64;
        let mut file_len = bytes.len() as u64;
        if scan.torn {
            file_len = len;
            // Beyond the synced watermark: written by a sync that never
            // returned, so nothing there was acknowledged.
            let mut file = fs.open(path, OpenMode::Existing).map_err(StorageError::io("open", path))?;
            file.set_len(len).map_err(StorageError::io("cut torn tail of", path))?;
            file.sync_all().map_err(StorageError::io("fsync", path))?;
        }
        last_segment = Some(LastSegment {
            path: path.clone(),
            first_index: *first,
            len,
            file_len,
            synced: scan.synced,
            generation: scan.generation,
        });
    }
    let base = replay.shape.base();
    let mut adopted = Vec::new();
    let snapshot_path = snapshot_file::path(dir);
    match &snapshot {
        None if base.index == LogIndex(0) => {}
        None => {
            let why = format!("the log records a snapshot at index {} but there is no snapshot file", base.index);
            return Err(StorageError::corrupt(snapshot_path, 0, why));
        }
        // Stored, but the crash came before its log record was: apply it now.
        Some(s) if s.meta.index > base.index => {
            if let Some(from) = replay.shape.conflict_from(s.meta) {
                adopted.push((Change::Truncate(from), replay.shape.next_index()));
                replay.apply(Record::Truncate { from }).map_err(|why| StorageError::corrupt(&snapshot_path, 0, why))?;
            }
            adopted.push((Change::Snapshot(s.meta), replay.shape.next_index()));
            replay.compact(s.meta);
        }
        Some(s) if s.meta == base => {}
        Some(s) => {
            let why = format!(
                "the snapshot file covers index {} term {}, but the log records a snapshot at index {} term {}",
                s.meta.index, s.meta.term, base.index, base.term
            );
            return Err(StorageError::corrupt(snapshot_path, 0, why));
        }
    }
    if replay.shape.has_opaque() {
        // Unreachable given the check on the first segment; never guess.
        let why = "entries of compacted segments are not covered by the snapshot";
        return Err(StorageError::corrupt(snapshot_path, 0, why));
    }
    // What recovery read (a removed segment, a renamed snapshot) may still
    // sit only in the page cache after a process crash: make it durable
    // before anything is built on it.
    files::sync_dir(fs, dir)?;
    let segments = segments.into_iter().map(|(first, _)| first).collect();
    Ok(Recovery {
        hard_state,
        snapshot,
        snapshot_digest,
        entries: replay.entries,
        shape: replay.shape,
        last_segment,
        segments,
        adopted,
    })
}
