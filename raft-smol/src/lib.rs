//! raft-smol: a replicated state machine on smol / async-io, with no tokio
//! anywhere in its dependency graph.
//!
//! [`Node::start`] runs one member of a Raft cluster: the sans-IO core
//! ([`raft_core`]) and a [`StateMachine`](raft_host::StateMachine) driven by
//! one task, a durable log ([`raft_host::DiskLog`]) written with group
//! commit on a dedicated thread, and authenticated TCP links to the other
//! members. The returned [`Handle`] proposes commands, reads, reports
//! [`Status`], follows role changes and shuts the node down. Tasks run on
//! smol's global executor (`smol::spawn`; its thread count follows the
//! `SMOL_THREADS` environment variable).
//!
//! The API, behaviour and wire format are raft-tokio's: everything but the
//! runtime glue is one source tree (raft-tokio's `src/common`, compiled into
//! this crate by `#[path]`), and a cluster may mix raft-tokio and raft-smol
//! nodes. This crate's own code is its `rt` module: smol's channels, tasks,
//! blocking pool, timers and sockets under the names `common` expects. (So
//! the crate builds only inside this workspace: `cargo package` would leave
//! the shared tree out. The examples and API tests are shared the same way,
//! from `examples/support/` and raft-tokio's `tests/shared/`.)
//!
//! # Example: a one-node key-value store
//!
//! ```
//! use raft_core::{Config, NodeId};
//! use raft_host::kv::{KvCommand, KvOp, KvOutput, encode_command};
//! use raft_host::{ClusterKey, KvStore};
//! use raft_smol::{Node, NodeConfig};
//!
//! smol::block_on(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let raft = Config::new(NodeId(1), [NodeId(1)]);
//!     let key = ClusterKey::from_bytes([7; 32]);
//!     let config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key);
//!     let node = Node::start(config, KvStore::new()).await.unwrap();
//!
//!     node.role_watch().wait_for(|r| r.leader.is_some()).await;
//!     let put = KvCommand { client: 1, seq: 1, op: KvOp::put("x", "1") };
//!     assert_eq!(node.propose(encode_command(&put)).await.unwrap(), Ok(KvOutput::Put));
//!     let get = KvCommand { client: 1, seq: 2, op: KvOp::get("x") };
//!     assert_eq!(node.read(encode_command(&get)).await.unwrap(), Ok(KvOutput::get(Some("1"))));
//!
//!     let tasks = node.task_monitor();
//!     node.shutdown().await;
//!     assert_eq!(tasks.running(), 0);
//! });
//! ```
//!
//! # Architecture
//!
//! As in raft-tokio: one task owns the node and the timer (a wake-up is
//! checked against the clock before the core's timer fires); the disk
//! thread makes writes durable with group commit; each node dials every
//! peer for its own outgoing direction (one connection per ordered pair),
//! sending `len: u32 LE | sealed message` frames
//! ([`raft_host::transport_frame`]) from a per-peer writer with a bounded,
//! two-lane, drop-oldest queue, reconnecting with capped exponential backoff
//! and jitter; readers refuse an over-long frame before allocating.
//! Shutdown stops every task and joins the disk thread ([`TaskMonitor`]).

#![warn(missing_docs)]

#[path = "../../raft-tokio/src/common/mod.rs"]
mod common;
mod rt;

pub use common::api::{NodeConfig, PeerStatus, ProposeError, RoleInfo, RoleWatch, StartError, Status, TaskMonitor};
pub use common::handle::Handle;
pub use common::node::Node;
pub use raft_core;
pub use raft_host;
