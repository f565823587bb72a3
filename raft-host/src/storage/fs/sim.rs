//! [`SimFs`]: an in-memory file system that forgets, on a simulated power
//! loss, everything that was not made durable.

use super::{Fs, FsFile, LockGuard, OpenMode};
use raft_core::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The unit in which unsynced file data reaches the disk, or not.
const PAGE: usize = 4096;
/// A torn page keeps a whole number of these from its start.
const SECTOR: usize = 512;

/// What a simulated power loss keeps of what was never made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerLoss {
    /// Nothing: every file holds exactly what its last `sync_data` made
    /// durable, every directory what its last `sync_dir` did.
    DropUnsynced,
    /// A random part, drawn from `seed`: each unsynced page of each file is
    /// kept, dropped, or torn (a prefix of its sectors kept), independently
    /// (so a later page may survive an earlier one); a file's unsynced size
    /// change is kept or not; a prefix of the unsynced directory changes
    /// (creations, renames, removals, in their order) is kept.
    Random {
        /// Seed of the choices (a replay gives the same result).
        seed: u64,
    },
}

/// An in-memory file system with a durable image beside the live one, for
/// crash tests: [`power_loss`](Self::power_loss) replaces the live image by
/// what a real disk could hold after losing power at that moment, and
/// [`fail_after`](Self::fail_after) makes the process "die" in the middle of
/// a sequence of calls. Clones share the same file system.
///
/// Directories are simplified: they exist once created, durably.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

#[derive(Clone, Debug, Default)]
struct State {
    next_id: u64,
    inodes: BTreeMap<u64, Inode>,
    /// The names as the running process sees them.
    names: BTreeMap<PathBuf, u64>,
    /// The names a power loss keeps (plus some prefix of `pending`).
    durable_names: BTreeMap<PathBuf, u64>,
    /// Directory changes not yet made durable by `sync_dir`, in order.
    pending: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    /// Mutating calls made so far.
    ops: u64,
    /// Calls fail from this many mutating calls on (the process "died").
    fail_at: Option<u64>,
    /// Bumped at each power loss: handles from before stop working.
    epoch: u64,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    /// What the process reads.
    data: Vec<u8>,
    /// What survives a power loss for certain.
    durable: Vec<u8>,
    /// Pages written since the last sync.
    dirty: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link { path: PathBuf, id: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf, id: u64 },
}

impl DirOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } | DirOp::Rename { to: path, .. } => path.parent(),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link { path, id } => {
                names.insert(path.clone(), *id);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to, id } => {
                names.remove(from);
                names.insert(to.clone(), *id);
            }
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
}

impl State {
    /// Counts a mutating call; fails it if the process has "died".
    fn tick(&mut self) -> io::Result<()> {
        if self.fail_at.is_some_and(|at| self.ops >= at) {
            return Err(io::Error::other("simulated crash: the process is dead"));
        }
        self.ops += 1;
        Ok(())
    }

