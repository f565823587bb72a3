//! A crash-safe Raft log on disk: [`DiskLog`].
//!
//! # Directory layout
//!
//! | file | contents | written |
//! | --- | --- | --- |
//! | `LOCK` | empty; held locked while a `DiskLog` is open | at open |
//! | `meta` | [`NodeMeta`] (node and cluster id) | once, atomically, at creation |
//! | `hardstate` | the term, vote and `catching_up` flag | atomically (temp file, fsync, rename, fsync dir) |
//! | `snapshot` | the latest snapshot: index, term, configuration, data (layout below) | atomically, piece by piece |
//! | `log-<first_index:020>.seg` | header with the synced watermark, records, then preallocated zeros | created durably; records appended, fdatasync'ed, then the watermark moved and fdatasync'ed at `sync`; removed by compaction |
//!
//! `meta` and `hardstate` are `magic | version: u32 | len: u32 | crc32: u32 |
//! payload` (codec encoding). A segment is a 64-byte header, then records
//! framed `len: u32 LE | crc32: u32 LE | payload`, the payload a
//! codec-encoded `Append(entry)`, `Truncate { from }` or `Snapshot { index,
//! term }`. The header is `magic "RAFTLOG\0" | version: u32 | first_index:
//! u64 | crc32` (24 bytes), then two 20-byte **watermark slots**, each
//! `synced_end: u64 | generation: u64 | crc32` (see below). Integers are
//! little-endian. Truncation is logical: a record, replayed in order at
//! start-up. A segment is named after the index the log's next entry had
//! when it was started. A new one is started once the current one would
//! pass [`DiskLogOptions::segment_bytes`], and at every `Snapshot` record
//! (see [Compaction](#compaction)); both only if the current segment holds a
//! record and the log's next index has passed the current segment's name
//! (so after a truncation below a segment's first index, the log stays in
//! that segment until it grows past it again, and names keep increasing).
//!
//! A segment's file is filled with zeros ahead of its records
//! ([`DiskLogOptions::preallocate_bytes`] at a time, up to the segment size),
//! so that the fdatasync of an append overwrites blocks the file already
//! has and usually writes no file size. A record is never empty, so a zero
//! length field ends the records; zeros after the records are no torn tail.
//!
//! # The synced watermark: torn writes versus damage
//!
//! A crash may leave any part of an unsynced write on disk, in any order (a
//! later page before an earlier one); a disk may also damage bytes that were
//! synced long ago. The two look alike, so each segment records how far it
//! is known to be durable. `sync` appends the records, fdatasyncs them, then
//! writes `synced_end` = the segment's new end into the slot of the next
//! generation (generations alternate between the two slots) and fdatasyncs
//! again; only then is the sync acknowledged. The valid slot with the highest
//! generation is the segment's watermark. A torn slot write leaves the other
//! slot, which covers every acknowledged record.
//!
//! So at start-up every byte below the watermark was acknowledged and must
//! be intact: any defect there is corruption. Only bytes beyond the
//! watermark, in the last segment, can be a torn write: they are read up to
//! the first bad record and cut off from there, even if good records follow
//! (those came from the same unacknowledged sync). A segment is created
//! under a temporary name (`log-<first_index:020>.seg.tmp`), with both slots
//! at the end of the header, fsynced, renamed into place and its directory
//! fsynced before any record goes in; a segment is filled and its watermark
//! moved to its end before its successor is created. So a damaged header
//! under a real segment name is damage too, and only the last segment can
//! hold unacknowledged bytes.
//!
//! With [`Watermark::Deferred`] (an option; the default is the above), a
//! sync is one fdatasync: it writes the records and, in the same
//! fdatasync, moves the watermark over the records an earlier sync made
//! durable, and [`DiskLog::settle_watermark`] (called by the disk thread
//! once it has had no work for 5 ms) catches the watermark up. The watermark
//! still never covers a byte before an fdatasync completed over it, so
//! every rule above holds; but the last sync's records may be beyond the
//! watermark when the node stops, and then damage to them looks torn.
//!
//! What the watermark cannot tell: damage to the newest slot makes the
//! previous one the watermark, so the last sync's records count as beyond it
//! (intact, they are kept; damaged as well, they are cut as a torn tail);
//! a whole last segment deleted leaves no trace. Both take two faults or
//! deliberate deletion, not a crash.
//!
//! # Repair
//!
//! A start-up refused as corruption in a segment can be repaired
//! ([`DiskLog::repair`], [`DiskLogOptions::repair`], the `--repair` flag of
//! `raft-udp node`). The hard state is first stored with `catching_up` set;
//! then every segment after the damaged one is removed (newest first) and
//! the damaged one cut at the damaged record (its watermark lowered first,
//! then the file cut; removed if the damage is in its header); this repeats
//! until recovery succeeds. The snapshot, the hard state and every record
//! before the damage are kept. The node has lost entries it may have
//! acknowledged, so its vote could elect a leader without a committed
//! entry: with `catching_up` set, `raft_core` neither votes nor campaigns
//! until it has caught up with a leader, and then clears the flag. Damage
//! in `meta`, `hardstate` or `snapshot` cannot be repaired this way.
//!
//! # Format versions
//!
//! | file | version | change |
//! | --- | --- | --- |
//! | segments | 2 | 64-byte header with the watermark slots (version 1: 24-byte header, no watermark) |
//! | `hardstate` | 2 | `catching_up` (version 1: term and vote) |
//! | `snapshot` | 2 | the cluster configuration before the data (version 1: data only) |
//! | `meta` | 1 | |
//!
//! A file of an older version is refused with
//! [`StorageError::UnsupportedVersion`]; there is no in-place upgrade.
//!
//! The snapshot file is replaced before the `Snapshot` record is appended;
//! recovery applies a snapshot file newer than the last such record. A
//! `Snapshot` record never meets an entry that disagrees with it: when a
//! snapshot disagrees with the entry the log holds at its index, a
//! `Truncate` record from that index is written before it (recovery relies on
//! this, see below).
//!
//! The `snapshot` file is `magic "RAFTSNAP" | version: u32 | index: u64 |
//! term: u64 | body_len: u64 | crc32: u32 | membership_len: u32 |
//! membership | data`, the CRC over the 36 header bytes before it and the
//! body. It is written and read a bounded piece at a time
//! ([`SnapshotFileWriter`], [`SnapshotFile`], [`SNAPSHOT_CHUNK`] bytes of
//! data at once): the header, which needs the body's length and CRC, is
//! written last into the temp file, before its fsync and rename. A state
//! machine can stream its snapshot straight into one
//! ([`StateMachine::write_snapshot`](crate::StateMachine::write_snapshot))
//! and restore from one
//! ([`StateMachine::restore_from`](crate::StateMachine::restore_from)).
//! [`DiskLog::open`] hands the data to the core as one buffer (read once,
//! into a buffer of its exact size), unless it was opened with
//! [`DiskLogOptions::stored_snapshots`]: it then checks the file piece by
//! piece and leaves the data on disk ([`Recovered::snapshot_digest`]), for a
//! [`Driver`](crate::Driver) built with
//! [`Driver::with_stored_snapshots`](crate::Driver::with_stored_snapshots).
//! Such a driver writes the `snapshot` file itself (a snapshot it takes, or
//! one received from a leader, from the temp file `snapshot.incoming.tmp`)
//! before the write that records it reaches [`DiskLog::write`], which then
//! only appends the `Snapshot` record; recovery already adopts a snapshot
//! file newer than the last record (see above), so a crash in between is
//! covered. Leftover `snapshot.tmp` and `snapshot.incoming.tmp` files are
//! removed at open. The format is the same either way.
//!
//! # Compaction
//!
//! Once a snapshot at index S is durable (at the end of the `sync` that made
//! its file and its record durable), every segment before the last one whose
//! name is at most S + 1 is removed. Each entry such a segment holds that is
//! still in the log comes before its successor's name, so at or below S: the
//! snapshot covers it. Whole segments only: a segment holding entries on both
//! sides of S stays until a later snapshot covers it. Segments are removed
//! oldest first with a directory fsync after each, so a crash leaves a
//! contiguous suffix of them; [`DiskLog::open`] finishes an interrupted
//! removal.
//!
//! Starting a segment at each `Snapshot` record means the segment before it
//! ends where the log ended when that snapshot was taken, which the next
//! snapshot normally covers. So what remains on disk starts at most one
//! snapshot interval (or, if smaller, one segment) before the entry after the
//! latest snapshot: the disk holds the snapshot file, the entries after the
//! snapshot, and at most that much older history, however long the node runs.
//! The price is one more segment creation (directory fsync) per snapshot.
//!
//! # Recovery after compaction
//!
//! A first segment named F > 1 is accepted only if the snapshot file covers
//! index F - 1 (else it is corruption: of that segment, "missing segment", or
//! of the `snapshot` file if there is none). Replay then starts at F with
//! entries 1 .. F - 1 *opaque*: held, terms unknown, covered by the
//! snapshot. Records in the remaining segments may still refer to them, and
//! replay stays exact: a `Truncate` only needs the log's end; a `Snapshot` at
//! an opaque index keeps the entries after it, as it did when written (a
//! disagreeing entry would have been truncated first); an entry appended
//! right after an opaque one skips the term check. Every snapshot written
//! after the removal is newer than S, so above every opaque entry; after
//! replay (and adopting a newer snapshot file) none may remain. A segment
//! missing in the middle is still corruption: each segment must start where
//! the log before it ends.

