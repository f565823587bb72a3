//! Start-up: rebuilding the log from the directory, cutting off a torn tail,
//! refusing anything a crash cannot explain.

use super::error::StorageError;
use super::files;
use super::record::{self, Change, Record};
use super::segment::{self, End};
use super::shape::Shape;
use super::{hard_state, snapshot_file};
use raft_core::{Entry, HardState, LogIndex, Snapshot, SnapshotMeta};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// Everything read back from a directory.
#[derive(Debug)]
pub(super) struct Recovery {
    pub(super) hard_state: HardState,
    pub(super) snapshot: Option<Snapshot>,
    /// The entries after the snapshot.
    pub(super) entries: Vec<Entry>,
    pub(super) shape: Shape,
    /// The segment to keep appending to: path, first index, length.
    pub(super) last_segment: Option<(PathBuf, u64, u64)>,
    /// The first index of every segment left, in order.
    pub(super) segments: Vec<u64>,
    /// A snapshot file newer than the log's last `Snapshot` record (a crash
    /// came between the two) is already applied to `entries` and `shape`; the
    /// caller must append these records for it (a `Truncate` if it disagrees
    /// with an entry the log holds, then the `Snapshot`), each with the log's
    /// next index before it.
    pub(super) adopted: Vec<(Change<'static>, u64)>,
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
pub(super) fn has_data(dir: &Path) -> Result<bool, StorageError> {
    Ok(hard_state::exists(dir) || snapshot_file::path(dir).exists() || !list_segments(dir)?.is_empty())
}

/// The segments in `dir`, by first index.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir).map_err(StorageError::io("list", dir))? {
        let item = item.map_err(StorageError::io("list", dir))?;
        let name = item.file_name();
        let Some(parsed) = name.to_str().and_then(segment::parse_name) else {
            continue;
        };
        let path = item.path();
        let first = parsed.ok_or_else(|| StorageError::corrupt(&path, 0, "malformed segment file name"))?;
        found.push((first, path));
    }
    found.sort();
    Ok(found)
}

/// Reads everything back. See [`DiskLog`](super::DiskLog) for the rules.
pub(super) fn recover(dir: &Path) -> Result<Recovery, StorageError> {
    let hard_state = hard_state::read(dir)?;
    let snapshot = snapshot_file::read(dir)?;
    let mut segments = list_segments(dir)?;
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
    let mut kept = segments.len();
    for (i, (first, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let bytes = fs::read(path).map_err(StorageError::io("read", path))?;
        let scan =
            segment::scan(&bytes, *first, is_last).map_err(|(offset, why)| StorageError::corrupt(path, offset, why))?;
        if scan.end == End::TornAt(0) {
            if i == 0 && *first != 1 {
                // Segments before it are removed only once it is durable.
                let why = "the header of the first segment is damaged, and the segments before it were compacted away";
                return Err(StorageError::corrupt(path, 0, why));
            }
            // Created by the sync that crashed; nothing in it was acknowledged.
            fs::remove_file(path).map_err(StorageError::io("remove torn segment", path))?;
            files::sync_dir(dir)?;
            kept = i;
            break;
        }
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
        let mut len = bytes.len() as u64;
        if let End::TornAt(at) = scan.end {
            len = at as u64;
            let file = OpenOptions::new().write(true).open(path).map_err(StorageError::io("open", path))?;
            file.set_len(len).map_err(StorageError::io("cut torn tail of", path))?;
            file.sync_all().map_err(StorageError::io("fsync", path))?;
        }
        last_segment = Some((path.clone(), *first, len));
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
    files::sync_dir(dir)?;
    segments.truncate(kept);
    let segments = segments.into_iter().map(|(first, _)| first).collect();
    Ok(Recovery { hard_state, snapshot, entries: replay.entries, shape: replay.shape, last_segment, segments, adopted })
}
