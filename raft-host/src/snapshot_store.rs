//! Snapshots kept on disk, never whole in memory: what a [`Driver`](crate::Driver)
//! built with [`Driver::with_stored_snapshots`](crate::Driver::with_stored_snapshots)
//! does with the core's stored-snapshot outputs.
//!
//! * **Take.** The state machine streams its state straight into the snapshot
//!   file ([`SnapshotFileWriter`]: temp file, fsync, rename), then the core
//!   gets the data's length and CRC (`Node::compact_stored`). A state
//!   machine that can copy its state ([`StateMachine::snapshot_writer`])
//!   is written on a thread of its own: the node goes on, and the file is
//!   renamed into place on the node's thread when done, unless a newer
//!   snapshot arrived meanwhile.
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
//! Other file I/O happens on the caller's thread, inside `Driver::drain`.

use crate::state_machine::{SnapshotWriter, StateMachine};
use crate::storage::fs::Fs;
use crate::storage::{SNAPSHOT_CHUNK, SealedSnapshotFile, SnapshotFile, SnapshotFileWriter, StorageError};
use raft_core::{Bytes, InstallSnapshot, Membership, Message, SnapshotDigest, SnapshotMeta};
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

/// What a snapshot written on its own thread ends with.
type Written = Result<(SealedSnapshotFile, SnapshotDigest), StorageError>;

/// A snapshot being written on a thread of its own ([`SnapshotStore::start_take`]).
/// Dropped, it waits for the thread and removes what it wrote.
#[derive(Debug)]
pub(crate) struct Taking {
    meta: SnapshotMeta,
    done: mpsc::Receiver<Written>,
    thread: Option<JoinHandle<()>>,
}

impl Taking {
    /// The snapshot being written.
    pub(crate) fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// The outcome, once the thread is done: the durable file under its
    /// temporary name and the data's digest.
    pub(crate) fn poll(&mut self) -> Option<Written> {
        let result = match self.done.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => Err(StorageError::InvalidWrite {
                dir: PathBuf::new(),
                reason: format!("the thread writing snapshot {:?} stopped without an outcome", self.meta),
            }),
        };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Some(result)
    }
}

