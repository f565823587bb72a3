//! The `snapshot` file: the latest state-machine snapshot, replaced atomically.
//!
//! Layout: `magic "RAFTSNAP" | version: u32 | index: u64 | term: u64 |
//! body_len: u64 | crc32: u32 | body`, integers little-endian, where `body =
//! membership_len: u32 | membership | data`: the configuration in effect at
//! `index` (codec encoding) and the state machine's bytes. The CRC covers the
//! 36 header bytes before it and `body`. The data is stored raw (not through
//! the codec), so a snapshot may be larger than the codec's limit. Version 2
//! added the configuration; version 1 files are refused.
//!
//! The file is written and read piece by piece ([`SnapshotFileWriter`],
//! [`SnapshotFile`]): neither holds more than [`CHUNK`] bytes of the data at a
//! time, whatever the snapshot's size. The header, which needs the body's
//! length and CRC, is written last (CRC-32 values of the parts combine).

use super::error::StorageError;
use super::files::{self, TMP_SUFFIX};
use super::fs::{Fs, FsFile, FsRead, OpenMode};
use super::shape::MAX_INDEX;
use raft_core::{Bytes, LogIndex, Membership, Snapshot, SnapshotDigest, SnapshotMeta, Term};
use std::io::{self, ErrorKind, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SNAPSHOT_FILE: &str = "snapshot";
/// The temporary file of a snapshot being received (see
/// [`SnapshotFileWriter::create_incoming`]).
const INCOMING_FILE: &str = "snapshot.incoming";
const SNAPSHOT_MAGIC: &[u8; 8] = b"RAFTSNAP";
const HEADER: usize = 40;
/// The snapshot file's own format version.
const VERSION: u32 = 2;
/// The most data bytes a writer buffers, and a reader reads, at once.
pub const CHUNK: usize = 64 << 10;

/// Where the snapshot file of `dir` lives.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Replaces the stored snapshot, atomically and durably.
pub(super) fn write(fs: &Arc<dyn Fs>, dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    let mut w = SnapshotFileWriter::create(fs.clone(), dir, snapshot.meta, &snapshot.membership)?;
    w.write_data(&snapshot.data)?;
    w.finish()
}

/// Reads the stored snapshot, `None` if there is none. A leftover temp file
/// is removed; any defect in the file itself is [`StorageError::Corrupt`].
/// The data is read once into one buffer of its exact size.
pub(super) fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    remove_leftovers(fs, dir)?;
    let Some(mut file) = SnapshotFile::open(fs, dir)? else {
        return Ok(None);
    };
    let len = usize::try_from(file.data_len()).map_err(|_| {
        StorageError::corrupt(&file.path, 28, format!("{} data bytes do not fit in memory", file.data_len()))
    })?;
    let mut data = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let n = file.read_data_at(at as u64, &mut data[at..])?;
        if n == 0 {
            return Err(StorageError::corrupt(&file.path, at as u64, "the file shrank while being read"));
        }
        at += n;
    }
    let (meta, membership) = (file.meta, file.membership);
    Ok(Some(Snapshot { meta, membership: membership.into(), data: Bytes::from(data) }))
}

/// Checks the stored snapshot without reading its data into memory: the
/// snapshot with empty `data`, and its data's length and checksum. Removes
/// leftover temporary files as [`read`] does.
pub(super) fn read_digest(fs: &dyn Fs, dir: &Path) -> Result<Option<(Snapshot, SnapshotDigest)>, StorageError> {
    remove_leftovers(fs, dir)?;
    Ok(SnapshotFile::open(fs, dir)?.map(|f| {
        let digest = SnapshotDigest { len: f.data_len, checksum: f.data_crc };
        (Snapshot { meta: f.meta, membership: f.membership.into(), data: Bytes::default() }, digest)
    }))
}

fn remove_leftovers(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    files::remove_leftover_tmp(fs, dir, SNAPSHOT_FILE)?;
    files::remove_leftover_tmp(fs, dir, INCOMING_FILE)
}

