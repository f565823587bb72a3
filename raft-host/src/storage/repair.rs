//! Repair: making a log with damaged segments usable again by giving up
//! everything from the first damaged record on (see
//! [`DiskLog::repair`](super::DiskLog::repair)).

use super::error::StorageError;
use super::files;
use super::fs::Fs;
use super::segment::{self, SEGMENT_HEADER};
use super::{hard_state, recover};
use std::path::{Path, PathBuf};

/// Damage a repair cut away.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The damaged segment.
    pub file: PathBuf,
    /// Where the damage starts: the segment was cut here (removed if this is
    /// inside its header), and every later segment removed.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

/// What [`DiskLog::repair`](super::DiskLog::repair) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repaired {
    /// Each damage found and cut away, in order (empty: the log was sound
    /// and nothing changed).
    pub damage: Vec<Damage>,
}

impl Repaired {
    /// True if nothing had to be repaired.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

/// More damage than this in one repair is left to the error (each round
/// removes bytes, so this is only a guard).
const MAX_ROUNDS: usize = 10_000;

/// Runs recovery and cuts the log at each damage it reports in a segment,
/// until recovery succeeds. The hard state is marked `catching_up` before
/// the first cut.
pub(super) fn repair(fs: &dyn Fs, dir: &Path) -> Result<Repaired, StorageError> {
    let mut repaired = Repaired::default();
    loop {
        match recover::recover(fs, dir, false) {
            Ok(_) => return Ok(repaired),
            Err(StorageError::Corrupt { file, offset, reason })
                if segment::is_segment_path(&file) && repaired.damage.len() < MAX_ROUNDS =>
            {
                if repaired.damage.is_empty() {
                    let mut hs = hard_state::read(fs, dir)?;
                    if !hs.catching_up {
                        hs.catching_up = true;
                        hard_state::write(fs, dir, &hs)?;
                    }
                }
                discard_from(fs, dir, &file, offset)?;
                repaired.damage.push(Damage { file, offset, reason });
            }
            Err(e) => return Err(e),
        }
    }
}

/// Removes every segment after `file` (newest first), then cuts `file` at
/// `offset`, or removes it if `offset` lies in its header.
fn discard_from(fs: &dyn Fs, dir: &Path, file: &Path, offset: u64) -> Result<(), StorageError> {
    let segments = recover::list_segments(fs, dir)?;
    let at = segments.iter().position(|(_, p)| p == file);
    for (_, later) in segments.iter().skip(at.map_or(segments.len(), |i| i + 1)).rev() {
        fs.remove_file(later).map_err(StorageError::io("remove", later))?;
    }
    files::sync_dir(fs, dir)?;
    if offset < SEGMENT_HEADER as u64 {
        fs.remove_file(file).map_err(StorageError::io("remove", file))?;
        files::sync_dir(fs, dir)
    } else {
        segment::cut(fs, file, offset)
    }
}