mod error;
mod files;
pub mod fs;
mod hard_state;
mod meta;
pub mod probe;
mod record;
mod recover;
mod repair;
mod segment;
mod shape;
mod snapshot_file;
#[cfg(test)]
mod tests;

pub use error::StorageError;
pub use meta::NodeMeta;
pub use repair::{Damage, Repaired};
pub use snapshot_file::{CHUNK as SNAPSHOT_CHUNK, SealedSnapshotFile, SnapshotFile, SnapshotFileWriter};

use fs::{Fs, LockGuard, RealFs};
use record::Change;
use segment::SegmentWriter;
use shape::Shape;
use std::collections::VecDeque;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft_core::{Entry, HardState, LogIndex, Restored, Snapshot, SnapshotDigest, Write};

const LOCK_FILE: &str = "LOCK";

/// Tuning for a [`DiskLog`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskLogOptions {
    /// Start a new segment file once the current one would exceed this many
    /// bytes (a segment always takes at least one record; a snapshot also
    /// starts a new one). Default 64 MiB. Disk use stays bounded whatever the
    /// size: see "Compaction" in the [`storage`](crate::storage) module docs.
    pub segment_bytes: u64,
    /// Repair damaged log segments before opening, as [`DiskLog::repair`]
    /// does, instead of refusing to start. Default false. Meant for one
    /// start-up chosen by an operator (the `--repair` flag of `raft-udp
    /// node`), not to be left on.
    pub repair: bool,
    /// Fill a segment's file with zeros this far ahead of its records (never
    /// beyond [`segment_bytes`](Self::segment_bytes)), so that the fdatasync
    /// of an append overwrites allocated blocks and usually has no file size
    /// to write. 0: no preallocation, the file grows with every append.
    /// Default 1 MiB.
    pub preallocate_bytes: u64,
    /// The host keeps snapshot data on disk only (see `raft_core::SnapshotDigest`):
    /// [`DiskLog::open`] checks the snapshot file but leaves its data there
    /// ([`Recovered::snapshot_digest`] is set, the snapshot's `data` is
    /// empty). Writes with `snapshot_digest` set are stored this way in any
    /// case. Default false: the data is read into memory.
    pub stored_snapshots: bool,
    /// When a sync moves the synced watermark. Default
    /// [`Watermark::BeforeAck`].
    pub watermark: Watermark,
}