/// Writes a new snapshot file piece by piece: the state machine's bytes go
/// in through [`io::Write`] (or [`write_data`](Self::write_data)), and
/// [`finish`](Self::finish) makes the file durable and renames it over the
/// `snapshot` file of its directory. Dropped unfinished, it leaves only a
/// temporary file, which the next [`DiskLog::open`](super::DiskLog::open)
/// removes; the stored snapshot is untouched.
///
/// [`create`](Self::create) writes the same temporary file as
/// [`DiskLog::sync`](super::DiskLog::sync) does for a snapshot: never use both
/// on one directory at once. [`create_incoming`](Self::create_incoming) uses
/// a temporary file of its own.
#[derive(Debug)]
pub struct SnapshotFileWriter {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    tmp: PathBuf,
    file: Box<dyn FsFile>,
    meta: SnapshotMeta,
    /// The body bytes written so far (after the header).
    body_len: u64,
    /// The body bytes before the data (the configuration's frame).
    data_start: u64,
    body_crc: crc32fast::Hasher,
    /// CRC-32 of the data alone (buffered bytes included).
    data_crc: crc32fast::Hasher,
    /// Data not yet written, at most [`CHUNK`] bytes.
    buf: Vec<u8>,
}

impl SnapshotFileWriter {
    /// Starts a snapshot file in `dir` for the snapshot `meta` with the
    /// configuration `membership`. Nothing is visible until [`finish`](Self::finish).
    pub fn create(
        fs: Arc<dyn Fs>,
        dir: &Path,
        meta: SnapshotMeta,
        membership: &Membership,
    ) -> Result<SnapshotFileWriter, StorageError> {
        SnapshotFileWriter::create_named(fs, dir, SNAPSHOT_FILE, meta, membership)
    }

    /// As [`create`](Self::create), in a temporary file of its own, for a
    /// snapshot received from a leader while this node may also be taking
    /// one of its own.
    pub fn create_incoming(
        fs: Arc<dyn Fs>,
        dir: &Path,
        meta: SnapshotMeta,
        membership: &Membership,
    ) -> Result<SnapshotFileWriter, StorageError> {
        SnapshotFileWriter::create_named(fs, dir, INCOMING_FILE, meta, membership)
    }

    fn create_named(
        fs: Arc<dyn Fs>,
        dir: &Path,
        name: &str,
        meta: SnapshotMeta,
        membership: &Membership,
    ) -> Result<SnapshotFileWriter, StorageError> {
        let m = raft_core::codec::encode_value(membership).map_err(|e| StorageError::InvalidWrite {
            dir: dir.to_path_buf(),
            reason: format!("configuration: {e}"),
        })?;
        let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
        let file = fs.open(&tmp, OpenMode::CreateTruncate).map_err(StorageError::io("create", &tmp))?;
        let mut w = SnapshotFileWriter {
            fs,
            dir: dir.to_path_buf(),
            tmp,
            file,
            meta,
            body_len: 0,
            data_start: 0,
            body_crc: crc32fast::Hasher::new(),
            data_crc: crc32fast::Hasher::new(),
            buf: Vec::new(),
        };
        w.put(&(m.len() as u32).to_le_bytes())?;
        w.put(&m)?;
        w.data_start = w.body_len;
        Ok(w)
    }

