//! Segment files: naming, header, synced watermark, appending, and telling
//! valid records from a torn tail or damage.
//!
//! A segment `log-<first_index:020>.seg` starts with a 64-byte header:
//! `magic "RAFTLOG\0" | version: u32 LE | first_index: u64 LE |
//! crc32(previous 20 bytes): u32 LE`, then two watermark slots of 20 bytes,
//! each `synced_end: u64 LE | generation: u64 LE | crc32(previous 16 bytes):
//! u32 LE`; framed records (see [`super::record`]) follow from byte 64.
//! `first_index` is the index the log's next entry had when the segment was
//! started; names strictly increase along the log. See the
//! [`storage`](super) module docs for what the watermark guarantees.

use super::error::StorageError;
use super::files;
use super::fs::{Fs, FsFile, OpenMode};
use super::record;
use std::path::{Path, PathBuf};

/// Bytes before a segment's first record: identity header and the two
/// watermark slots.
pub(super) const SEGMENT_HEADER: usize = 64;
/// Segment format version. 2: synced watermark slots (version 1 had none).
const VERSION: u32 = 2;
const IDENTITY: usize = 24;
const SLOT: usize = 20;
const SEGMENT_MAGIC: &[u8; 8] = b"RAFTLOG\0";
const PREFIX: &str = "log-";
const SUFFIX: &str = ".seg";
/// Suffix of a segment being created (renamed into place once durable).
const CREATING: &str = ".seg.tmp";

/// The file name of the segment starting at `first_index`.
pub(super) fn name(first_index: u64) -> String {
    format!("{PREFIX}{first_index:020}{SUFFIX}")
}

/// For a directory entry: `None` if it is not a segment's name at all,
/// `Some(None)` if it looks like one but is malformed, else its first index.
pub(super) fn parse_name(file_name: &str) -> Option<Option<u64>> {
    let digits = file_name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let ok = digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit());
    Some(if ok { digits.parse().ok() } else { None })
}

/// True if `file_name` is a segment an interrupted creation left behind.
pub(super) fn is_leftover(file_name: &str) -> bool {
    file_name.starts_with(PREFIX) && file_name.ends_with(CREATING)
}

/// True if `path` names a segment file.
pub(super) fn is_segment_path(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).and_then(parse_name).is_some()
}

/// The header of a segment starting at `first_index`.
/// Both watermark slots say `synced_end` = the end of the header
/// (generation 1 in slot 1, 0 in slot 0).
pub(super) fn header(first_index: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..IDENTITY].copy_from_slice(&crc.to_le_bytes());
    for generation in 0..2 {
        let at = slot_offset(generation);
        h[at..at + SLOT].copy_from_slice(&slot(SEGMENT_HEADER as u64, generation));
    }
    h
}

/// Where the slot of `generation` lives (generations alternate slots, so a
/// torn slot write never damages the previous watermark).
fn slot_offset(generation: u64) -> usize {
    IDENTITY + (generation % 2) as usize * SLOT
}

fn slot(synced_end: u64, generation: u64) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[..8].copy_from_slice(&synced_end.to_le_bytes());
    s[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&s[..16]);
    s[16..].copy_from_slice(&crc.to_le_bytes());
    s
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The valid watermark slot with the highest generation: `(synced_end, generation)`.
fn watermark(header: &[u8; SEGMENT_HEADER]) -> Option<(u64, u64)> {
    (0..2)
        .map(|i| &header[IDENTITY + i * SLOT..IDENTITY + (i + 1) * SLOT])
        .filter(|s| crc32fast::hash(&s[..16]).to_le_bytes() == s[16..])
        .map(|s| (u64_at(s, 0), u64_at(s, 8)))
        .max_by_key(|&(_, generation)| generation)
}

/// The valid records of a segment, with their offsets.
#[derive(Debug)]
pub(super) struct Scan<'a> {
    /// `(offset, payload)` of each valid frame, in order.
    pub(super) frames: Vec<(usize, &'a [u8])>,
    /// Where the valid records end.
    pub(super) end: usize,
    /// The bytes from `end` on are a torn tail to cut off (last segment
    /// only; not if they are all zeros, preallocated).
    pub(super) torn: bool,
    /// The synced watermark read from the header.
    pub(super) synced: u64,
    /// Its generation.
    pub(super) generation: u64,
}