/// When [`DiskLog::sync`] moves a segment's synced watermark (see "The
/// synced watermark" in the [`storage`](crate::storage) module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Watermark {
    /// Each sync fdatasyncs the records, then moves the watermark over them
    /// and fdatasyncs again, before it returns. Every acknowledged record is
    /// below the watermark: damage to any of them is reported as
    /// corruption. Two fdatasyncs per group commit.
    #[default]
    BeforeAck,
    /// Each sync writes the records and moves the watermark over the
    /// records of the *previous* sync, with one fdatasync; the watermark
    /// catches up with [`DiskLog::settle_watermark`] (the
    /// [`DiskThread`](crate::DiskThread) calls it once it has had no work
    /// for 5 ms) or the next sync. One fdatasync per group commit, and the same
    /// safety against crashes: a record is acknowledged only once durable.
    /// What is weaker: the records of the last sync before a crash may lie
    /// beyond the watermark (under steady load, always those of the last
    /// sync; when idle, only if the crash came within 5 ms and one fdatasync
    /// of the acknowledgement). If the disk *later damages* exactly those, recovery
    /// cannot tell the damage from a torn write and cuts them as a torn
    /// tail, without an error: acknowledged entries lost from this node,
    /// as with two faults under `BeforeAck`.
    Deferred,
}