    /// Appends state-machine bytes.
    pub fn write_data(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.data_crc.update(data);
        if self.buf.len() + data.len() <= CHUNK {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.flush_buf()?;
        if data.len() < CHUNK {
            self.buf.extend_from_slice(data);
            Ok(())
        } else {
            self.put(data)
        }
    }

    /// The state-machine bytes written so far.
    pub fn data_len(&self) -> u64 {
        self.body_len + self.buf.len() as u64 - self.data_start
    }

    /// The snapshot this file is for.
    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// The length and CRC-32 of the state-machine bytes written so far
    /// (what `raft_core::Node::compact_stored` takes).
    pub fn digest(&self) -> SnapshotDigest {
        SnapshotDigest { len: self.data_len(), checksum: self.data_crc.clone().finalize() }
    }

    /// Writes the header, makes the file durable and renames it into place
    /// (then makes the rename durable): the directory's snapshot is now this one.
    pub fn finish(self) -> Result<(), StorageError> {
        self.seal()?.put_in_place()
    }

    /// Writes the header and makes the file durable, still under its
    /// temporary name: [`SealedSnapshotFile::put_in_place`] makes it the
    /// directory's snapshot, or [`SealedSnapshotFile::discard`] removes it.
    /// (The slow part of [`finish`](Self::finish), for a thread of its own.)
    pub fn seal(mut self) -> Result<SealedSnapshotFile, StorageError> {
        self.flush_buf()?;
        let mut h = [0u8; HEADER];
        h[..8].copy_from_slice(SNAPSHOT_MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..20].copy_from_slice(&self.meta.index.0.to_le_bytes());
        h[20..28].copy_from_slice(&self.meta.term.0.to_le_bytes());
        h[28..36].copy_from_slice(&self.body_len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[..36]);
        crc.combine(&self.body_crc);
        h[36..].copy_from_slice(&crc.finalize().to_le_bytes());
        self.file.write_at(0, &h).map_err(StorageError::io("write", &self.tmp))?;
        self.file.sync_all().map_err(StorageError::io("fsync", &self.tmp))?;
        Ok(SealedSnapshotFile { fs: self.fs, dir: self.dir, tmp: self.tmp, meta: self.meta })
    }

    fn flush_buf(&mut self) -> Result<(), StorageError> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.put(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }

    /// Writes body bytes at the end of the file.
    fn put(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_at(HEADER as u64 + self.body_len, bytes).map_err(StorageError::io("write", &self.tmp))?;
        self.body_crc.update(bytes);
        self.body_len += bytes.len() as u64;
        Ok(())
    }
}

impl io::Write for SnapshotFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_data(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A complete, durable snapshot file under its temporary name (see
/// [`SnapshotFileWriter::seal`]).
#[derive(Debug)]
pub struct SealedSnapshotFile {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    tmp: PathBuf,
    meta: SnapshotMeta,
}

impl SealedSnapshotFile {
    /// The snapshot it holds.
    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// Renames it over the directory's snapshot file and makes the rename
    /// durable: the directory's snapshot is now this one.
    pub fn put_in_place(self) -> Result<(), StorageError> {
        let target = path(&self.dir);
        self.fs.rename(&self.tmp, &target).map_err(StorageError::io("rename into place", &target))?;
        files::sync_dir(&*self.fs, &self.dir)
    }

    /// Removes it (a newer snapshot is in place already).
    pub fn discard(self) -> Result<(), StorageError> {
        self.fs.remove_file(&self.tmp).map_err(StorageError::io("remove", &self.tmp))
    }
}

/// A stored snapshot file, checked whole (header, length, CRC) when opened
/// and read piece by piece afterwards. It keeps the file open, so a later
/// replacement of the `snapshot` file does not change what it reads.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: Box<dyn FsRead>,
    meta: SnapshotMeta,
    membership: Membership,
    data_offset: u64,
    data_len: u64,
    data_crc: u32,
}

impl SnapshotFile {
    /// Opens and checks the snapshot file of `dir`, `None` if there is none.
    /// Reads the file once, [`CHUNK`] bytes at a time. Any defect is
    /// [`StorageError::Corrupt`], an older format [`StorageError::UnsupportedVersion`].
    pub fn open(fs: &dyn Fs, dir: &Path) -> Result<Option<SnapshotFile>, StorageError> {
        let path = path(dir);
        let mut file = match fs.open_read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("open", &path)(e)),
        };
        let io_err = |e: io::Error| StorageError::io("read", &path)(e);
        let corrupt = |offset: u64, why: String| StorageError::corrupt(&path, offset, why);
        let file_len = file.seek(SeekFrom::End(0)).map_err(&io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(&io_err)?;
        let mut h = [0u8; HEADER];
        if read_full(&mut *file, &mut h).map_err(&io_err)? < HEADER {
            return Err(corrupt(0, format!("file of {file_len} bytes is shorter than its header")));
        }
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
        let body_len = u64_at(28);
        let body = HEADER as u64;
        if body_len != file_len - body {
            return Err(corrupt(28, format!("header announces {body_len} data bytes, file has {}", file_len - body)));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[..36]);
        let mut len = [0u8; 4];
        if read_full(&mut *file, &mut len).map_err(&io_err)? < 4 {
            return Err(corrupt(body, "no configuration".into()));
        }
        crc.update(&len);
        let m_len = u32::from_le_bytes(len) as u64;
        if m_len > body_len - 4 || m_len > raft_core::codec::MAX_DECODE_BYTES as u64 {
            return Err(corrupt(body, format!("configuration of {m_len} bytes exceeds the file")));
        }
        // Bounded by the file's real length (checked above).
        let mut m = vec![0u8; m_len as usize];
        file.read_exact(&mut m).map_err(&io_err)?;
        crc.update(&m);
        let data_offset = body + 4 + m_len;
        let data_len = body_len - 4 - m_len;
        let mut data_crc = crc32fast::Hasher::new();
        let mut chunk = vec![0u8; CHUNK.min(data_len as usize)];
        let mut left = data_len;
        while left > 0 {
            let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            file.read_exact(&mut chunk[..n]).map_err(&io_err)?;
            data_crc.update(&chunk[..n]);
            left -= n as u64;
        }
        crc.combine(&data_crc);
        if crc.finalize().to_le_bytes() != h[36..] {
            return Err(corrupt(36, "checksum mismatch".into()));
        }
        if u64_at(12) >= MAX_INDEX {
            return Err(corrupt(12, format!("snapshot index {} is out of range", u64_at(12))));
        }
        let meta = SnapshotMeta { index: LogIndex(u64_at(12)), term: Term(u64_at(20)) };
        let membership = raft_core::codec::decode_value(&m)
            .map_err(|e| corrupt(body + 4, format!("configuration does not decode: {e}")))?;
        let data_crc = data_crc.finalize();
        Ok(Some(SnapshotFile { path, file, meta, membership, data_offset, data_len, data_crc }))
    }

    /// The index and term the snapshot covers.
    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// The configuration in effect at its index.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The length of the state machine's bytes.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// CRC-32 of the state machine's bytes alone: what the core's
    /// `InstallSnapshot::checksum` carries for this snapshot.
    pub fn data_checksum(&self) -> u32 {
        self.data_crc
    }

    /// Reads state-machine bytes at `offset` into `buf`; the count read, 0
    /// at or past the end of the data.
    pub fn read_data_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let left = self.data_len.saturating_sub(offset);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let path = &self.path;
        let io_err = |e: io::Error| StorageError::io("read", path)(e);
        self.file.seek(SeekFrom::Start(self.data_offset + offset)).map_err(&io_err)?;
        self.file.read_exact(&mut buf[..n]).map_err(&io_err)?;
        Ok(n)
    }