impl Drop for Taking {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            if let Ok(Ok((sealed, _))) = self.done.try_recv() {
                let _ = sealed.discard();
            }
        }
    }
}

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

    /// Starts writing the snapshot `meta` with `membership` on a thread of
    /// its own: `writer` streams the state (copied when the snapshot was
    /// asked for) into a temporary file, which is made durable there.
    /// [`finish_take`](Self::finish_take) puts it in place once
    /// [`Taking::poll`] has it.
    pub(crate) fn start_take(
        &mut self,
        writer: SnapshotWriter,
        meta: SnapshotMeta,
        membership: &Membership,
    ) -> Result<Taking, StorageError> {
        let mut w = SnapshotFileWriter::create(self.fs.clone(), &self.dir, meta, membership)?;
        let dir = self.dir.clone();
        let (tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(move || {
                let written = writer(&mut w).map_err(StorageError::io("write snapshot", &dir)).and_then(|()| {
                    let digest = w.digest();
                    Ok((w.seal()?, digest))
                });
                let _ = tx.send(written);
            })
            .map_err(StorageError::io("start the snapshot thread for", &self.dir))?;
        Ok(Taking { meta, done, thread: Some(thread) })
    }

    /// Puts a snapshot written on its own thread in place (durably), unless
    /// this store holds one at least as new (received while it was being
    /// written): then it is removed. True if it is now the stored snapshot.
    pub(crate) fn finish_take(&mut self, sealed: SealedSnapshotFile) -> Result<bool, StorageError> {
        let meta = sealed.meta();
        if self.in_place.is_some_and(|m| m.index >= meta.index) {
            sealed.discard()?;
            return Ok(false);
        }
        sealed.put_in_place()?;
        self.in_place = Some(meta);
        self.source = None;
        Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::RealFs;
    use raft_core::{LogIndex, NodeId, Term};
    use std::io::Read;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta { index: LogIndex(index), term: Term(2) }
    }

    fn stored(dir: &std::path::Path) -> (SnapshotMeta, Vec<u8>) {
        let mut file = SnapshotFile::open(&RealFs, dir).unwrap().expect("a snapshot file");
        let mut data = Vec::new();
        file.data_reader().unwrap().read_to_end(&mut data).unwrap();
        (file.meta(), data)
    }

    fn leftovers(dir: &std::path::Path) -> Vec<String> {
        let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        names.filter(|n| n.ends_with(".tmp")).collect()
    }

    /// Waits for the thread's outcome.
    fn written(t: &mut Taking) -> Written {
        loop {
            if let Some(w) = t.poll() {
                return w;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// A message asking for `len` bytes at `offset` of the snapshot `meta`,
    /// as the core hands it over (`Output::SendSnapshotChunk`), data empty.
    fn chunk_request(meta: SnapshotMeta, offset: u64) -> Message {
        let chunk = InstallSnapshot {
            index: meta.index,
            snapshot_term: meta.term,
            offset,
            total_len: 0,
            data: Bytes::default(),
            checksum: 0,
            membership: Membership::with_voters([NodeId(1)]).into(),
            round: 0,
        };
        Message { term: Term(3), body: raft_core::Body::InstallSnapshot(chunk) }
    }

    /// Snapshot `meta` received whole in one chunk of `data`.
    fn whole_chunk(meta: SnapshotMeta, data: &[u8], membership: &Membership) -> InstallSnapshot {
        InstallSnapshot {
            index: meta.index,
            snapshot_term: meta.term,
            offset: 0,
            total_len: data.len() as u64,
            data: Bytes::from(data.to_vec()),
            checksum: crc32fast::hash(data),
            membership: membership.clone().into(),
            round: 0,
        }
    }

    fn chunk_data(message: &Message) -> &[u8] {
        match &message.body {
            raft_core::Body::InstallSnapshot(chunk) => &chunk.data,
            other => panic!("not a snapshot chunk: {other:?}"),
        }
    }

    #[test]
    fn chunks_are_read_from_the_snapshot_they_name_also_after_a_received_one_replaced_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
        let mut store = SnapshotStore::new(Arc::new(RealFs), dir.path().to_path_buf(), None);
        let ours = b"our own state at 10";
        let writer: SnapshotWriter = Box::new(move |out| out.write_all(ours));
        let mut t = store.start_take(writer, meta(10), &m).unwrap();
        let (sealed, _) = written(&mut t).unwrap();
        assert!(store.finish_take(sealed).unwrap());

        // The store opens the snapshot file for the first chunk and keeps it.
        let mut request = chunk_request(meta(10), 4);
        assert!(store.fill_chunk(&mut request, 9));
        assert_eq!(chunk_data(&request), b"own state");

        // This node follows another leader for a while and installs its
        // snapshot: a later chunk must come from that file, not the one
        // held open, and a chunk of the old snapshot is dropped.
        let theirs = b"a leader's state at 30";
        let received = whole_chunk(meta(30), theirs, &m);
        store.save_chunk(&received).unwrap();
        store.install(meta(30), None).unwrap();
        let mut request = chunk_request(meta(30), 0);
        assert!(store.fill_chunk(&mut request, theirs.len() as u64), "the installed snapshot's chunk was dropped");
        assert_eq!(chunk_data(&request), theirs);
        let mut stale = chunk_request(meta(10), 0);
        assert!(!store.fill_chunk(&mut stale, 4), "a chunk of a replaced snapshot was sent");
        assert_eq!(chunk_data(&stale), b"");

        // Bytes past the end of the data are no chunk: the message is
        // dropped (the core never asks for them; a request that does must
        // not hang the node, nor go out short).
        let end = theirs.len() as u64;
        for (offset, len) in [(end, 1), (end + 5, 10), (end - 2, 5)] {
            let mut request = chunk_request(meta(30), offset);
            assert!(!store.fill_chunk(&mut request, len), "{len} bytes at {offset} of {end}");
        }
    }

    /// A state machine that is its snapshot's bytes.
    #[derive(Default)]
    struct Blob(Vec<u8>);

    impl StateMachine for Blob {
        type Command = u64;
        type Output = ();

        fn apply(&mut self, _: LogIndex, _: u64) {}

        fn skip(&mut self, _: LogIndex) {}

        fn snapshot(&self) -> Vec<u8> {
            self.0.clone()
        }

        fn restore(&mut self, snapshot: &[u8]) -> Result<(), raft_core::codec::DecodeError> {
            self.0 = snapshot.to_vec();
            Ok(())
        }

        fn last_applied(&self) -> LogIndex {
            LogIndex(0)
        }
    }

    #[test]
    fn a_restore_reads_only_the_snapshot_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let m = Membership::with_voters([NodeId(1)]);
        let fs: Arc<dyn Fs> = Arc::new(RealFs);
        let mut w = SnapshotFileWriter::create(fs.clone(), dir.path(), meta(20), &m).unwrap();
        w.write_data(b"state at 20").unwrap();
        w.finish().unwrap();
        let mut sm = Blob::default();
        SnapshotStore::new(fs.clone(), dir.path().to_path_buf(), Some(meta(20))).restore(&mut sm, meta(20)).unwrap();
        assert_eq!(sm.0, b"state at 20");

        // A store whose idea of the snapshot in place is stale (a take whose
        // rename went through but whose directory sync then failed leaves
        // the new file under the old `in_place`, say) refuses, and the state
        // machine keeps its state: another snapshot's data restored under
        // this one's index would silently diverge from the cluster.
        let mut sm = Blob(b"old state".to_vec());
        let mut store = SnapshotStore::new(fs, dir.path().to_path_buf(), Some(meta(10)));
        let err = store.restore(&mut sm, meta(10)).unwrap_err();
        assert!(err.contains("not"), "{err}");
        assert_eq!(sm.0, b"old state");
    }

    #[test]
    fn a_snapshot_written_on_its_own_thread_goes_in_place_unless_a_newer_one_arrived() {
        let dir = tempfile::tempdir().unwrap();
        let m = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
        let mut store = SnapshotStore::new(Arc::new(RealFs), dir.path().to_path_buf(), None);

        // Written on its own thread, then put in place.
        let (gate, opened) = mpsc::channel::<()>();
        let writer: SnapshotWriter = Box::new(move |out| {
            opened.recv().ok();
            out.write_all(b"state at 10")
        });
        let mut t = store.start_take(writer, meta(10), &m).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(t.poll().is_none(), "done before its writer wrote");
        gate.send(()).unwrap();
        let (sealed, digest) = written(&mut t).unwrap();
        assert_eq!(digest, SnapshotDigest { len: 11, checksum: crc32fast::hash(b"state at 10") });
        assert!(store.finish_take(sealed).unwrap());
        assert_eq!(stored(dir.path()), (meta(10), b"state at 10".to_vec()));

        // A later one goes in place over it.
        let writer: SnapshotWriter = Box::new(|out| out.write_all(b"state at 15"));
        let mut t = store.start_take(writer, meta(15), &m).unwrap();
        let (sealed, _) = written(&mut t).unwrap();
        assert!(store.finish_take(sealed).unwrap(), "a newer snapshot was discarded");
        assert_eq!(stored(dir.path()), (meta(15), b"state at 15".to_vec()));

        // A snapshot received while another is written wins if it is newer:
        // the one written meanwhile is removed, not renamed over it.
        let writer: SnapshotWriter = Box::new(|out| out.write_all(b"state at 20"));
        let mut t = store.start_take(writer, meta(20), &m).unwrap();
        let data = b"leader's state at 30";
        let chunk = whole_chunk(meta(30), data, &m);
        store.save_chunk(&chunk).unwrap();
        store.install(meta(30), None).unwrap();
        let (sealed, _) = written(&mut t).unwrap();
        assert!(!store.finish_take(sealed).unwrap(), "an older snapshot replaced a newer one");
        assert_eq!(stored(dir.path()), (meta(30), data.to_vec()));
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());

        // Dropped before it is done (the node stops): it waits for the
        // thread and leaves nothing behind.
        let writer: SnapshotWriter = Box::new(|out| out.write_all(b"state at 40"));
        drop(store.start_take(writer, meta(40), &m).unwrap());
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
        assert_eq!(stored(dir.path()).0, meta(30));
    }
}
