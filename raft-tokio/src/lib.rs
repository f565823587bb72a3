//! raft-tokio: a replicated state machine on tokio.
//!
//! [`Node::start`] runs one member of a Raft cluster: the sans-IO core
//! ([`raft_core`]) and a [`StateMachine`](raft_host::StateMachine) driven by
//! one task, a durable log ([`raft_host::DiskLog`]) written with group
//! commit on a dedicated thread, and authenticated TCP links to the other
//! members. The returned [`Handle`] proposes commands, reads, reports
//! [`Status`], follows role changes and shuts the node down.
//!
//! Tasks are spawned on the current tokio runtime ([`Node::start`] must be
//! called inside one, with I/O and time enabled); opening the data directory
//! runs on its blocking pool.
//!
//! The API reads the same in `raft-smol`, and the two crates speak the same
//! frames, so a cluster may mix them. Both are one implementation: the
//! runtime-independent code lives in `src/common` (which raft-smol compiles
//! in by `#[path]`), and each crate adds only its `rt` module, the runtime
//! glue (channels, tasks, blocking pool, timers, sockets) that `common` is
//! written against. The examples and API tests are shared the same way
//! (raft-smol's `examples/support/`, this crate's `tests/shared/`).
//!
//! # Example: a one-node key-value store
//!
//! ```
//! use raft_core::{Config, NodeId};
//! use raft_host::kv::{KvCommand, KvOp, KvOutput, encode_command};
//! use raft_host::{ClusterKey, KvStore};
//! use raft_tokio::{Node, NodeConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let raft = Config::new(NodeId(1), [NodeId(1)]);
//! let key = ClusterKey::from_bytes([7; 32]);
//! let config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key);
//! let node = Node::start(config, KvStore::new()).await.unwrap();
//!
//! node.role_watch().wait_for(|r| r.leader.is_some()).await;
//! let put = KvCommand { client: 1, seq: 1, op: KvOp::put("x", "1") };
//! assert_eq!(node.propose(encode_command(&put)).await.unwrap(), Ok(KvOutput::Put));
//! let get = KvCommand { client: 1, seq: 2, op: KvOp::get("x") };
//! assert_eq!(node.read(encode_command(&get)).await.unwrap(), Ok(KvOutput::get(Some("1"))));
//!
//! let tasks = node.task_monitor();
//! node.shutdown().await;
//! assert_eq!(tasks.running(), 0);
//! # }
//! ```
//!
//! # Architecture
//!
//! * **One task owns the node** (the host [`Driver`](raft_host::Driver)).
//!   It waits for the first of: a command from a handle, a message from a
//!   peer, a durable-write report, the core's timer (from `poll_timeout`;
//!   a wake-up is checked against the clock before the timer fires) or the
//!   stop signal; takes whatever else is ready too (so one flush covers a
//!   burst of proposals: one disk write, one AppendEntries), then drains the
//!   driver: writes go to the disk thread, messages to the peers' queues,
//!   outcomes to the proposers.
//! * **Disk**: [`raft_host::DiskThread`] writes and fsyncs on its own thread
//!   with group commit and reports durable tokens back over a channel.
//! * **Transport**: each node dials every peer for its own outgoing
//!   direction, so each ordered pair of members has one connection that
//!   carries frames one way (the reverse direction uses the peer's
//!   connection). Frames are `len: u32 LE | sealed message`
//!   ([`raft_host::transport_frame`]), authenticated with HMAC-SHA256 under
//!   the cluster key; the sender is what the frame proves, not the address.
//!   A length above the limit closes the connection before any allocation.
//!   Each peer has a writer task with a bounded two-lane queue (control
//!   before bulk, drop-oldest, drops counted) so heartbeats never wait
//!   behind a backlog; a lost connection is re-established lazily, with
//!   capped exponential backoff and deterministic per-link jitter. An
//!   accept task spawns one reader task per inbound connection.
//! * **Shutdown** closes a stop signal every task watches, tells waiting
//!   proposers their outcome is unknown, flushes and joins the disk thread,
//!   and returns once every task has ended ([`TaskMonitor`] counts them).

#![warn(missing_docs)]

mod common;
mod rt;

pub use common::api::{NodeConfig, PeerStatus, ProposeError, RoleInfo, RoleWatch, StartError, Status, TaskMonitor};
pub use common::handle::Handle;
pub use common::node::Node;
pub use raft_core;
pub use raft_host;