    /// The state machine's bytes as a stream, from the start, to hand to
    /// [`StateMachine::restore_from`](crate::StateMachine::restore_from).
    pub fn data_reader(&mut self) -> Result<impl io::Read + '_, StorageError> {
        self.file.seek(SeekFrom::Start(self.data_offset)).map_err(StorageError::io("read", &self.path))?;
        Ok((&mut self.file).take(self.data_len))
    }
}

/// Fills as much of `buf` as the file holds; the count read.
fn read_full(file: &mut dyn io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::SimFs;
    use raft_core::NodeId;
    use std::io::Write as _;

    fn snapshot(len: usize) -> Snapshot {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let meta = SnapshotMeta { index: LogIndex(90), term: Term(4) };
        Snapshot { meta, membership: Membership::with_voters([NodeId(1), NodeId(2)]).into(), data: Bytes::from(data) }
    }

    fn sim_fs() -> (SimFs, Arc<dyn Fs>) {
        let fs = SimFs::new();
        for d in ["/a", "/b", "/d"] {
            fs.create_dir_all(Path::new(d)).unwrap();
        }
        (fs.clone(), Arc::new(fs))
    }

    #[test]
    fn pieces_of_any_size_make_the_same_file_as_one_write() {
        let (sim, fs) = sim_fs();
        let (a, b) = (Path::new("/a"), Path::new("/b"));
        let s = snapshot(3 * CHUNK + 123);
        write(&fs, a, &s).unwrap();
        let mut w = SnapshotFileWriter::create(fs.clone(), b, s.meta, &s.membership).unwrap();
        // Small pieces, one crossing the buffer's edge, one larger than a chunk.
        let cuts = [0, 1, 100, CHUNK - 5, CHUNK + 10, 3 * CHUNK, s.data.len()];
        for pair in cuts.windows(2) {
            w.write_all(&s.data[pair[0]..pair[1]]).unwrap();
        }
        assert_eq!(w.data_len(), s.data.len() as u64);
        w.finish().unwrap();
        assert_eq!(sim.contents(&path(a)), sim.contents(&path(b)));
        assert_eq!(read(&*fs, b).unwrap(), Some(s));
    }

    #[test]
    fn a_writer_holds_at_most_a_chunk_unwritten_and_writes_small_pieces_a_chunk_at_a_time() {
        let (sim, fs) = sim_fs();
        let dir = Path::new("/d");
        let s = snapshot(20 * CHUNK);
        let tmp = dir.join(format!("{SNAPSHOT_FILE}{TMP_SUFFIX}"));
        let mut w = SnapshotFileWriter::create(fs.clone(), dir, s.meta, &s.membership).unwrap();
        let ops = sim.ops();
        let check = |w: &SnapshotFileWriter, what: &str| {
            let in_file = sim.contents(&tmp).unwrap().len() as u64 - HEADER as u64 - w.data_start;
            assert!(
                w.data_len() - in_file <= CHUNK as u64,
                "{what}: {} of {} bytes unwritten",
                w.data_len() - in_file,
                w.data_len()
            );
        };
        // Pieces larger than a chunk, alone and after a buffered one, go out at once.
        let (big, rest) = s.data.split_at(3 * CHUNK);
        w.write_data(big).unwrap();
        check(&w, "a first piece of 3 chunks");
        let (small, rest) = rest.split_at(10);
        w.write_data(small).unwrap();
        let (big, rest) = rest.split_at(2 * CHUNK);
        w.write_data(big).unwrap();
        check(&w, "a piece of 2 chunks after 10 bytes");
        // Small pieces are gathered into writes of nearly a chunk.
        let writes_before = sim.ops() - ops;
        for piece in rest.chunks(1000) {
            w.write_data(piece).unwrap();
            check(&w, "pieces of 1000 bytes");
        }
        let writes = sim.ops() - ops - writes_before;
        let most = rest.len() as u64 / (CHUNK as u64 - 1000) + 1;
        assert!(writes <= most, "{} bytes in pieces of 1000 took {writes} writes, expected at most {most}", rest.len());
        w.finish().unwrap();
        assert_eq!(read(&*fs, dir).unwrap(), Some(s));
    }

    #[test]
    fn a_stored_snapshot_reads_in_ranges_and_as_a_stream() {
        let (_, fs) = sim_fs();
        let dir = Path::new("/d");
        assert!(SnapshotFile::open(&*fs, dir).unwrap().is_none());
        let s = snapshot(2 * CHUNK + 9);
        write(&fs, dir, &s).unwrap();
        let mut f = SnapshotFile::open(&*fs, dir).unwrap().unwrap();
        assert_eq!((f.meta(), f.membership(), f.data_len()), (s.meta, &*s.membership, s.data.len() as u64));
        assert_eq!(f.data_checksum(), crc32fast::hash(&s.data));
        let mut buf = vec![0u8; 1000];
        for offset in [0, 1, CHUNK as u64 - 3, s.data.len() as u64 - 10] {
            let n = f.read_data_at(offset, &mut buf).unwrap();
            let start = offset as usize;
            let end = (start + 1000).min(s.data.len());
            assert_eq!(&buf[..n], &s.data[start..end], "at {offset}");
        }
        assert_eq!(f.read_data_at(s.data.len() as u64, &mut buf).unwrap(), 0);
        assert_eq!(f.read_data_at(u64::MAX, &mut buf).unwrap(), 0);
        let mut all = Vec::new();
        f.data_reader().unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, &s.data[..]);
    }

    #[test]
    fn a_damaged_data_byte_fails_the_check_when_opened() {
        let (sim, fs) = sim_fs();
        let dir = Path::new("/d");
        let s = snapshot(CHUNK + 50);
        write(&fs, dir, &s).unwrap();
        let good = sim.contents(&path(dir)).unwrap();
        let data_start = good.len() - s.data.len();
        for at in [data_start, data_start + 2, good.len() - CHUNK, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(sim.set_contents(&path(dir), &bad));
            let err = SnapshotFile::open(&*fs, dir).unwrap_err();
            assert!(matches!(err, StorageError::Corrupt { offset: 36, .. }), "byte {at}: {err}");
        }
    }

    /// A snapshot file of version 2 for `index` with this `body`
    /// (configuration length, configuration, data) and a correct checksum.
    fn file_with(index: u64, body: &[u8]) -> Vec<u8> {
        let mut h = SNAPSHOT_MAGIC.to_vec();
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&index.to_le_bytes());
        h.extend_from_slice(&4u64.to_le_bytes());
        h.extend_from_slice(&(body.len() as u64).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h);
        crc.update(body);
        h.extend_from_slice(&crc.finalize().to_le_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn a_checksummed_file_with_a_bad_configuration_or_index_is_refused_at_the_field() {
        let (sim, fs) = sim_fs();
        let dir = Path::new("/d");
        write(&fs, dir, &snapshot(10)).unwrap();
        let config = raft_core::codec::encode_value(&*snapshot(0).membership).unwrap();
        let body = |m_len: u32, m: &[u8], data: &[u8]| [&m_len.to_le_bytes()[..], m, data].concat();
        let good = body(config.len() as u32, &config, b"data");
        let cases = [
            // The control: well formed.
            (file_with(90, &good), None),
            // Shorter than a configuration length.
            (file_with(90, &[1, 0]), Some(HEADER as u64)),
            // A configuration longer than the file (but within the codec's bound).
            (file_with(90, &body(config.len() as u32 + 5, &config, b"data")), Some(HEADER as u64)),
            // A configuration that does not decode (at the configuration, after its length).
            (file_with(90, &body(3, &[0xff; 3], b"data")), Some(HEADER as u64 + 4)),
            // The first index out of range; the last one in it.
            (file_with(MAX_INDEX, &good), Some(12)),
            (file_with(MAX_INDEX - 1, &good), None),
        ];
        for (i, (bytes, refused_at)) in cases.into_iter().enumerate() {
            sim.set_contents(&path(dir), &bytes);
            match (SnapshotFile::open(&*fs, dir), refused_at) {
                (Ok(Some(f)), None) => assert_eq!((f.membership(), f.data_len()), (&*snapshot(0).membership, 4)),
                (Err(StorageError::Corrupt { offset, .. }), Some(at)) => assert_eq!(offset, at, "case {i}"),
                (other, _) => panic!("case {i}: {other:?}, expected a refusal at {refused_at:?}"),
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_snapshot_file_that_cannot_be_opened_is_an_error_never_no_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        // A name that exists but cannot be opened: a link to itself.
        std::os::unix::fs::symlink("snapshot", path(tmp.path())).unwrap();
        match SnapshotFile::open(&crate::storage::fs::RealFs, tmp.path()) {
            Err(StorageError::Io { path: p, .. }) => assert_eq!(p, path(tmp.path())),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    /// A reader that answers each read with the next scripted step: `Ok(n)`
    /// gives the next `n` bytes of `data`, `Err(kind)` fails once.
    #[derive(Debug)]
    struct Scripted {
        data: Vec<u8>,
        at: usize,
        steps: std::collections::VecDeque<Result<usize, ErrorKind>>,
    }

    impl io::Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.steps.pop_front() {
                Some(Err(kind)) => Err(io::Error::new(kind, "scripted")),
                Some(Ok(n)) => {
                    let n = n.min(buf.len()).min(self.data.len() - self.at);
                    buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
                    self.at += n;
                    Ok(n)
                }
                None => Ok(0),
            }
        }
    }

    #[test]
    fn a_full_read_goes_on_after_short_and_interrupted_reads_and_stops_at_the_end_or_an_error() {
        let script =
            |steps: Vec<Result<usize, ErrorKind>>| Scripted { data: (1..=10).collect(), at: 0, steps: steps.into() };
        let mut buf = [0u8; 8];
        let mut r = script(vec![Ok(3), Err(ErrorKind::Interrupted), Ok(1), Ok(9)]);
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 8);
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut r = script(vec![Ok(2), Ok(0), Ok(5)]);
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 2, "a read of 0 is the end of the file");
        let mut r = script(vec![Ok(2), Err(ErrorKind::PermissionDenied), Ok(5)]);
        let err = read_full(&mut r, &mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn an_unfinished_writer_leaves_the_stored_snapshot_alone() {
        let (_, fs) = sim_fs();
        let dir = Path::new("/d");
        let old = snapshot(10);
        write(&fs, dir, &old).unwrap();
        let mut w = SnapshotFileWriter::create(
            fs.clone(),
            dir,
            SnapshotMeta { index: LogIndex(95), term: Term(4) },
            &old.membership,
        )
        .unwrap();
        w.write_all(&[1; 2 * CHUNK]).unwrap();
        drop(w);
        assert_eq!(read(&*fs, dir).unwrap(), Some(old));
    }
}
