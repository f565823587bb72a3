//! The `snapshot` file: the latest state-machine snapshot, replaced atomically.
//!
//! Layout: `magic "RAFTSNAP" | version: u32 | index: u64 | term: u64 |
//! data_len: u64 | crc32: u32 | data`, integers little-endian; the CRC covers
//! the 36 header bytes before it and `data`. The data is stored raw (not
//! through the codec), so a snapshot may be larger than the codec's limit.

use super::error::StorageError;
use super::files;
use super::fs::Fs;
use super::shape::MAX_INDEX;
use raft_core::{Bytes, LogIndex, Snapshot, SnapshotMeta, Term};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

const SNAPSHOT_FILE: &str = "snapshot";
const VERSION: u32 = 1;
const SNAPSHOT_MAGIC: &[u8; 8] = b"RAFTSNAP";
const HEADER: usize = 40;

fn header(snapshot: &Snapshot) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&snapshot.meta.index.0.to_le_bytes());
    h[20..28].copy_from_slice(&snapshot.meta.term.0.to_le_bytes());
    h[28..36].copy_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..36]);
    crc.update(&snapshot.data);
    h[36..].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// Where the snapshot file of `dir` lives.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Replaces the stored snapshot, atomically and durably.
pub(super) fn write(fs: &dyn Fs, dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    files::write_atomic(fs, dir, SNAPSHOT_FILE, &[&header(snapshot), &snapshot.data])
}

/// Reads the stored snapshot, `None` if there is none. A leftover temp file
/// is removed; any defect in the file itself is [`StorageError::Corrupt`].
pub(super) fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    files::remove_leftover_tmp(fs, dir, SNAPSHOT_FILE)?;
    let path = path(dir);
    let mut bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", &path)(e)),
    };
    let file_len = bytes.len() as u64;
    let corrupt = |offset: u64, why: String| StorageError::corrupt(&path, offset, why);
    let Some(&h) = bytes.first_chunk::<HEADER>() else {
        return Err(corrupt(0, format!("file of {file_len} bytes is shorter than its header")));
    };
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(b)
    };
    if &h[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "bad magic number".into()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(StorageError::version(&path, 8, version, VERSION));
    }
    let data_len = u64_at(28);
    // Allocate only what the file really holds.
    if Some(data_len) != file_len.checked_sub(HEADER as u64) {
        return Err(corrupt(
            28,
            format!("header announces {data_len} data bytes, file has {}", file_len - HEADER as u64),
        ));
    }
    let data = bytes.split_off(HEADER);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..36]);
    crc.update(&data);
    if crc.finalize().to_le_bytes() != h[36..] {
        return Err(corrupt(36, "checksum mismatch".into()));
    }
    if u64_at(12) >= MAX_INDEX {
        return Err(corrupt(12, format!("snapshot index {} is out of range", u64_at(12))));
    }
    let meta = SnapshotMeta { index: LogIndex(u64_at(12)), term: Term(u64_at(20)) };
    Ok(Some(Snapshot { meta, data: Bytes::from(data) }))
}
