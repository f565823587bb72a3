//! Whole files replaced atomically (node meta, hard state, snapshot), and
//! directory fsync.
//!
//! A small file is `magic: [u8; 8] | version: u32 LE | len: u32 LE |
//! crc32(payload): u32 LE | payload` with `payload` a codec-encoded value of
//! at most [`MAX_SMALL_PAYLOAD`] bytes and nothing after it.

use super::error::StorageError;
use super::fs::{Fs, OpenMode};
use raft_core::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::ErrorKind;
use std::path::Path;

/// Suffix of the temporary file an atomic write renames into place.
pub(super) const TMP_SUFFIX: &str = ".tmp";
const SMALL_HEADER: usize = 20;
const MAX_SMALL_PAYLOAD: usize = 4096;

/// Makes `dir`'s entries (created, renamed, removed files) durable.
pub(super) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir).map_err(StorageError::io("fsync directory", dir))
}

/// Replaces `dir/name` with `parts` concatenated, atomically: after a crash
/// the file holds either its old or its new contents, never a mix. Writes
/// `name.tmp`, fsyncs it, renames it over `name`, fsyncs `dir`.
pub(super) fn write_atomic(fs: &dyn Fs, dir: &Path, name: &str, parts: &[&[u8]]) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    let mut file = fs.open(&tmp, OpenMode::CreateTruncate).map_err(StorageError::io("create", &tmp))?;
    let mut at = 0u64;
    for part in parts {
        file.write_at(at, part).map_err(StorageError::io("write", &tmp))?;
        at += part.len() as u64;
    }
    file.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    drop(file);
    fs.rename(&tmp, &target).map_err(StorageError::io("rename into place", &target))?;
    sync_dir(fs, dir)
}

/// Writes a small file atomically (see the module docs for the layout).
pub(super) fn write_small<T: Serialize>(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    version: u32,
    value: &T,
) -> Result<(), StorageError> {
    let payload = codec::encode_value(value).unwrap_or_default();
    let mut header = Vec::with_capacity(SMALL_HEADER);
    header.extend_from_slice(magic);
    header.extend_from_slice(&version.to_le_bytes());
    header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    write_atomic(fs, dir, name, &[&header, &payload])
}

/// Reads a small file; `Ok(None)` if it does not exist. Any defect is
/// [`StorageError::Corrupt`]: these files are only ever replaced atomically,
/// so no crash can leave one half-written.
pub(super) fn read_small<T: DeserializeOwned>(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    version: u32,
) -> Result<Option<T>, StorageError> {
    let path = dir.join(name);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", &path)(e)),
    };
    let corrupt = |offset: usize, why: &str| StorageError::corrupt(&path, offset as u64, why);
    let Some((header, payload)) = bytes.split_first_chunk::<SMALL_HEADER>() else {
        return Err(corrupt(0, "file shorter than its header"));
    };
    if &header[..8] != magic {
        return Err(corrupt(0, "bad magic number"));
    }
    let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    if word(8) != version {
        return Err(StorageError::version(&path, 8, word(8), version));
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
pub(super) fn remove_leftover_tmp(fs: &dyn Fs, dir: &Path, name: &str) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    match fs.remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove leftover", &tmp)(e)),
    }
}