impl Default for DiskLogOptions {
    fn default() -> Self {
        DiskLogOptions {
            segment_bytes: 64 << 20,
            repair: false,
            preallocate_bytes: 1 << 20,
            watermark: Watermark::BeforeAck,
            stored_snapshots: false,
        }
    }
}

impl DiskLogOptions {
    /// Sets [`segment_bytes`](Self::segment_bytes).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`preallocate_bytes`](Self::preallocate_bytes).
    pub fn preallocate_bytes(mut self, bytes: u64) -> Self {
        self.preallocate_bytes = bytes;
        self
    }

    fn prealloc(&self) -> segment::Prealloc {
        segment::Prealloc { chunk: self.preallocate_bytes, limit: self.segment_bytes }
    }

    /// Sets [`stored_snapshots`](Self::stored_snapshots).
    pub fn stored_snapshots(mut self, stored: bool) -> Self {
        self.stored_snapshots = stored;
        self
    }

    /// Sets [`watermark`](Self::watermark).
    pub fn watermark(mut self, watermark: Watermark) -> Self {
        self.watermark = watermark;
        self
    }

    /// Sets [`repair`](Self::repair).
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }
}

/// The durable state read back by [`DiskLog::open`]: exactly what was
/// acknowledged by completed [`DiskLog::sync`] calls, possibly plus later
/// writes that happened to reach the disk before a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// The stored term and vote (default if never stored).
    pub hard_state: HardState,
    /// The stored snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// With [`DiskLogOptions::stored_snapshots`]: the length and checksum of
    /// the stored snapshot's data, which stayed on disk (`snapshot.data` is
    /// empty; read it with [`SnapshotFile`]).
    pub snapshot_digest: Option<SnapshotDigest>,
    /// The stored entries after the snapshot (from index 1 without one),
    /// contiguous, terms never decreasing.
    pub entries: Vec<Entry>,
}

impl Recovered {
    /// What `raft_core::Node::new` starts from; set how far the host's state
    /// machine has applied with `Restored::with_last_applied`.
    pub fn into_restored(self) -> Restored {
        let restored = Restored::new(self.hard_state, self.entries);
        match (self.snapshot, self.snapshot_digest) {
            (Some(s), Some(d)) => restored.with_stored_snapshot(s, d),
            (Some(s), None) => restored.with_snapshot(s),
            (None, _) => restored,
        }
    }
}

/// One encoded record waiting for [`DiskLog::sync`].
struct Pending {
    frame: Vec<u8>,
    /// The log's next index just before this record (names a segment it starts).
    next_before: u64,
    /// A `Snapshot` record: it starts a new segment (see the module docs).
    snapshot: bool,
}

