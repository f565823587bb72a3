//! Whole files replaced atomically (node meta, hard state, snapshot), and
//! directory fsync.
//!
//! A small file is `magic: [u8; 8] | version: u32 LE | len: u32 LE |
//! crc32(payload): u32 LE | payload` with `payload` a codec-encoded value of
//! at most [`MAX_SMALL_PAYLOAD`] bytes and nothing after it.

use super::error::StorageError;
use raft_core::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write as _};
use std::path::Path;

/// Suffix of the temporary file an atomic write renames into place.
pub(super) const TMP_SUFFIX: &str = ".tmp";
/// Format version of every file this module writes.
pub(super) const VERSION: u32 = 1;
const SMALL_HEADER: usize = 20;
const MAX_SMALL_PAYLOAD: usize = 4096;

/// Makes `dir`'s entries (created, renamed, removed files) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io("fsync directory", dir))
}

/// Replaces `dir/name` with `parts` concatenated, atomically: after a crash
/// the file holds either its old or its new contents, never a mix. Writes
/// `name.tmp`, fsyncs it, renames it over `name`, fsyncs `dir`.
pub(super) fn write_atomic(dir: &Path, name: &str, parts: &[&[u8]]) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(StorageError::io("create", &tmp))?;
    for part in parts {
        file.write_all(part).map_err(StorageError::io("write", &tmp))?;
    }
    file.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    drop(file);
    fs::rename(&tmp, &target).map_err(StorageError::io("rename into place", &target))?;
    sync_dir(dir)
}

/// Writes a small file atomically (see the module docs for the layout).
pub(super) fn write_small<T: Serialize>(
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    value: &T,
) -> Result<(), StorageError> {
    let payload = codec::encode_value(value).unwrap_or_default();
    let mut header = Vec::with_capacity(SMALL_HEADER);
    header.extend_from_slice(magic);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    write_atomic(dir, name, &[&header, &payload])
}

/// Reads a small file; `Ok(None)` if it does not exist. Any defect is
/// [`StorageError::Corrupt`]: these files are only ever replaced atomically,
/// so no crash can leave one half-written.
pub(super) fn read_small<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
) -> Result<Option<T>, StorageError> {
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("open", &path)(e)),
    };
    let mut bytes = Vec::new();
    // Read at most one byte more than any valid file, whatever the file claims.
    file.take((SMALL_HEADER + MAX_SMALL_PAYLOAD + 1) as u64)
        .read_to_end(&mut bytes)
        .map_err(StorageError::io("read", &path))?;
    let corrupt = |offset: usize, why: &str| StorageError::corrupt(&path, offset as u64, why);
    let Some((header, payload)) = bytes.split_first_chunk::<SMALL_HEADER>() else {
        return Err(corrupt(0, "file shorter than its header"));
    };
    if &header[..8] != magic {
        return Err(corrupt(0, "bad magic number"));
    }
    let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    if word(8) != VERSION {
        return Err(corrupt(8, &format!("unsupported format version {}", word(8))));
    }
    let len = word(12) as usize;
    if len > MAX_SMALL_PAYLOAD || len != payload.len() {
        return Err(corrupt(12, &format!("header announces {len} payload bytes, file has {}", payload.len())));
    }
    if crc32fast::hash(payload) != word(16) {
        return Err(corrupt(SMALL_HEADER, "checksum mismatch"));
    }
    codec::decode_value(payload).map(Some).map_err(|e| corrupt(SMALL_HEADER, &format!("undecodable contents: {e}")))
}

/// Removes `dir/name.tmp` if an interrupted atomic write left it. The file
/// it was meant to replace is untouched and still valid.
pub(super) fn remove_leftover_tmp(dir: &Path, name: &str) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove leftover", &tmp)(e)),
    }
}
