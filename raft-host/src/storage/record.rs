//! Log records and their framing: `len: u32 LE | crc32(payload): u32 LE |
//! payload`, where `payload` is a codec-encoded [`Record`] of 1 to
//! [`MAX_RECORD_BYTES`] bytes.

use raft_core::codec::{self, DecodeError};
use raft_core::{Entry, LogIndex, SnapshotMeta, Term};
use serde::{Deserialize, Serialize};

/// Bytes before a record's payload.
pub(super) const FRAME_HEADER: usize = 8;
/// Largest payload a frame may carry: the codec's decode limit.
pub(super) const MAX_RECORD_BYTES: usize = codec::MAX_DECODE_BYTES;

/// One change to the log, in the order it was made. Variants are encoded by
/// position: only ever append new ones.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(super) enum Record {
    /// Append this entry at the end.
    Append(Entry),
    /// Remove every entry at `from` or later.
    Truncate { from: LogIndex },
    /// A snapshot covering everything up to `index` (of `term`) was stored in
    /// the snapshot file before this record; drop the entries it covers.
    Snapshot { index: LogIndex, term: Term },
}

/// [`Record`] by reference, for encoding without copying entries.
#[derive(Serialize)]
enum RecordRef<'a> {
    Append(&'a Entry),
    Truncate { from: LogIndex },
    Snapshot { index: LogIndex, term: Term },
}

/// A record ready to be written.
#[derive(Clone, Copy, Debug)]
pub(super) enum Change<'a> {
    /// See [`Record::Append`].
    Append(&'a Entry),
    /// See [`Record::Truncate`].
    Truncate(LogIndex),
    /// See [`Record::Snapshot`].
    Snapshot(SnapshotMeta),
}

/// Frames a record; `None` if its payload would exceed [`MAX_RECORD_BYTES`].
pub(super) fn frame(change: Change<'_>) -> Option<Vec<u8>> {
    let r = match change {
        Change::Append(e) => RecordRef::Append(e),
        Change::Truncate(from) => RecordRef::Truncate { from },
        Change::Snapshot(m) => RecordRef::Snapshot { index: m.index, term: m.term },
    };
    let payload = codec::encode_value(&r).ok()?;
    if payload.is_empty() || payload.len() > MAX_RECORD_BYTES {
        return None;
    }
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Some(out)
}

/// Decodes a frame's payload.
pub(super) fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
    codec::decode_value(payload)
}

/// Why the bytes at some offset are not a frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BadFrame {
    /// Fewer than [`FRAME_HEADER`] bytes remain.
    ShortHeader,
    /// The length field is 0 (frames are never empty: a zeroed region).
    ZeroLength,
    /// The announced payload runs past the end of the file.
    PastEnd { len: u64 },
    /// The announced payload exceeds [`MAX_RECORD_BYTES`].
    TooLong { len: u64 },
    /// The payload's checksum does not match.
    Checksum,
}

impl BadFrame {
    pub(super) fn describe(&self) -> String {
        match self {
            BadFrame::ShortHeader => "incomplete record header".into(),
            BadFrame::ZeroLength => "record length 0".into(),
            BadFrame::PastEnd { len } => format!("record of {len} bytes runs past the end of the file"),
            BadFrame::TooLong { len } => format!("record length {len} exceeds the {MAX_RECORD_BYTES}-byte maximum"),
            BadFrame::Checksum => "record checksum mismatch".into(),
        }
    }
}

/// Reads the frame at `at` in `bytes`: its payload, or why it is not one.
/// Never allocates; never reads out of bounds.
pub(super) fn frame_at(bytes: &[u8], at: usize) -> Result<&[u8], BadFrame> {
    let rest = bytes.get(at..).unwrap_or_default();
    let Some((header, rest)) = rest.split_first_chunk::<FRAME_HEADER>() else {
        return Err(BadFrame::ShortHeader);
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Err(BadFrame::ZeroLength);
    }
    if len > rest.len() {
        return Err(BadFrame::PastEnd { len: len as u64 });
    }
    if len > MAX_RECORD_BYTES {
        return Err(BadFrame::TooLong { len: len as u64 });
    }
    let payload = &rest[..len];
    if crc32fast::hash(payload) != crc {
        return Err(BadFrame::Checksum);
    }
    Ok(payload)
}
