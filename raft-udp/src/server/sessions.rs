//! What a leader does with one client request once it has decided to act:
//! answer it from the applied session table, or propose it.

use super::clients::KvResult;
use crate::packet::ClientOp;
use raft_host::kv::{KvEntry, encode_entry};
use raft_host::{KvError, KvOp, KvOutput, KvStore, SessionLimits};
use raft_net::Handle;
use std::net::SocketAddr;

/// What a request in flight is keyed by: one command per session, one
/// proposal per registration id, one read per (nonce, address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Session(u64),
    Register(u64),
    Read(u64, SocketAddr),
}

/// The asynchronous part of a request.
#[derive(Debug)]
pub(crate) enum Work {
    /// Propose a registration.
    Register(Vec<u8>),
    /// Answer from the session if the applied state can; otherwise propose.
    Command { session: u64, seq: u64, op: KvOp, entry: Vec<u8>, now_ms: u64 },
    /// A ReadIndex read.
    Read(String),
}

/// Milliseconds since the Unix epoch on this node's clock: the leader's
/// timestamp written into entries (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The work for a request of `session`/`seq` (as keyed by `key`).
pub(crate) fn work(key: Key, session: u64, seq: u64, op: ClientOp, limits: SessionLimits) -> Work {
    let time_ms = now_ms();
    match op {
        ClientOp::Register { .. } => Work::Register(encode_entry(&KvEntry::Register { time_ms, limits })),
        ClientOp::Kv(KvOp::Get { key: k }) if matches!(key, Key::Read(..)) => Work::Read(k),
        ClientOp::Kv(op) => {
            let entry = encode_entry(&KvEntry::Command { session, seq, time_ms, op: op.clone() });
            Work::Command { session, seq, op, entry, now_ms: time_ms }
        }
    }
}

impl Work {
    /// The bytes it would add to the log.
    pub(crate) fn entry_len(&self) -> usize {
        match self {
            Work::Register(e) | Work::Command { entry: e, .. } => e.len(),
            Work::Read(_) => 0,
        }
    }

    pub(crate) async fn run(self, handle: &Handle<KvStore>) -> KvResult {
        match self {
            Work::Register(entry) => handle.propose_bytes(entry).await,
            Work::Read(key) => {
                let get = move |kv: &KvStore| KvOutput::Get(kv.get_local(&key).map(str::to_owned));
                handle.read(get).await.map(Ok)
            }
            Work::Command { session, seq, op, entry, now_ms } => {
                let check = {
                    let op = op.clone();
                    move |kv: &KvStore| kv.answer_from_session(session, seq, &op, now_ms)
                };
                // Proposed unless the session answers it, in one trip to
                // the node's task.
                let entry = raft_core::Bytes::from(entry);
                match handle.propose_unless(check.clone(), entry.clone()).await? {
                    // Unknown here: maybe registered beyond what this node
                    // applied (or, had it been proposed, where it was
                    // applied). A linearizable read settles it.
                    Err(KvError::UnknownSession { .. }) => match handle.read(check).await? {
                        Some(answer) => Ok(answer),
                        None => handle.propose_bytes(entry).await,
                    },
                    answer => Ok(answer),
                }
            }
        }
    }
}
