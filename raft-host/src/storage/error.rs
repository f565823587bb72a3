//! What can go wrong with the disk log, each case naming the path involved.

use raft_core::NodeId;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why opening, writing or syncing a [`DiskLog`](super::DiskLog) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system call failed. After a failed `sync` the log is
    /// unusable (see [`StorageError::Failed`]).
    Io {
        /// What was being done ("fsync", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Stored data is damaged in a way a crash cannot explain; start-up
    /// stops so that nothing acknowledged is silently lost.
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage within `file`.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file was written by an older release in a format this one no
    /// longer reads (see the format history in the
    /// [`storage`](crate::storage) module docs).
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// Its format version.
        found: u32,
        /// The version this release reads.
        supported: u32,
    },
    /// The data directory belongs to another node.
    WrongNode {
        /// The data directory.
        dir: PathBuf,
        /// The node id the caller runs as.
        expected: NodeId,
        /// The node id recorded in the directory.
        found: NodeId,
    },
    /// The data directory belongs to another cluster.
    WrongCluster {
        /// The data directory.
        dir: PathBuf,
        /// The cluster id the caller runs in.
        expected: u64,
        /// The cluster id recorded in the directory.
        found: u64,
    },
    /// Another `DiskLog` (in this or another process) has the directory open.
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// The write breaks the `raft_core::Write` contract (entries not
    /// contiguous with the log, terms decreasing, a record too large...).
    /// Nothing of it was buffered; the log is unchanged and still usable.
    InvalidWrite {
        /// The data directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An earlier `sync` failed, so what reached the disk is unknown; the
    /// log refuses further work. Reopen it (recovery decides what survived).
    Failed {
        /// The data directory.
        dir: PathBuf,
    },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }

    /// A version field that does not match: an older format if it is one,
    /// else damage.
    pub(crate) fn version(file: &Path, offset: u64, found: u32, supported: u32) -> StorageError {
        if (1..supported).contains(&found) {
            StorageError::UnsupportedVersion { file: file.to_path_buf(), found, supported }
        } else {
            StorageError::corrupt(file, offset, format!("unknown format version {found}"))
        }
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt { file: file.into(), offset, reason: reason.into() }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            StorageError::Corrupt { file, offset, reason } => {
                write!(f, "corrupt raft data in {} at byte {offset}: {reason}; ", file.display())?;
                if super::segment::is_segment_path(file) {
                    let dir = file.parent().unwrap_or(file).display();
                    write!(
                        f,
                        "start-up refused so that no acknowledged entry is silently lost. To repair, keeping the log \
                         before the damage and discarding the rest, run the node once with `--repair` (raft-udp node \
                         ... --repair; in code DiskLog::repair(\"{dir}\", meta) or DiskLogOptions::repair(true)): it \
                         then neither votes nor campaigns until it has caught up from the leader"
                    )
                } else {
                    write!(
                        f,
                        "this file cannot be repaired in place; restore the data directory from a backup (an empty \
                         directory would forget this node's term and vote)"
                    )
                }
            }
            StorageError::UnsupportedVersion { file, found, supported } => write!(
                f,
                "{} has format version {found}, written by an older release; this release reads version {supported} \
                 only. Start the node from an empty data directory: it will catch up from the cluster",
                file.display()
            ),
            StorageError::WrongNode { dir, expected, found } => write!(
                f,
                "data directory {} belongs to node {found}, not node {expected}; give it its own data directory or an empty one",
                dir.display()
            ),
            StorageError::WrongCluster { dir, expected, found } => write!(
                f,
                "data directory {} belongs to cluster {found}, not cluster {expected}; give it its own data directory or an empty one",
                dir.display()
            ),
            StorageError::Locked { dir } => {
                write!(f, "data directory {} is already in use by another raft log", dir.display())
            }
            StorageError::InvalidWrite { dir, reason } => {
                write!(f, "refused a write to the raft log in {}: {reason}", dir.display())
            }
            StorageError::Failed { dir } => {
                write!(f, "the raft log in {} failed an earlier sync; reopen it to recover", dir.display())
            }
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_io_error_is_the_source_of_its_storage_error_and_no_other_kind_has_one() {
        let e = StorageError::io("fsync", "/data/log")(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        let source = e.source().expect("an I/O error has a source");
        let io = source.downcast_ref::<io::Error>().expect("the io::Error itself");
        assert_eq!((io.kind(), io.to_string()), (io::ErrorKind::StorageFull, "disk full".to_string()));
        let corrupt = StorageError::corrupt("/data/log/snapshot", 36, "checksum mismatch");
        assert!(corrupt.source().is_none());
    }
}
