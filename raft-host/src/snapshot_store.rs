//! Snapshots kept on disk, never whole in memory: what a [`Driver`](crate::Driver)
//! built with [`Driver::with_stored_snapshots`](crate::Driver::with_stored_snapshots)
//! does with the core's stored-snapshot outputs.
//!
//! * **Take.** The state machine streams its state straight into the snapshot
//!   file ([`SnapshotFileWriter`]: temp file, fsync, rename), then the core
//!   gets the data's length and CRC (`Node::compact_stored`).
//! * **Send.** Each `Output::SendSnapshotChunk` is filled with the bytes it
//!   names, read from the stored snapshot file (kept open).
//! * **Receive.** Each `Output::SaveSnapshotChunk` is appended to a partial
//!   snapshot file; the core checks the running CRC. When the core installs
//!   it (its `Persist` or `RestoreSnapshot`, whichever comes first), the
//!   partial file is made durable and renamed over the snapshot file, before
//!   the disk log records it.
//! * **Restore.** The state machine reads its state from the snapshot file
//!   as a stream ([`StateMachine::restore_from`]).
//!
//! Each step holds at most a chunk or two of snapshot bytes in memory. The
//! file is the [`DiskLog`](crate::DiskLog)'s own `snapshot` file, so the log
//! must be opened with
//! [`DiskLogOptions::stored_snapshots`](crate::DiskLogOptions::stored_snapshots).
//! File I/O happens on the caller's thread, inside `Driver::drain`.

use crate::state_machine::StateMachine;
use crate::storage::fs::Fs;
use crate::storage::{SNAPSHOT_CHUNK, SnapshotFile, SnapshotFileWriter, StorageError};
use raft_core::{Bytes, InstallSnapshot, Membership, Message, SnapshotDigest, SnapshotMeta};
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

/// The snapshot files of one node's log directory.
#[derive(Debug)]
pub(crate) struct SnapshotStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// The snapshot being received from a leader.
    incoming: Option<SnapshotFileWriter>,
    /// The stored snapshot, open for reading chunks.
    source: Option<SnapshotFile>,
    /// The snapshot this store last put in place (None: the one found at
    /// start-up, if any, is whatever the disk log recovered).
    in_place: Option<SnapshotMeta>,
}

impl SnapshotStore {
    pub(crate) fn new(fs: Arc<dyn Fs>, dir: PathBuf, recovered: Option<SnapshotMeta>) -> SnapshotStore {
        SnapshotStore { fs, dir, incoming: None, source: None, in_place: recovered }
    }

    /// Streams `sm`'s state into the snapshot file as the snapshot `meta`
    /// with `membership`; its data's digest.
    pub(crate) fn take<S: StateMachine>(
        &mut self,
        sm: &S,
        meta: SnapshotMeta,
        membership: &Membership,
    ) -> Result<SnapshotDigest, StorageError> {
        let mut w = SnapshotFileWriter::create(self.fs.clone(), &self.dir, meta, membership)?;
        sm.write_snapshot(&mut w).map_err(StorageError::io("write snapshot", &self.dir))?;
        let digest = w.digest();
        w.finish()?;
        self.in_place = Some(meta);
        Ok(digest)
    }

    /// Fills a chunk the core asked for from the stored snapshot; false if
    /// this store does not hold that snapshot (any more): drop the message.
    pub(crate) fn fill_chunk(&mut self, message: &mut Message, len: u64) -> bool {
        let raft_core::Body::InstallSnapshot(chunk) = &mut message.body else {
            return false;
        };
        let meta = SnapshotMeta { index: chunk.index, term: chunk.snapshot_term };
        if self.source.as_ref().is_none_or(|s| s.meta() != meta) {
            self.source = SnapshotFile::open(&*self.fs, &self.dir).ok().flatten();
        }
        let Some(source) = self.source.as_mut().filter(|s| s.meta() == meta) else {
            return false;
        };
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        let mut buf = vec![0u8; len];
        let mut at = 0;
        while at < len {
            match source.read_data_at(chunk.offset + at as u64, &mut buf[at..]) {
                Ok(n) if n > 0 => at += n,
                _ => return false,
            }
        }
        chunk.data = Bytes::from(buf);
        true
    }

    /// Appends a received chunk to the partial snapshot (offset 0 starts a
    /// new one).
    pub(crate) fn save_chunk(&mut self, chunk: &InstallSnapshot) -> Result<(), StorageError> {
        let meta = SnapshotMeta { index: chunk.index, term: chunk.snapshot_term };
        if chunk.offset == 0 {
            self.incoming = None;
            let w = SnapshotFileWriter::create_incoming(self.fs.clone(), &self.dir, meta, &chunk.membership)?;
            self.incoming = Some(w);
        }
        match self.incoming.as_mut() {
            Some(w) if w.meta() == meta && w.data_len() == chunk.offset => w.write_data(&chunk.data),
            _ => Err(self.invalid(format!(
                "a chunk at {} of snapshot {meta:?} does not continue the partial one",
                chunk.offset
            ))),
        }
    }

    /// The core installed the received snapshot `meta` (whose data has
    /// `digest`, if the core says): make the partial snapshot the stored one,
    /// durably. Nothing to do if it is in place already.
    pub(crate) fn install(&mut self, meta: SnapshotMeta, digest: Option<SnapshotDigest>) -> Result<(), StorageError> {
        if self.incoming.as_ref().is_some_and(|w| w.meta() == meta) {
            let Some(w) = self.incoming.take() else {
                return Ok(());
            };
            if digest.is_some_and(|d| d != w.digest()) {
                let why = format!("received snapshot {meta:?} holds {:?}, the core expected {digest:?}", w.digest());
                return Err(self.invalid(why));
            }
            w.finish()?;
            self.in_place = Some(meta);
        }
        match self.in_place {
            Some(m) if m == meta => Ok(()),
            _ => Err(self.invalid(format!("no snapshot file holds snapshot {meta:?}"))),
        }
    }

    /// Replaces `sm`'s state with the stored snapshot `meta`, read as a stream.
    pub(crate) fn restore<S: StateMachine>(&mut self, sm: &mut S, meta: SnapshotMeta) -> Result<(), String> {
        self.install(meta, None).map_err(|e| e.to_string())?;
        let mut file = match SnapshotFile::open(&*self.fs, &self.dir) {
            Ok(Some(f)) if f.meta() == meta => f,
            Ok(Some(f)) => return Err(format!("the snapshot file holds {:?}, not {meta:?}", f.meta())),
            Ok(None) => return Err("no snapshot file".into()),
            Err(e) => return Err(e.to_string()),
        };
        let reader = file.data_reader().map_err(|e| e.to_string())?;
        sm.restore_from(&mut BufReader::with_capacity(SNAPSHOT_CHUNK, reader)).map_err(|e| e.to_string())
    }

    fn invalid(&self, reason: String) -> StorageError {
        StorageError::InvalidWrite { dir: self.dir.clone(), reason }
    }
}
