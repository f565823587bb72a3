//! The key-value store: a map, client sessions, and its snapshot format.

use super::command::{KvCommand, KvError, KvOp, KvOutput};
use crate::state_machine::StateMachine;
use raft_core::LogIndex;
use raft_core::codec::{self, DecodeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// First bytes of every snapshot; the last two name the format version.
const SNAPSHOT_MAGIC: &[u8; 8] = b"raftkv01";

/// What the store remembers about one client (see [`KvCommand`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    last_seq: u64,
    last_output: KvOutput,
}

/// The first frame of a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    last_applied: LogIndex,
    sessions: u64,
    keys: u64,
}

/// The replicated key-value map with exactly-once client sessions. Pure: no
/// I/O, no clock; every replica fed the same entries holds equal state.
///
/// The session table keeps one record per client ever seen (no expiry yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<u64, Session>,
    last_applied: LogIndex,
}

impl KvStore {
    /// An empty store that has applied nothing.
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// Applies a decoded command committed at `index` and sets
    /// `last_applied` to `index`, following the session rules of
    /// [`KvCommand`]. `index` must be above [`last_applied`](Self::last_applied);
    /// otherwise nothing changes and [`KvError::AlreadyApplied`] is returned.
    pub fn apply_command(&mut self, index: LogIndex, cmd: &KvCommand) -> Result<KvOutput, KvError> {
        if index <= self.last_applied {
            return Err(KvError::AlreadyApplied { index, last_applied: self.last_applied });
        }
        self.last_applied = index;
        let last_seq = self.sessions.get(&cmd.client).map_or(0, |s| s.last_seq);
        if cmd.seq <= last_seq || cmd.seq == 0 {
            return match self.sessions.get(&cmd.client) {
                Some(s) if s.last_seq == cmd.seq => Ok(s.last_output.clone()),
                _ => Err(KvError::Stale { client: cmd.client, seq: cmd.seq, last_seq }),
            };
        }
        let output = self.execute(&cmd.op);
        self.sessions.insert(cmd.client, Session { last_seq: cmd.seq, last_output: output.clone() });
        Ok(output)
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
    /// give equal bytes. Format: the 8-byte magic `raftkv01`, then frames of
    /// `len: u32 LE | value` (codec encoding): a header, the sessions in
    /// client order, the pairs in key order. Each frame is decoded on its own,
    /// so a store may exceed the codec's single-value limit.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = SNAPSHOT_MAGIC.to_vec();
        let header = SnapshotHeader {
            last_applied: self.last_applied,
            sessions: self.sessions.len() as u64,
            keys: self.data.len() as u64,
        };
        push_frame(&mut out, &header);
        for s in &self.sessions {
            push_frame(&mut out, &s);
        }
        for kv in &self.data {
            push_frame(&mut out, &kv);
        }
        out
    }

    /// Rebuilds a store from [`snapshot`](Self::snapshot) bytes. Never
    /// panics; any defect (bad magic, truncated or extra bytes, unsorted or
    /// duplicate keys) is an error.
    pub fn restore(bytes: &[u8]) -> Result<KvStore, DecodeError> {
        let rest = bytes.strip_prefix(SNAPSHOT_MAGIC).ok_or_else(|| malformed("not a key-value snapshot"))?;
        let mut frames = Frames(rest);
        let header: SnapshotHeader = frames.next()?;
        let mut store = KvStore { last_applied: header.last_applied, ..KvStore::default() };
        for _ in 0..header.sessions {
            let (client, session): (u64, Session) = frames.next()?;
            if store.sessions.last_key_value().is_some_and(|(last, _)| *last >= client) {
                return Err(malformed("sessions out of order"));
            }
            store.sessions.insert(client, session);
        }
        for _ in 0..header.keys {
            let (key, value): (String, String) = frames.next()?;
            if store.data.last_key_value().is_some_and(|(last, _)| *last >= key) {
                return Err(malformed("keys out of order"));
            }
            store.data.insert(key, value);
        }
        if !frames.0.is_empty() {
            return Err(DecodeError::TrailingBytes { extra: frames.0.len() });
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

    fn snapshot(&self) -> Vec<u8> {
        KvStore::snapshot(self)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError> {
        *self = KvStore::restore(snapshot)?;
        Ok(())
    }

    fn last_applied(&self) -> LogIndex {
        self.last_applied
    }
}

fn malformed(why: &str) -> DecodeError {
    DecodeError::Malformed(why.to_owned())
}

fn push_frame<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    // Headers, sessions and string pairs always encode (see `encode_command`).
    let bytes = codec::encode_value(value).unwrap_or_default();
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&bytes);
}

/// Reads `len: u32 LE | value` frames off the front of a slice.
struct Frames<'a>(&'a [u8]);

impl<'a> Frames<'a> {
    fn next<T: Deserialize<'a>>(&mut self) -> Result<T, DecodeError> {
        let (len, rest) = self.0.split_first_chunk::<4>().ok_or_else(|| malformed("truncated frame length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(malformed("frame longer than the snapshot"));
        }
        let (frame, rest) = rest.split_at(len);
        self.0 = rest;
        codec::decode_value(frame)
    }
}
