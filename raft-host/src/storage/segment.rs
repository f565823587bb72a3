//! Segment files: naming, header, appending, and telling valid records from a torn
//! tail or damage.
//!
//! A segment `log-<first_index:020>.seg` starts with a 24-byte header,
//! `magic "RAFTLOG\0" | version: u32 LE | first_index: u64 LE |
//! crc32(previous 20 bytes): u32 LE`, followed by framed records (see
//! [`super::record`]). `first_index` is the index the log's next entry had
//! when the segment was started; names strictly increase along the log.

use super::error::StorageError;
use super::files::VERSION;
use super::record;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Bytes before a segment's first record.
pub(super) const SEGMENT_HEADER: usize = 24;
const SEGMENT_MAGIC: &[u8; 8] = b"RAFTLOG\0";
const PREFIX: &str = "log-";
const SUFFIX: &str = ".seg";

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

/// The header of a segment starting at `first_index`.
pub(super) fn header(first_index: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// How a segment's valid contents end.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Every byte belongs to a valid record.
    Clean,
    /// The bytes from this offset on are a torn tail and must be cut off
    /// (0: the header itself is torn; the file must go).
    TornAt(usize),
}

/// The valid records of a segment, with their offsets.
#[derive(Debug)]
pub(super) struct Scan<'a> {
    /// `(offset, payload)` of each valid frame, in order.
    pub(super) frames: Vec<(usize, &'a [u8])>,
    /// How the valid contents end.
    pub(super) end: End,
}

/// Damage found by [`scan`]: offset and description.
pub(super) type Damage = (u64, String);

/// Splits a segment's bytes into valid frames and a torn tail.
///
/// In the last segment, a bad frame (or header) with no valid frame anywhere
/// after it is a torn tail: the end of a write cut short by a crash. Any
/// other bad frame is damage. An earlier segment must be entirely valid: it
/// was synced before the next one was created.
pub(super) fn scan(bytes: &[u8], first_index: u64, is_last: bool) -> Result<Scan<'_>, Damage> {
    let torn_or = |at: usize, why: String| -> Result<usize, Damage> {
        if !is_last {
            return Err((at as u64, format!("{why} (in a segment that is not the last)")));
        }
        match record::next_valid_frame(bytes, at) {
            None => Ok(at),
            Some(p) => Err((at as u64, format!("{why}, followed by a valid record at offset {p}"))),
        }
    };
    match check_header(bytes, first_index) {
        Ok(()) => {}
        // An intact header that says the wrong thing is never torn.
        Err(HeaderError::Wrong(at, why)) => return Err((at, why)),
        Err(HeaderError::Damaged(why)) => {
            let at = torn_or(0, why)?;
            return Ok(Scan { frames: Vec::new(), end: End::TornAt(at) });
        }
    }
    let mut frames = Vec::new();
    let mut at = SEGMENT_HEADER;
    while at < bytes.len() {
        match record::frame_at(bytes, at) {
            Ok(payload) => {
                frames.push((at, payload));
                at += record::FRAME_HEADER + payload.len();
            }
            Err(bad) => {
                let at = torn_or(at, bad.describe())?;
                return Ok(Scan { frames, end: End::TornAt(at) });
            }
        }
    }
    Ok(Scan { frames, end: End::Clean })
}

enum HeaderError {
    /// Short or failing its checksum: possibly torn.
    Damaged(String),
    /// Intact but naming the wrong format or index: offset and reason.
    Wrong(u64, String),
}

/// Checks the header against the segment's name.
fn check_header(bytes: &[u8], first_index: u64) -> Result<(), HeaderError> {
    let Some(h) = bytes.first_chunk::<SEGMENT_HEADER>() else {
        return Err(HeaderError::Damaged(format!("file of {} bytes is shorter than the segment header", bytes.len())));
    };
    if crc32fast::hash(&h[..20]).to_le_bytes() != h[20..] {
        return Err(HeaderError::Damaged("segment header checksum mismatch".into()));
    }
    if &h[..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Wrong(0, "bad segment magic number".into()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(HeaderError::Wrong(8, format!("unsupported segment format version {version}")));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[12..20]);
    let found = u64::from_le_bytes(b);
    if found != first_index {
        return Err(HeaderError::Wrong(
            12,
            format!("header says the segment starts at index {found}, its name says {first_index}"),
        ));
    }
    Ok(())
}

/// The segment file being appended to.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    file: File,
    path: PathBuf,
    /// The index in its name.
    pub(super) first_index: u64,
    /// Bytes written to it (synced or not).
    pub(super) len: u64,
}

impl SegmentWriter {
    /// Creates the segment starting at `first_index` and writes its header
    /// (not synced; the caller syncs the directory for the new name).
    pub(super) fn create(dir: &Path, first_index: u64) -> Result<SegmentWriter, StorageError> {
        let path = dir.join(name(first_index));
        let mut file =
            OpenOptions::new().append(true).create_new(true).open(&path).map_err(StorageError::io("create", &path))?;
        file.write_all(&header(first_index)).map_err(StorageError::io("write", &path))?;
        Ok(SegmentWriter { file, path, first_index, len: SEGMENT_HEADER as u64 })
    }

    /// Reopens a recovered segment of `len` valid bytes for appending.
    pub(super) fn open(path: PathBuf, first_index: u64, len: u64) -> Result<SegmentWriter, StorageError> {
        let file = OpenOptions::new().append(true).open(&path).map_err(StorageError::io("open", &path))?;
        Ok(SegmentWriter { file, path, first_index, len })
    }

    /// Appends `bytes` (not synced).
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file.write_all(bytes).map_err(StorageError::io("write", &self.path))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Makes everything appended durable (fdatasync).
    pub(super) fn sync(&self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(StorageError::io("fdatasync", &self.path))
    }

    /// True if the segment holds a record, counting `buffered` bytes about to be appended.
    pub(super) fn has_records(&self, buffered: usize) -> bool {
        self.len + buffered as u64 > SEGMENT_HEADER as u64
    }
}