/// Splits a segment's bytes into valid frames and a torn tail; `path` is for
/// errors.
///
/// Every byte up to the synced watermark must be valid records: any defect
/// there (or a file that ends before it, or a damaged header) is
/// corruption. Records after the watermark are read up to the first bad one,
/// which starts a torn tail in the last segment; in an earlier segment the
/// bytes from there on are ignored.
pub(super) fn scan<'a>(
    bytes: &'a [u8],
    first_index: u64,
    is_last: bool,
    path: &Path,
) -> Result<Scan<'a>, StorageError> {
    let corrupt = |at: usize, why: String| StorageError::corrupt(path, at as u64, why);
    check_identity(bytes, first_index, path)?;
    let Some(header) = bytes.first_chunk::<SEGMENT_HEADER>() else {
        let why = format!("file of {} bytes is shorter than the segment header", bytes.len());
        return Err(corrupt(bytes.len(), why));
    };
    let Some((synced, generation)) = watermark(header) else {
        return Err(corrupt(IDENTITY, "both synced-watermark slots are damaged".into()));
    };
    if synced < SEGMENT_HEADER as u64 {
        return Err(corrupt(IDENTITY, format!("synced watermark {synced} lies inside the header")));
    }
    let limit = usize::try_from(synced).unwrap_or(usize::MAX).min(bytes.len());
    let short = limit < usize::try_from(synced).unwrap_or(usize::MAX);
    let below = &bytes[..limit];
    let mut frames = Vec::new();
    let mut at = SEGMENT_HEADER;
    while at < below.len() {
        let payload = record::frame_at(below, at).map_err(|bad| match short {
            true => corrupt(
                at,
                format!("file ends at byte {}, inside this record, before its synced watermark {synced}", bytes.len()),
            ),
            false => corrupt(at, format!("{}, below the synced watermark {synced}", bad.describe())),
        })?;
        frames.push((at, payload));
        at += record::FRAME_HEADER + payload.len();
    }
    if short {
        let why = format!("file ends at byte {}, before its synced watermark {synced}", bytes.len());
        return Err(corrupt(bytes.len(), why));
    }
    // Beyond the watermark (nothing there was acknowledged), up to the
    // first bad record. In a segment before the last one, records beyond it
    // can only be there if its newest watermark slot was damaged (it was
    // moved to the segment's end before the next segment was created).
    while let Ok(payload) = record::frame_at(bytes, at) {
        frames.push((at, payload));
        at += record::FRAME_HEADER + payload.len();
    }
    // Preallocated zeros after the records are no torn tail.
    let torn = is_last && bytes[at..].iter().any(|&b| b != 0);
    Ok(Scan { frames, end: at, torn, synced, generation })
}

