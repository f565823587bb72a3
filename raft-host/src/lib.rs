//! The I/O half every raft adapter shares.
//!
//! `raft-core` decides; the hosts (raft-tokio, raft-smol, raft-udp, the
//! simulator) act. What every host needs besides its runtime lives here:
//!
//! * [`storage`]: [`DiskLog`], a crash-safe durable log with the hard state
//!   and snapshot beside it, for `Output::Persist`;
//! * [`kv`]: [`KvStore`], the replicated key-value state machine with
//!   exactly-once client sessions, for `Output::Apply`;
//! * [`StateMachine`]: the interface between committed entries and an
//!   application;
//! * [`Engine`]: the one synchronous host engine every adapter runs — the
//!   node, its state machine, its disk thread and its waiting proposals,
//!   reaching the network through a [`Transport`]. Inside it, [`Driver`]
//!   executes the core's outputs in the contract's order (the only std code
//!   that drains the core) and [`DiskThread`] makes writes durable off the
//!   async executor with group commit;
//! * [`secure`]: transport protocol v2 between nodes (Noise sessions bound
//!   to the cluster incarnation and both node ids, with replay windows)
//!   and the key file; [`auth`]: the cluster key, and the HMAC-SHA256
//!   frames of the client protocol.
//!
//! # Durability promise
//!
//! After [`DiskLog::sync`] returns `Ok`, every write given to
//! [`DiskLog::write`] before it survives a crash, power loss or `kill -9`, so
//! a host may then call `Node::handle_persisted`. Each log segment records
//! how far it is durable (a synced watermark), so at start-up a torn write
//! (unacknowledged bytes beyond the watermark, cut short or reordered by the
//! crash) is cut off, while any damage at or below it stops start-up with
//! [`StorageError::Corrupt`] naming the file and byte offset, rather than
//! silently losing acknowledged data. [`DiskLog::repair`] then keeps the
//! log before the damage and marks the node `catching_up`, so that it does
//! not vote before it has caught up. The promise assumes only that the file
//! system honours `fsync`/`fdatasync`; crash tests run the log on a
//! simulated disk ([`storage::fs::SimFs`]) that loses everything else.
//!
//! ```
//! use raft_core::{Entry, LogIndex, NodeId, Payload, Term, Write};
//! use raft_host::{DiskLog, NodeMeta};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let me = NodeMeta::new(NodeId(1), 7);
//! let (mut log, recovered) = DiskLog::open(dir.path(), me).unwrap();
//! assert!(recovered.entries.is_empty());
//!
//! let mut write = Write::default();
//! write.entries.push(Entry { term: Term(1), index: LogIndex(1), payload: Payload::Noop });
//! log.write(&write).unwrap();
//! log.sync().unwrap(); // now durable: report the Persist's token to the node
//! drop(log);
//!
//! let (_log, recovered) = DiskLog::open(dir.path(), me).unwrap();
//! assert_eq!(recovered.entries.len(), 1);
//! ```

#![warn(missing_docs)]

pub mod auth;
mod clock;
pub mod disk_thread;
pub mod driver;
pub mod engine;
pub mod kv;
pub mod secure;
pub mod snapshot_store;
mod state_machine;
pub mod storage;

pub use auth::ClusterKey;
pub use clock::StdClock;
pub use disk_thread::DiskThread;
pub use driver::{Actions, Completion, Driver, Outcome, SnapshotsTaken, Ticket};
pub use engine::{Engine, Transport};
pub use kv::{KvCommand, KvError, KvOp, KvOutput, KvStore, SessionLimits};
pub use state_machine::{RestoreError, SnapshotWriter, StateMachine};
pub use storage::{DiskLog, DiskLogOptions, NodeMeta, Recovered, Repaired, StorageError, Watermark};
