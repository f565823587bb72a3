//! The key-value store: a map, client sessions, and its snapshot format.

use super::command::{KvCommand, KvError, KvOp, KvOutput};
use super::entry::{AnyEntry, KvEntry, decode_entry};
use super::session::{SEQ_WINDOW, Session, SessionLimits, SessionTable};
use crate::state_machine::{RestoreError, StateMachine};
use raft_core::codec::{self, DecodeError};
use raft_core::{Entry, LogIndex, Payload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read as _};

/// First bytes of a snapshot of format 1 (sessions without time; still read).
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"raftkv01";
/// First bytes of every snapshot written now; the last two name the format version.
const SNAPSHOT_MAGIC: &[u8; 8] = b"raftkv02";

/// A session as format 1 stored it.
#[derive(Serialize, Deserialize)]
struct SessionV1 {
    last_seq: u64,
    last_output: KvOutput,
}

/// The first frame of a format-1 snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotHeaderV1 {
    last_applied: LogIndex,
    sessions: u64,
    keys: u64,
}

/// The first frame of a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    last_applied: LogIndex,
    now_ms: u64,
    limits: SessionLimits,
    sessions: u64,
    keys: u64,
}

/// The replicated key-value map with exactly-once client sessions. Pure: no
/// I/O, no clock; every replica fed the same entries holds equal state.
///
/// # Sessions
///
/// A client registers a session through the log ([`KvEntry::Register`]; its
/// id is the registration's index) and numbers its commands in it (see
/// [`KvCommand`] for the sequence rules, which are the same). Sessions
/// expire by log time: the leader's timestamps carried in entries, never a
/// replica's clock. A session idle for the timeout of
/// [`session_limits`](Self::session_limits) expires, and when the table
/// exceeds its byte bound the sessions idle the longest expire first. A
/// command in an unknown or expired session is refused with
/// [`KvError::UnknownSession`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    sessions: SessionTable,
    last_applied: LogIndex,
}

impl KvStore {
    /// An empty store that has applied nothing.
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// Applies a decoded format-1 command committed at `index` and sets
    /// `last_applied` to `index`, following the session rules of
    /// [`KvCommand`]. `index` must be above [`last_applied`](Self::last_applied);
    /// otherwise nothing changes and [`KvError::AlreadyApplied`] is returned.
    pub fn apply_command(&mut self, index: LogIndex, cmd: &KvCommand) -> Result<KvOutput, KvError> {
        self.advance_to(index)?;
        let last_seq = self.sessions.get(cmd.client).map_or(0, |s| s.last_seq);
        self.apply_in_session(cmd.client, last_seq, cmd.seq, &cmd.op)
    }

    /// Applies a decoded format-2 entry committed at `index`; see
    /// [`apply_command`](Self::apply_command) and the type's docs.
    pub fn apply_session_entry(&mut self, index: LogIndex, entry: &KvEntry) -> Result<KvOutput, KvError> {
        self.advance_to(index)?;
        match entry {
            KvEntry::Register { time_ms, limits } => {
                self.sessions.advance(*time_ms);
                self.sessions.set_limits(*limits);
                self.sessions.open(index.0);
                Ok(KvOutput::Registered { session: index.0 })
            }
            KvEntry::Command { session, seq, time_ms, op } => {
                self.sessions.advance(*time_ms);
                let Some(last_seq) = self.sessions.get(*session).map(|s| s.last_seq) else {
                    return Err(KvError::UnknownSession { session: *session });
                };
                if *seq > last_seq.saturating_add(SEQ_WINDOW) {
                    return Err(KvError::SeqOutOfWindow { session: *session, seq: *seq, last_seq });
                }
                self.apply_in_session(*session, last_seq, *seq, op)
            }
        }
    }

    fn advance_to(&mut self, index: LogIndex) -> Result<(), KvError> {
        if index <= self.last_applied {
            return Err(KvError::AlreadyApplied { index, last_applied: self.last_applied });
        }
        self.last_applied = index;
        Ok(())
    }

