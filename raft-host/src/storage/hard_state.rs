//! The `hardstate` file: the current term and vote, replaced atomically.

use super::error::StorageError;
use super::files;
use super::fs::Fs;
use raft_core::HardState;
use std::path::Path;

const HARD_STATE_FILE: &str = "hardstate";
const HARD_STATE_MAGIC: &[u8; 8] = b"RAFTHARD";
/// Version 2 adds `catching_up` (version 1: term and vote only).
const HARD_STATE_VERSION: u32 = 2;

/// Reads the stored hard state (the default, term 0 and no vote, if none was
/// ever stored). A leftover temp file from an interrupted write is removed.
pub(super) fn read(fs: &dyn Fs, dir: &Path) -> Result<HardState, StorageError> {
    files::remove_leftover_tmp(fs, dir, HARD_STATE_FILE)?;
    Ok(files::read_small(fs, dir, HARD_STATE_FILE, HARD_STATE_MAGIC, HARD_STATE_VERSION)?.unwrap_or_default())
}

/// Replaces the stored hard state, atomically and durably.
pub(super) fn write(fs: &dyn Fs, dir: &Path, hs: &HardState) -> Result<(), StorageError> {
    files::write_small(fs, dir, HARD_STATE_FILE, HARD_STATE_MAGIC, HARD_STATE_VERSION, hs)
}

/// Where the hard state of `dir` lives.
pub(super) fn path(dir: &Path) -> std::path::PathBuf {
    dir.join(HARD_STATE_FILE)
}
