//! The file-system calls a [`DiskLog`](super::DiskLog) makes, behind one
//! small trait, so that tests can run the log on a simulated disk that loses
//! whatever was not made durable when the power goes ([`SimFs`]).
//!
//! [`RealFs`] is the operating system's file system (what
//! [`DiskLog::open`](super::DiskLog::open) uses);
//! [`DiskLog::open_on`](super::DiskLog::open_on) takes any [`Fs`].
//!
//! The durability model the log relies on, and that [`SimFs`] enforces:
//! bytes written to a file survive power loss only once a
//! [`FsFile::sync_data`] (or `sync_all`) covering them has returned; a
//! created, renamed or removed name survives only once [`Fs::sync_dir`] of
//! its directory has returned. Anything else may be lost, in part, in any
//! order (a later page may reach the disk before an earlier one).

mod sim;

pub use sim::{PowerLoss, SimFs};

use std::any::Any;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom, Write as _};
use std::path::Path;

/// How [`Fs::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, for writing in place.
    Existing,
    /// A new file; fails if the name exists.
    CreateNew,
    /// Creates the file or empties an existing one.
    CreateTruncate,
}

/// A lock held on a file until it is dropped (see [`Fs::try_lock`]).
pub type LockGuard = Box<dyn Any + Send>;

/// The file-system operations of a disk log. Paths are whatever the caller
/// gave [`DiskLog::open_on`](super::DiskLog::open_on), joined with file names.
pub trait Fs: fmt::Debug + Send + Sync {
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the names created, renamed or removed in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// True if `path` names a file.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// The whole contents of a file (`NotFound` if there is none).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens a file for writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>>;
    /// Opens a file for reading piece by piece (`NotFound` if there is
    /// none). The provided version reads the whole file into memory; a file
    /// system whose files may be large overrides it (as [`RealFs`] does).
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsRead>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing), `None` if
    /// someone else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
}

/// A file open for writing.
pub trait FsFile: fmt::Debug + Send {
    /// Writes all of `bytes` at `offset` (not durable until synced).
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Cuts or extends (with zeros) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file's data, and the metadata needed to read it, durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the file's data and all its metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
}

/// A file open for reading (see [`Fs::open_read`]).
pub trait FsRead: io::Read + io::Seek + fmt::Debug + Send {}

impl<T: io::Read + io::Seek + fmt::Debug + Send> FsRead for T {}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(File);

impl FsFile for RealFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.write_all(bytes)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut o = OpenOptions::new();
        o.write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateNew => {
                o.create_new(true);
            }
            OpenMode::CreateTruncate => {
                o.create(true).truncate(true);
            }
        }
        Ok(Box::new(RealFile(o.open(path)?)))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsRead>> {
        Ok(Box::new(File::open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let file = OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}