    /// The session rules of [`KvCommand`], for `session` whose last applied
    /// sequence number is `last_seq` (0 if it has none).
    fn apply_in_session(&mut self, session: u64, last_seq: u64, seq: u64, op: &KvOp) -> Result<KvOutput, KvError> {
        let stale = KvError::Stale { client: session, seq, last_seq };
        if let KvOp::Get { .. } = op {
            if seq < last_seq || seq == 0 {
                return Err(stale);
            }
            self.sessions.touch(session);
            return Ok(self.execute(op));
        }
        if seq <= last_seq || seq == 0 {
            return match self.sessions.get(session) {
                Some(Session { last_seq, last_output: Some(out), .. }) if *last_seq == seq => Ok(out.clone()),
                _ => Err(stale),
            };
        }
        let output = self.execute(op);
        self.sessions.record(session, seq, Some(output.clone()));
        Ok(output)
    }

    /// What a leader can answer to command `seq` of registered session
    /// `session` without proposing anything, from the state applied so far:
    /// `Some` answer for a command at or below the session's applied
    /// sequence number (its kept output, or [`KvError::Stale`]), for a
    /// sequence number out of the window, and for a session unknown here or
    /// idle past the timeout at `now_ms` (the caller's clock, or log time if
    /// later; the session may have been registered after this replica's
    /// applied state: confirm an unknown session on an up-to-date replica).
    /// `None`: the command must go through the log. Reads (`Get`) are
    /// always `None` for a known session.
    pub fn answer_from_session(
        &self,
        session: u64,
        seq: u64,
        op: &KvOp,
        now_ms: u64,
    ) -> Option<Result<KvOutput, KvError>> {
        let now_ms = now_ms.max(self.sessions.now_ms());
        let Some(s) = self.sessions.get(session).filter(|s| !self.sessions.is_expired(s, now_ms)) else {
            return Some(Err(KvError::UnknownSession { session }));
        };
        if seq > s.last_seq.saturating_add(SEQ_WINDOW) {
            return Some(Err(KvError::SeqOutOfWindow { session, seq, last_seq: s.last_seq }));
        }
        let stale = KvError::Stale { client: session, seq, last_seq: s.last_seq };
        match op {
            KvOp::Get { .. } if seq < s.last_seq || seq == 0 => Some(Err(stale)),
            KvOp::Get { .. } => None,
            _ if seq == 0 || seq < s.last_seq => Some(Err(stale)),
            _ if seq == s.last_seq => Some(s.last_output.clone().ok_or(stale)),
            _ => None,
        }
    }

    /// Whether session `session` is open (registered and not expired in log time).
    pub fn has_session(&self, session: u64) -> bool {
        self.sessions.get(session).is_some()
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session table's size as its bound counts it: a fixed
    /// [`SESSION_OVERHEAD_BYTES`](super::SESSION_OVERHEAD_BYTES) per session
    /// plus the values its kept output holds.
    pub fn session_bytes(&self) -> u64 {
        self.sessions.bytes()
    }

    /// The session limits in force (those of the latest registration applied).
    pub fn session_limits(&self) -> SessionLimits {
        self.sessions.limits()
    }

    /// Log time: the latest leader timestamp applied, in ms since the Unix epoch.
    pub fn log_time_ms(&self) -> u64 {
        self.sessions.now_ms()
    }

    fn execute(&mut self, op: &KvOp) -> KvOutput {
        match op {
            KvOp::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                KvOutput::Put
            }
            KvOp::Get { key } => KvOutput::Get(self.data.get(key).cloned()),
            KvOp::Delete { key } => KvOutput::Delete { existed: self.data.remove(key).is_some() },
            KvOp::Cas { key, expected, new } => {
                if self.data.get(key) == expected.as_ref() {
                    self.data.insert(key.clone(), new.clone());
                    KvOutput::Cas { swapped: true, current: Some(new.clone()) }
                } else {
                    KvOutput::Cas { swapped: false, current: self.data.get(key).cloned() }
                }
            }
        }
    }