/// A crash-safe, append-only Raft log in one directory, with the hard state
/// and the latest snapshot beside it.
///
/// # Use
///
/// For each `raft_core::Persist` in order: [`write`](Self::write) its
/// `write`; then one [`sync`](Self::sync) for all of them (group commit);
/// then `Node::handle_persisted` with the last token.
///
/// # Durability promise
///
/// Once `sync` returns `Ok`, every write given before it survives a crash,
/// power loss or `kill -9`: [`open`](Self::open) returns it. A crash during a
/// `sync` (or before it) leaves a state that is the last synced state plus
/// some prefix of the later log records, with the later hard state and
/// snapshot possibly already in place (they are written first, see
/// [`sync`](Self::sync)), and some of the segments that sync's snapshot
/// covers possibly removed; nothing acknowledged is lost. `open` makes what
/// it recovered durable before returning (and moves the watermark over it).
/// This assumes only that the file system honours fsync and fdatasync:
/// unsynced writes may reach the disk partly and in any order.
///
/// # Recovery rules
///
/// (Why they hold: "The synced watermark" in the [`storage`](self) module docs.)
///
/// * A **torn tail** is cut off: in the last segment, the bytes beyond the
///   synced watermark from the first bad record on (a partial record, a bad
///   checksum, garbage), whatever follows; unless they are all zeros
///   (preallocated, or zeroed by the crash), which stay for later appends.
/// * Anything else stops start-up with [`StorageError::Corrupt`] naming the
///   file and offset (and saying how to [`repair`](Self::repair)): a bad
///   record at or below the watermark (a bit flip in any acknowledged
///   record, the last one included), a segment that ends before its
///   watermark, a damaged segment header or both watermark slots damaged, a
///   record with a good checksum that does not decode or does not fit the
///   log (indexes not contiguous, terms going down), a missing segment, a
///   damaged `meta`, `hardstate` or `snapshot`. Files of an older format:
///   [`StorageError::UnsupportedVersion`].
/// * A first segment after index 1 (compaction removed the earlier ones) is
///   accepted if the snapshot covers every index before it; replay starts
///   there (see "Recovery after compaction" in the module docs). A first
///   segment that leaves a gap above the snapshot is corruption. Segments a
///   compaction cut short by a crash did not remove are removed.
/// * A leftover `*.tmp` from an interrupted atomic write or segment creation
///   is removed; the file it was replacing is intact.
/// * A snapshot file newer than the log's last `Snapshot` record (the crash
///   came between the two) is applied to the log, and its record appended
///   (after a `Truncate` if it disagrees with an entry the log holds).
///
/// Recovery never panics on file contents and allocates no more than a
/// file's real size.
pub struct DiskLog {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    meta: NodeMeta,
    options: DiskLogOptions,
    /// Held locked for as long as the log is open.
    _lock: LockGuard,
    /// The log including writes not yet synced.
    shape: Shape,
    current: Option<SegmentWriter>,
    /// The first index of every segment file, oldest first (the last one is
    /// `current`).
    segments: VecDeque<u64>,
    /// Tests set this to stop `sync` from removing segments, so that they
    /// can crash in the middle of a compaction.
    hold_compaction: bool,
    pending: Vec<Pending>,
    pending_hard_state: Option<HardState>,
    pending_snapshot: Option<Snapshot>,
    failed: bool,
}

