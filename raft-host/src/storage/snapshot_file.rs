//! The `snapshot` file: the latest state-machine snapshot, replaced atomically.
//!
//! Layout: `magic "RAFTSNAP" | version: u32 | index: u64 | term: u64 |
//! body_len: u64 | crc32: u32 | body`, integers little-endian, where `body =
//! membership_len: u32 | membership | data`: the configuration in effect at
//! `index` (codec encoding) and the state machine's bytes. The CRC covers the
//! 36 header bytes before it and `body`. The data is stored raw (not through
//! the codec), so a snapshot may be larger than the codec's limit. Version 2
//! added the configuration; version 1 files are refused.

use super::error::StorageError;
use super::files;
use super::shape::MAX_INDEX;
use raft_core::{Bytes, LogIndex, Snapshot, SnapshotMeta, Term};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"RAFTSNAP";
const HEADER: usize = 40;
/// The snapshot file's own format version.
const VERSION: u32 = 2;

/// `membership_len: u32 | membership`, the body's first part.
fn membership_frame(snapshot: &Snapshot) -> Result<Vec<u8>, StorageError> {
    let m = raft_core::codec::encode_value(&snapshot.membership)
        .map_err(|e| StorageError::InvalidWrite { dir: PathBuf::new(), reason: format!("configuration: {e}") })?;
    let mut frame = (m.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&m);
    Ok(frame)
}

fn header(snapshot: &Snapshot, membership: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&snapshot.meta.index.0.to_le_bytes());
    h[20..28].copy_from_slice(&snapshot.meta.term.0.to_le_bytes());
    h[28..36].copy_from_slice(&((membership.len() + snapshot.data.len()) as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..36]);
    crc.update(membership);
    crc.update(&snapshot.data);
    h[36..].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// Where the snapshot file of `dir` lives.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Replaces the stored snapshot, atomically and durably.
pub(super) fn write(dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    let membership = membership_frame(snapshot)?;
    files::write_atomic(dir, SNAPSHOT_FILE, &[&header(snapshot, &membership), &membership, &snapshot.data])
}

/// Reads the stored snapshot, `None` if there is none. A leftover temp file
/// is removed; any defect in the file itself is [`StorageError::Corrupt`].
pub(super) fn read(dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    files::remove_leftover_tmp(dir, SNAPSHOT_FILE)?;
    let path = path(dir);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("open", &path)(e)),
    };
    let file_len = file.metadata().map_err(StorageError::io("stat", &path))?.len();
    let corrupt = |offset: u64, why: String| StorageError::corrupt(&path, offset, why);
    let mut h = [0u8; HEADER];
    if file_len < HEADER as u64 {
        return Err(corrupt(0, format!("file of {file_len} bytes is shorter than its header")));
    }
    file.read_exact(&mut h).map_err(StorageError::io("read", &path))?;
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
        return Err(corrupt(8, format!("unsupported format version {version}")));
    }
    let data_len = u64_at(28);
    // Allocate only what the file really holds.
    if Some(data_len) != file_len.checked_sub(HEADER as u64) {
        return Err(corrupt(
            28,
            format!("header announces {data_len} data bytes, file has {}", file_len - HEADER as u64),
        ));
    }
    let mut data = Vec::new();
    file.take(data_len).read_to_end(&mut data).map_err(StorageError::io("read", &path))?;
    if data.len() as u64 != data_len {
        return Err(corrupt(HEADER as u64 + data.len() as u64, "file shrank while being read".into()));
    }
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
    let body = HEADER as u64;
    let (len, rest) = data.split_first_chunk::<4>().ok_or_else(|| corrupt(body, "no configuration".into()))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > rest.len() {
        return Err(corrupt(body, format!("configuration of {len} bytes exceeds the file")));
    }
    let membership = raft_core::codec::decode_value(&rest[..len])
        .map_err(|e| corrupt(body + 4, format!("configuration does not decode: {e}")))?;
    let state = rest[len..].to_vec();
    Ok(Some(Snapshot { meta, membership, data: Bytes::from(state) }))
}