    /// Reads `key` from this replica's state, without going through the log:
    /// possibly stale (a follower, or a deposed leader). Use [`KvOp::Get`]
    /// for a linearizable read.
    pub fn get_local(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if no key is stored.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The index of the last applied entry (0: none).
    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    /// Serializes the map, the session table and `last_applied`. Equal stores
    /// give equal bytes. Format 2: the 8-byte magic `raftkv02`, then frames of
    /// `len: u32 LE | value` (codec encoding): a header (last applied index,
    /// log time, session limits, counts), the sessions in id order, the pairs
    /// in key order. Each frame is decoded on its own, so a store may exceed
    /// the codec's single-value limit. [`restore`](Self::restore) also reads
    /// format 1 (`raftkv01`: no time or limits; sessions kept every output).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_snapshot(&mut out);
        out
    }

    /// Streams the bytes of [`snapshot`](Self::snapshot) into `out` one
    /// frame at a time: besides `out`'s own buffering, it holds one encoded
    /// frame (one session or one pair) at a time.
    pub fn write_snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(SNAPSHOT_MAGIC)?;
        let header = SnapshotHeader {
            last_applied: self.last_applied,
            now_ms: self.sessions.now_ms(),
            limits: self.sessions.limits(),
            sessions: self.sessions.len() as u64,
            keys: self.data.len() as u64,
        };
        write_frame(out, &header)?;
        for s in self.sessions.iter() {
            write_frame(out, &s)?;
        }
        for kv in &self.data {
            write_frame(out, &kv)?;
        }
        Ok(())
    }

    /// Rebuilds a store from [`snapshot`](Self::snapshot) bytes (format 2 or
    /// 1). Never panics; any defect (bad magic, truncated or extra bytes,
    /// unsorted or duplicate keys) is an error.
    pub fn restore(mut bytes: &[u8]) -> Result<KvStore, DecodeError> {
        KvStore::restore_from(&mut bytes).map_err(|e| match e {
            RestoreError::Decode(e) => e,
            // Reading a slice fails only at its end, which is a Decode error.
            other => malformed(&other.to_string()),
        })
    }

    /// [`restore`](Self::restore) from a stream, read to its end one frame at
    /// a time: besides the store being built, it holds one frame at a time,
    /// and allocates for a frame only as its bytes arrive.
    pub fn restore_from(input: &mut dyn io::Read) -> Result<KvStore, RestoreError> {
        let mut magic = [0u8; 8];
        let got = read_full(input, &mut magic)?;
        let v1 = match &magic {
            m if got == magic.len() && m == SNAPSHOT_MAGIC => false,
            m if got == magic.len() && m == SNAPSHOT_MAGIC_V1 => true,
            _ => return Err(RestoreError::Decode(malformed("not a key-value snapshot"))),
        };
        let mut frames = Frames { input, buf: Vec::new() };
        let (mut store, sessions, keys) = if v1 {
            let h: SnapshotHeaderV1 = frames.next()?;
            (KvStore { last_applied: h.last_applied, ..KvStore::default() }, h.sessions, h.keys)
        } else {
            let h: SnapshotHeader = frames.next()?;
            let store = KvStore {
                last_applied: h.last_applied,
                sessions: SessionTable::new(h.limits, h.now_ms),
                data: BTreeMap::new(),
            };
            (store, h.sessions, h.keys)
        };
        let mut last_id = None;
        for _ in 0..sessions {
            let (id, session) = if v1 {
                let (id, s): (u64, SessionV1) = frames.next()?;
                let kept = (!matches!(s.last_output, KvOutput::Get(_))).then_some(s.last_output);
                (id, Session { last_seq: s.last_seq, last_output: kept, last_active_ms: 0 })
            } else {
                frames.next::<(u64, Session)>()?
            };
            if last_id.is_some_and(|last| last >= id) {
                return Err(RestoreError::Decode(malformed("sessions out of order")));
            }
            last_id = Some(id);
            store.sessions.restore(id, session);
        }
        for _ in 0..keys {
            let (key, value): (String, String) = frames.next()?;
            if store.data.last_key_value().is_some_and(|(last, _)| *last >= key) {
                return Err(RestoreError::Decode(malformed("keys out of order")));
            }
            store.data.insert(key, value);
        }
        let extra = io::copy(frames.input, &mut io::sink()).map_err(RestoreError::Io)?;
        if extra > 0 {
            let extra = usize::try_from(extra).unwrap_or(usize::MAX);
            return Err(RestoreError::Decode(DecodeError::TrailingBytes { extra }));
        }
        Ok(store)
    }
}