    fn link_new(&mut self, path: &Path) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.inodes.insert(id, Inode::default());
        self.names.insert(path.to_path_buf(), id);
        self.pending.push(DirOp::Link { path: path.to_path_buf(), id });
        id
    }
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets the next `ops` mutating calls (writes, syncs, creations, renames,
    /// removals, size changes) succeed and fails every later one, as if the
    /// process died there. [`power_loss`](Self::power_loss) revives it.
    pub fn fail_after(&self, ops: u64) {
        let mut s = self.lock();
        s.fail_at = Some(s.ops + ops);
    }

    /// How many mutating calls were made so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Loses power: the live image becomes what the disk holds afterwards
    /// (see [`PowerLoss`]). Open files and locks are gone; calls work again.
    pub fn power_loss(&self, how: PowerLoss) {
        let mut s = self.lock();
        let mut rng = match how {
            PowerLoss::DropUnsynced => None,
            PowerLoss::Random { seed } => Some(SplitMix64::new(seed)),
        };
        let keep_ops = rng.as_mut().map_or(0, |r| r.below(s.pending.len() as u64 + 1) as usize);
        let mut names = std::mem::take(&mut s.durable_names);
        s.pending.drain(..).take(keep_ops).for_each(|op| op.apply(&mut names));
        let live: BTreeSet<u64> = names.values().copied().collect();
        s.inodes.retain(|id, _| live.contains(id));
        for inode in s.inodes.values_mut() {
            let mut after = inode.durable.clone();
            if let Some(rng) = rng.as_mut() {
                if inode.data.len() != after.len() && rng.below(2) == 0 {
                    after.resize(inode.data.len(), 0);
                }
                for &page in &inode.dirty {
                    let start = page * PAGE;
                    let end = ((page + 1) * PAGE).min(inode.data.len()).min(after.len());
                    if start >= end {
                        continue;
                    }
                    let keep = match rng.below(3) {
                        0 => 0,
                        1 => end - start,
                        _ => (rng.below((PAGE / SECTOR) as u64) as usize * SECTOR).min(end - start),
                    };
                    after[start..start + keep].copy_from_slice(&inode.data[start..start + keep]);
                }
            }
            inode.data = after.clone();
            inode.durable = after;
            inode.dirty.clear();
        }
        s.names = names.clone();
        s.durable_names = names;
        s.locks.clear();
        s.fail_at = None;
        s.epoch += 1;
    }

    /// An independent copy of this file system as it is now (without its
    /// locks), to try several faults from one starting point.
    pub fn fork(&self) -> SimFs {
        let mut state = self.lock().clone();
        state.locks.clear();
        SimFs { state: Arc::new(Mutex::new(state)) }
    }

    /// The file's current contents, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        s.names.get(path).map(|id| s.inodes[id].data.clone())
    }

    /// Replaces an existing file's contents, durably, as damage at rest would
    /// (a flipped bit, a cut): for fault tests. Returns false if there is no such file.
    pub fn set_contents(&self, path: &Path, bytes: &[u8]) -> bool {
        let mut s = self.lock();
        let Some(&id) = s.names.get(path) else { return false };
        let inode = s.inodes.get_mut(&id).expect("named inode");
        inode.data = bytes.to_vec();
        inode.durable = bytes.to_vec();
        inode.dirty.clear();
        true
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    id: u64,
    epoch: u64,
}

impl SimFile {
    fn with<T>(&mut self, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.epoch != self.epoch {
            return Err(io::Error::other("file handle from before a power loss"));
        }
        s.tick()?;
        let inode = s.inodes.get_mut(&self.id).ok_or_else(|| io::Error::other("file vanished"))?;
        Ok(f(inode))
    }
}

impl FsFile for SimFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        self.with(|inode| {
            let end = offset + bytes.len();
            if inode.data.len() < end {
                inode.data.resize(end, 0);
            }
            inode.data[offset..end].copy_from_slice(bytes);
            if !bytes.is_empty() {
                inode.dirty.extend(offset / PAGE..=(end - 1) / PAGE);
            }
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.with(|inode| inode.data.resize(len, 0))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with(|inode| {
            inode.durable = inode.data.clone();
            inode.dirty.clear();
        })
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    epoch: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.epoch == self.epoch {
            s.locks.remove(&self.path);
        }
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        for d in dir.ancestors() {
            s.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let pending = std::mem::take(&mut s.pending);
        let (now, later): (Vec<DirOp>, Vec<DirOp>) = pending.into_iter().partition(|op| op.dir() == Some(dir));
        let mut names = std::mem::take(&mut s.durable_names);
        now.iter().for_each(|op| op.apply(&mut names));
        s.durable_names = names;
        s.pending = later;
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let s = self.lock();
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(s.names.keys().filter(|p| p.parent() == Some(dir)).filter_map(|p| p.file_name()).map(Into::into).collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.lock();
        Ok(s.names.contains_key(path) || s.dirs.contains(path))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.contents(path).ok_or_else(|| not_found(path))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut s = self.lock();
        if mode != OpenMode::Existing {
            s.tick()?;
        }
        if !path.parent().is_some_and(|d| s.dirs.contains(d)) {
            return Err(not_found(path));
        }
        let existing = s.names.get(path).copied();
        let id = match (mode, existing) {
            (OpenMode::Existing, None) => return Err(not_found(path)),
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
            }
            (OpenMode::Existing, Some(id)) => id,
            (OpenMode::CreateTruncate, Some(id)) => {
                s.inodes.get_mut(&id).expect("named inode").data.clear();
                id
            }
            (_, None) => s.link_new(path),
        };
        Ok(Box::new(SimFile { state: self.state.clone(), id, epoch: s.epoch }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let id = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_path_buf(), id);
        s.pending.push(DirOp::Rename { from: from.to_path_buf(), to: to.to_path_buf(), id });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.names.remove(path).ok_or_else(|| not_found(path))?;
        s.pending.push(DirOp::Unlink { path: path.to_path_buf() });
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let mut s = self.lock();
        if !s.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock { state: self.state.clone(), path: path.to_path_buf(), epoch: s.epoch })))
    }
}
