//! The `hardstate` file: the current term and vote, replaced atomically.

use super::error::StorageError;
use super::files;
use raft_core::HardState;
use std::path::Path;

const HARD_STATE_FILE: &str = "hardstate";
const HARD_STATE_MAGIC: &[u8; 8] = b"RAFTHARD";

/// Reads the stored hard state (the default, term 0 and no vote, if none was
/// ever stored). A leftover temp file from an interrupted write is removed.
pub(super) fn read(dir: &Path) -> Result<HardState, StorageError> {
    files::remove_leftover_tmp(dir, HARD_STATE_FILE)?;
    Ok(files::read_small(dir, HARD_STATE_FILE, HARD_STATE_MAGIC)?.unwrap_or_default())
}

/// Replaces the stored hard state, atomically and durably.
pub(super) fn write(dir: &Path, hs: &HardState) -> Result<(), StorageError> {
    files::write_small(dir, HARD_STATE_FILE, HARD_STATE_MAGIC, hs)
}

/// True if a hard state was ever stored.
pub(super) fn exists(dir: &Path) -> bool {
    dir.join(HARD_STATE_FILE).exists()
}