impl StateMachine for KvStore {
    type Command = KvCommand;
    type Output = Result<KvOutput, KvError>;

    fn apply(&mut self, index: LogIndex, command: KvCommand) -> Self::Output {
        self.apply_command(index, &command)
    }

    fn skip(&mut self, index: LogIndex) {
        self.last_applied = index;
    }

    /// Undecodable bytes advance `last_applied` and yield [`KvError::Malformed`].
    fn undecodable(&mut self, index: LogIndex, error: DecodeError) -> Option<Self::Output> {
        self.last_applied = index;
        Some(Err(KvError::Malformed { index, reason: error.to_string() }))
    }

    /// Decodes entries of either format ([`decode_entry`]): a
    /// [`KvCommand`] goes to [`apply`](StateMachine::apply), a [`KvEntry`]
    /// to [`KvStore::apply_session_entry`]; the rest as the trait's version.
    fn apply_entry(&mut self, entry: &Entry) -> Option<Self::Output> {
        if entry.index <= self.last_applied {
            return None;
        }
        match &entry.payload {
            Payload::Command(bytes) => match decode_entry(bytes) {
                Ok(AnyEntry::Legacy(cmd)) => Some(self.apply_command(entry.index, &cmd)),
                Ok(AnyEntry::V2(e)) => Some(self.apply_session_entry(entry.index, &e)),
                Err(e) => self.undecodable(entry.index, e),
            },
            _ => {
                self.skip(entry.index);
                None
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        KvStore::snapshot(self)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError> {
        *self = KvStore::restore(snapshot)?;
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        KvStore::write_snapshot(self, out)
    }

    fn snapshot_writer(&self) -> Option<crate::state_machine::SnapshotWriter> {
        let copy = self.clone();
        Some(Box::new(move |out: &mut dyn io::Write| copy.write_snapshot(out)))
    }

    fn restore_from(&mut self, input: &mut dyn io::Read) -> Result<(), RestoreError> {
        *self = KvStore::restore_from(input)?;
        Ok(())
    }

    fn last_applied(&self) -> LogIndex {
        self.last_applied
    }
}

fn malformed(why: &str) -> DecodeError {
    DecodeError::Malformed(why.to_owned())
}

fn write_frame<T: Serialize>(out: &mut dyn io::Write, value: &T) -> io::Result<()> {
    // Headers, sessions and string pairs always encode (see `encode_command`).
    let bytes = codec::encode_value(value).unwrap_or_default();
    out.write_all(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes())?;
    out.write_all(&bytes)
}

/// Fills as much of `buf` as `input` holds; the count read (short only at its end).
fn read_full(input: &mut dyn io::Read, buf: &mut [u8]) -> Result<usize, RestoreError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RestoreError::Io(e)),
        }
    }
    Ok(got)
}

/// Reads `len: u32 LE | value` frames off a stream, into one reused buffer.
struct Frames<'a> {
    input: &'a mut dyn io::Read,
    buf: Vec<u8>,
}

impl Frames<'_> {
    fn next<T: DeserializeOwned>(&mut self) -> Result<T, RestoreError> {
        let mut len = [0u8; 4];
        if read_full(self.input, &mut len)? < len.len() {
            return Err(RestoreError::Decode(malformed("truncated frame length")));
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > codec::MAX_DECODE_BYTES {
            return Err(RestoreError::Decode(DecodeError::TooLarge { len }));
        }
        // Grows only as bytes arrive: a damaged length allocates nothing extra.
        self.buf.clear();
        let read = (&mut *self.input).take(len as u64).read_to_end(&mut self.buf).map_err(RestoreError::Io)?;
        if read < len {
            return Err(RestoreError::Decode(malformed("frame longer than the snapshot")));
        }
        codec::decode_value(&self.buf).map_err(RestoreError::Decode)
    }
}