impl fmt::Debug for DiskLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskLog")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .field("snapshot_index", &self.shape.base().index)
            .field("last_index", &self.last_index())
            .field("segments", &self.segments.len())
            .field("pending_records", &self.pending.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl DiskLog {
    /// Opens (creating if needed) the log in `dir` with default options. See
    /// [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>, expected: NodeMeta) -> Result<(DiskLog, Recovered), StorageError> {
        DiskLog::open_with(dir, expected, DiskLogOptions::default())
    }

    /// Opens the log in `dir`, creating the directory and stamping it with
    /// `expected` if it holds no log yet, and returns what survived.
    ///
    /// Fails with [`StorageError::WrongNode`] / [`StorageError::WrongCluster`]
    /// if the directory is stamped for another node or cluster,
    /// [`StorageError::Locked`] if another `DiskLog` has it open, and
    /// [`StorageError::Corrupt`] per the recovery rules (see [`DiskLog`]).
    /// Cutting a torn tail is made durable before this returns. With
    /// [`DiskLogOptions::repair`], damaged segments are first repaired as
    /// [`repair`](Self::repair) does.
    pub fn open_with(
        dir: impl AsRef<Path>,
        expected: NodeMeta,
        options: DiskLogOptions,
    ) -> Result<(DiskLog, Recovered), StorageError> {
        DiskLog::open_on(Arc::new(RealFs), dir, expected, options)
    }

    /// [`open_with`](Self::open_with) on any file system, such as the
    /// simulated [`SimFs`](fs::SimFs) of crash tests.
    pub fn open_on(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        expected: NodeMeta,
        options: DiskLogOptions,
    ) -> Result<(DiskLog, Recovered), StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let lock = prepare(&*fs, &dir, &expected)?;
        if options.repair {
            repair::repair(&*fs, &dir)?;
        }
        let rec = recover::recover(&*fs, &dir, !options.stored_snapshots)?;
        let current = match rec.last_segment {
            Some(last) => {
                let mut seg = SegmentWriter::open(
                    &*fs,
                    last.path,
                    last.first_index,
                    last.len,
                    last.file_len,
                    last.synced,
                    last.generation,
                    options.prealloc(),
                )?;
                // Bytes a crashed process wrote but never synced may be in
                // the page cache, and valid records may lie beyond the
                // watermark: make what was recovered durable.
                seg.sync()?;
                Some(seg)
            }
            None => None,
        };
        let mut log = DiskLog {
            fs,
            dir,
            meta: expected,
            options,
            _lock: lock,
            shape: rec.shape,
            current,
            segments: rec.segments.into(),
            hold_compaction: false,
            pending: Vec::new(),
            pending_hard_state: None,
            pending_snapshot: None,
            failed: false,
        };
        if !rec.adopted.is_empty() {
            // Record the adopted snapshot in the log, so that the records
            // appended from now on replay onto the same log.
            for (change, next_before) in rec.adopted {
                let frame = record::frame(change).ok_or_else(|| {
                    StorageError::corrupt(log.dir.join("snapshot"), 0, "snapshot record cannot be encoded")
                })?;
                let snapshot = matches!(change, Change::Snapshot(_));
                log.pending.push(Pending { frame, next_before, snapshot });
            }
            log.sync()?;
        }
        // Finish a compaction a crash interrupted.
        log.remove_compacted_segments(usize::MAX)?;
        let recovered = Recovered {
            hard_state: rec.hard_state,
            snapshot: rec.snapshot,
            snapshot_digest: rec.snapshot_digest,
            entries: rec.entries,
        };
        Ok((log, recovered))
    }

    /// Repairs the log in `dir` after [`open`](Self::open) refused it as
    /// [`StorageError::Corrupt`] in a log segment, so that it can be opened
    /// again. Run it once, by an operator's choice (`raft-udp node ...
    /// --repair`).
    ///
    /// It keeps the hard state, the snapshot and every log record before the
    /// first damaged one, discards that record and everything after it, and
    /// stores the hard state with `catching_up` set (before discarding
    /// anything): the node lost entries it may have acknowledged, so
    /// `raft_core` keeps it from voting or campaigning until it has caught up
    /// with a leader (see `HardState::catching_up`). The next `open` returns
    /// that hard state.
    ///
    /// Returns what was discarded (nothing, and the hard state untouched, if
    /// the log was sound). Damage in `hardstate`, `meta` or `snapshot` is not
    /// repairable and is returned as the error `open` gives. The directory
    /// must not be open.
    pub fn repair(dir: impl AsRef<Path>, expected: NodeMeta) -> Result<Repaired, StorageError> {
        DiskLog::repair_on(Arc::new(RealFs), dir, expected)
    }

    /// [`repair`](Self::repair) on any file system.
    pub fn repair_on(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, expected: NodeMeta) -> Result<Repaired, StorageError> {
        let dir = dir.as_ref();
        let _lock = prepare(&*fs, dir, &expected)?;
        repair::repair(&*fs, dir)
    }

    /// Queues one write, following the `raft_core::Write` order: hard state,
    /// snapshot, truncation, entries. Nothing reaches the disk before
    /// [`sync`](Self::sync).
    ///
    /// The snapshot (if newer than the stored one) keeps the entries after
    /// it when the log holds its last entry with its term, and drops every
    /// entry otherwise. A truncation removes entries at or after
    /// `truncate_from` (those the snapshot covers are gone already). Entries
    /// must then continue the log with non-decreasing terms.
    ///
    /// A snapshot with `snapshot_digest` set (its bytes are the host's) must
    /// already be the directory's snapshot file, written by the host with a
    /// [`SnapshotFileWriter`]: only its record is written here.
    ///
    /// A write that breaks these rules, or holds an entry whose record would
    /// exceed the codec's size limit, is refused with
    /// [`StorageError::InvalidWrite`] and changes nothing.
    pub fn write(&mut self, write: &Write) -> Result<(), StorageError> {
        self.check_usable()?;
        let invalid = |reason: String| StorageError::InvalidWrite { dir: self.dir.clone(), reason };
        let plan = self.shape.plan(write).map_err(invalid)?;
        let changes: Vec<Change<'_>> = plan
            .conflict_from
            .map(Change::Truncate)
            .into_iter()
            .chain(plan.snapshot.map(Change::Snapshot))
            .chain(plan.truncate_from.map(Change::Truncate))
            .chain(write.entries.iter().map(Change::Append))
            .collect();
        let mut frames = Vec::with_capacity(changes.len());
        for change in &changes {
            let frame = record::frame(*change).ok_or_else(|| invalid(format!("{change:?} is too large to store")))?;
            frames.push(frame);
        }
        for (change, frame) in changes.into_iter().zip(frames) {
            let next_before = self.shape.next_index();
            match change {
                Change::Snapshot(meta) => {
                    self.shape.compact(meta);
                }
                Change::Truncate(from) => self.shape.truncate(from),
                Change::Append(e) => self.shape.push(e.term),
            }
            let snapshot = matches!(change, Change::Snapshot(_));
            self.pending.push(Pending { frame, next_before, snapshot });
        }
        if let Some(hs) = write.hard_state {
            self.pending_hard_state = Some(hs);
        }
        if let (Some(_), Some(s), None) = (plan.snapshot, &write.snapshot, write.snapshot_digest) {
            self.pending_snapshot = Some(Snapshot::clone(s));
        }
        Ok(())
    }

    /// Makes every write given so far durable (group commit), then returns.
    ///
    /// In order: the newest hard state, atomically (temp file, fsync, rename,
    /// directory fsync); the newest snapshot, likewise; then the log records,
    /// appended and made durable with one `fdatasync` (plus one per segment
    /// filled on the way, and a directory fsync if a segment was created);
    /// then, if the snapshot moved past the start of the next segment, the
    /// segments it made useless are removed, oldest first, with a directory
    /// fsync after each (see "Compaction" in the module docs). Does nothing
    /// if nothing is pending.
    ///
    /// On error, what reached the disk is unknown: the log refuses all
    /// further calls with [`StorageError::Failed`]; reopen it to recover.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        let result = self.sync_inner();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn sync_inner(&mut self) -> Result<(), StorageError> {
        if let Some(hs) = self.pending_hard_state.take() {
            hard_state::write(&*self.fs, &self.dir, &hs)?;
        }
        if let Some(s) = self.pending_snapshot.take() {
            snapshot_file::write(&self.fs, &self.dir, &s)?;
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let roll = match &self.current {
                None => true,
                Some(seg) => {
                    (p.snapshot || seg.len + (buf.len() + p.frame.len()) as u64 > self.options.segment_bytes)
                        && seg.has_records(buf.len())
                        && p.next_before > seg.first_index
                }
            };
            if roll {
                if let Some(mut seg) = self.current.take() {
                    // The full segment and its watermark are durable before
                    // its successor exists, so only the last segment can ever
                    // hold bytes beyond its watermark.
                    seg.append(&buf)?;
                    seg.sync()?;
                    buf.clear();
                }
                self.current =
                    Some(SegmentWriter::create(&*self.fs, &self.dir, p.next_before, self.options.prealloc())?);
                self.segments.push_back(p.next_before);
            }
            buf.extend_from_slice(&p.frame);
        }
        if let Some(seg) = &mut self.current {
            seg.append(&buf)?;
            match self.options.watermark {
                Watermark::BeforeAck => seg.sync()?,
                Watermark::Deferred => seg.sync_deferred()?,
            }
        }
        if !self.hold_compaction {
            self.remove_compacted_segments(usize::MAX)?;
        }
        Ok(())
    }

    /// Moves the current segment's synced watermark over every record a
    /// completed [`sync`](Self::sync) made durable, with a slot write and an
    /// fdatasync, if [`Watermark::Deferred`] left it behind; returns whether
    /// it wrote. Never needed for safety against crashes; it narrows the
    /// window in which damage to acknowledged records would look like a
    /// torn write. A no-op under [`Watermark::BeforeAck`].
    ///
    /// On error the log refuses all further calls, as after a failed `sync`.
    pub fn settle_watermark(&mut self) -> Result<bool, StorageError> {
        self.check_usable()?;
        let Some(seg) = &mut self.current else { return Ok(false) };
        let result = seg.settle();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Removes (at most `limit` of) the segments whose every entry still in
    /// the log is covered by the snapshot: each one before the last segment
    /// starting at or below `snapshot index + 1`. Oldest first, each removal
    /// made durable before the next, so that what is left is always a
    /// contiguous suffix of the log. Call only when every record is durable.
    /// Returns how many were removed.
    fn remove_compacted_segments(&mut self, limit: usize) -> Result<usize, StorageError> {
        debug_assert!(self.pending.is_empty());
        let mut removed = 0;
        while removed < limit && self.compacted_segments() > 0 {
            let path = self.dir.join(segment::name(self.segments[0]));
            match self.fs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove compacted segment", &path)(e)),
            }
            files::sync_dir(&*self.fs, &self.dir)?;
            self.segments.pop_front();
            removed += 1;
        }
        Ok(removed)
    }

    /// How many of the oldest segments the snapshot has made useless: those
    /// before the last segment that starts at or below `snapshot index + 1`
    /// (the entries each holds end before its successor's first index).
    fn compacted_segments(&self) -> usize {
        let covered = self.shape.base().index.0;
        self.segments.iter().rposition(|&first| first <= covered + 1).unwrap_or(0)
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.failed { Err(StorageError::Failed { dir: self.dir.clone() }) } else { Ok(()) }
    }

    /// The index of the last entry, counting writes not yet synced (the
    /// snapshot's index if no entry follows it; 0 for an empty log).
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.shape.next_index() - 1)
    }

    /// The index the newest snapshot covers (0: none), counting writes not
    /// yet synced.
    pub fn snapshot_index(&self) -> LogIndex {
        self.shape.base().index
    }

    /// True if every write given has been made durable by [`sync`](Self::sync).
    pub fn is_synced(&self) -> bool {
        self.pending.is_empty() && self.pending_hard_state.is_none() && self.pending_snapshot.is_none()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// With [`DiskLogOptions::stored_snapshots`]: the file system and
    /// directory of the snapshot file, for
    /// [`Driver::with_stored_snapshots`](crate::Driver::with_stored_snapshots).
    pub fn snapshot_files(&self) -> Option<(Arc<dyn Fs>, PathBuf)> {
        self.options.stored_snapshots.then(|| (self.fs.clone(), self.dir.clone()))
    }

    /// The node and cluster the directory belongs to.
    pub fn meta(&self) -> NodeMeta {
        self.meta
    }
}

/// Creates `dir` if needed, takes its lock (so two logs never share a
/// directory) and checks or writes its stamp.
fn prepare(fs: &dyn Fs, dir: &Path, expected: &NodeMeta) -> Result<LockGuard, StorageError> {
    fs.create_dir_all(dir).map_err(StorageError::io("create directory", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        files::sync_dir(fs, parent)?;
    }
    let path = dir.join(LOCK_FILE);
    let lock = match fs.try_lock(&path) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Err(StorageError::Locked { dir: dir.to_path_buf() }),
        Err(e) => return Err(StorageError::io("lock", &path)(e)),
    };
    match meta::read(fs, dir)? {
        Some(found) => meta::check(dir, expected, &found)?,
        None if recover::has_data(fs, dir)? => {
            let why = "missing, but the directory holds raft data; refusing to guess whose it is";
            return Err(StorageError::corrupt(dir.join("meta"), 0, why));
        }
        None => meta::write(fs, dir, expected)?,
    }
    Ok(lock)
}