/// Checks the identity part of the header against the segment's name.
fn check_identity(bytes: &[u8], first_index: u64, path: &Path) -> Result<(), StorageError> {
    let corrupt = |at: u64, why: String| StorageError::corrupt(path, at, why);
    let Some(h) = bytes.first_chunk::<IDENTITY>() else {
        return Err(corrupt(0, format!("file of {} bytes is shorter than the segment header", bytes.len())));
    };
    if crc32fast::hash(&h[..20]).to_le_bytes() != h[20..] {
        return Err(corrupt(0, "segment header checksum mismatch".into()));
    }
    if &h[..8] != SEGMENT_MAGIC {
        return Err(corrupt(0, "bad segment magic number".into()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(StorageError::version(path, 8, version, VERSION));
    }
    let found = u64_at(h, 12);
    if found != first_index {
        return Err(corrupt(
            12,
            format!("header says the segment starts at index {found}, its name says {first_index}"),
        ));
    }
    Ok(())
}

/// Lowers the synced watermark of the segment at `path` to `end` and cuts
/// the file there (repair: the records from `end` on are given up). Each
/// step is durable before the next, so a crash leaves the records after the
/// new watermark at worst, which recovery cuts as torn.
pub(super) fn cut(fs: &dyn Fs, path: &Path, end: u64) -> Result<(), StorageError> {
    let bytes = fs.read(path).map_err(StorageError::io("read", path))?;
    let generation = bytes.first_chunk::<SEGMENT_HEADER>().and_then(watermark).map_or(1, |(_, g)| g);
    let mut file = fs.open(path, OpenMode::Existing).map_err(StorageError::io("open", path))?;
    let at = slot_offset(generation + 1) as u64;
    file.write_at(at, &slot(end, generation + 1)).map_err(StorageError::io("write watermark of", path))?;
    file.sync_data().map_err(StorageError::io("fdatasync", path))?;
    file.set_len(end).map_err(StorageError::io("cut", path))?;
    file.sync_all().map_err(StorageError::io("fsync", path))
}

/// How far ahead of its records a segment's file is filled with zeros, so
/// that an fdatasync after an append usually has no file size to write.
#[derive(Clone, Copy, Debug)]
pub(super) struct Prealloc {
    /// Zeros written at a time (0: none; the file grows with each append).
    pub(super) chunk: u64,
    /// Never beyond this file size (the segment size).
    pub(super) limit: u64,
}

/// The segment file being appended to.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    file: Box<dyn FsFile>,
    path: PathBuf,
    /// The index in its name.
    pub(super) first_index: u64,
    /// Where its records end, counting bytes written but not synced.
    pub(super) len: u64,
    /// The file's size: records, then zeros.
    allocated: u64,
    prealloc: Prealloc,
    /// The durable watermark: every byte before it is durable.
    synced: u64,
    generation: u64,
    /// Where the records known durable end (an fdatasync completed after
    /// they were written): at least `synced`; beyond it only between a
    /// [`sync_deferred`](Self::sync_deferred) and the next watermark move.
    durable: u64,
}

/// Zeros for preallocation, written in pieces of this size at most.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl SegmentWriter {
    /// Creates the segment starting at `first_index`, durably: header (and
    /// preallocated zeros) written to a temporary file, synced, renamed into
    /// place, directory synced. So a segment under its real name always has
    /// a durable header, and a damaged one is damage, never a crash.
    pub(super) fn create(
        fs: &dyn Fs,
        dir: &Path,
        first_index: u64,
        prealloc: Prealloc,
    ) -> Result<SegmentWriter, StorageError> {
        let path = dir.join(name(first_index));
        let tmp = dir.join(format!("{PREFIX}{first_index:020}{CREATING}"));
        let file = fs.open(&tmp, OpenMode::CreateTruncate).map_err(StorageError::io("create", &tmp))?;
        let len = SEGMENT_HEADER as u64;
        let mut seg = SegmentWriter {
            file,
            path: tmp,
            first_index,
            len,
            allocated: len,
            prealloc,
            synced: len,
            generation: 1,
            durable: len,
        };
        seg.file.write_at(0, &header(first_index)).map_err(StorageError::io("write", &seg.path))?;
        seg.preallocate()?;
        seg.file.sync_all().map_err(StorageError::io("fsync", &seg.path))?;
        fs.rename(&seg.path, &path).map_err(StorageError::io("rename into place", &path))?;
        files::sync_dir(fs, dir)?;
        seg.path = path;
        Ok(seg)
    }

    /// Reopens a recovered segment whose records end at `len`, `synced` of
    /// them under the watermark of `generation`, in a file of `file_len`
    /// bytes (zeros after `len`), for appending.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        fs: &dyn Fs,
        path: PathBuf,
        first_index: u64,
        len: u64,
        file_len: u64,
        synced: u64,
        generation: u64,
        prealloc: Prealloc,
    ) -> Result<SegmentWriter, StorageError> {
        let file = fs.open(&path, OpenMode::Existing).map_err(StorageError::io("open", &path))?;
        let allocated = file_len.max(len);
        Ok(SegmentWriter { file, path, first_index, len, allocated, prealloc, synced, generation, durable: synced })
    }

    /// Appends `bytes` (not synced), and fills the file with zeros ahead of
    /// the records when they come near the end of what is preallocated.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file.write_at(self.len, bytes).map_err(StorageError::io("write", &self.path))?;
        self.len += bytes.len() as u64;
        self.allocated = self.allocated.max(self.len);
        self.preallocate()
    }

    /// Writes zeros up to one chunk past the records (never past the
    /// segment size) once less than half a chunk of zeros is left.
    fn preallocate(&mut self) -> Result<(), StorageError> {
        let Prealloc { chunk, limit } = self.prealloc;
        if chunk == 0 || self.allocated >= limit || self.allocated - self.len >= chunk / 2 {
            return Ok(());
        }
        let target = (self.len + chunk).min(limit);
        while self.allocated < target {
            let n = (target - self.allocated).min(ZEROS.len() as u64) as usize;
            self.file.write_at(self.allocated, &ZEROS[..n]).map_err(StorageError::io("preallocate", &self.path))?;
            self.allocated += n as u64;
        }
        Ok(())
    }

    /// Makes everything appended durable (fdatasync), then moves the synced
    /// watermark to the end (a slot write and a second fdatasync).
    pub(super) fn sync(&mut self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(StorageError::io("fdatasync", &self.path))?;
        self.durable = self.len;
        self.settle().map(|_| ())
    }

    /// Makes everything appended durable with one fdatasync, which also
    /// carries the watermark over the records an *earlier* sync made durable
    /// (so the watermark never claims a byte before an fdatasync completed
    /// over it). The records of this sync stay beyond the watermark until
    /// the next sync or [`settle`](Self::settle).
    pub(super) fn sync_deferred(&mut self) -> Result<(), StorageError> {
        if self.durable != self.synced {
            self.write_slot(self.durable)?;
        }
        self.file.sync_data().map_err(StorageError::io("fdatasync", &self.path))?;
        self.synced = self.durable;
        self.durable = self.len;
        Ok(())
    }

    /// Moves the watermark over every record known durable (a slot write and
    /// an fdatasync), if it is not there yet. Returns whether it wrote.
    pub(super) fn settle(&mut self) -> Result<bool, StorageError> {
        if self.synced == self.durable {
            return Ok(false);
        }
        self.write_slot(self.durable)?;
        self.file.sync_data().map_err(StorageError::io("fdatasync", &self.path))?;
        self.synced = self.durable;
        Ok(true)
    }

    /// Writes `synced_end` into the next generation's slot (not synced).
    fn write_slot(&mut self, synced_end: u64) -> Result<(), StorageError> {
        let generation = self.generation + 1;
        self.file
            .write_at(slot_offset(generation) as u64, &slot(synced_end, generation))
            .map_err(StorageError::io("write watermark of", &self.path))?;
        self.generation = generation;
        Ok(())
    }

    /// True if the segment holds a record, counting `buffered` bytes about to be appended.
    pub(super) fn has_records(&self, buffered: usize) -> bool {
        self.len + buffered as u64 > SEGMENT_HEADER as u64
    }
}
