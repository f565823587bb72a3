//! raft-smol: a replicated state machine on smol / async-io, with no tokio
//! anywhere in its dependency graph.
//!
//! [`Node::start`] runs one member of a Raft cluster: the sans-IO core
//! ([`raft_core`]) and a [`StateMachine`] driven by
//! one task, a durable log ([`raft_host::DiskLog`]) written with group
//! commit on a dedicated thread, and authenticated TCP links to the other
//! members. The returned [`Handle`] proposes commands, reads, reports
//! [`Status`], follows role changes and shuts the node down. Tasks run on
//! smol's global executor (`smol::spawn`; its thread count follows the
//! `SMOL_THREADS` environment variable).
//!
//! Everything but the runtime is [`raft_net`], re-exported here: this
//! crate is [`Smol`], raft-net's [`Runtime`](raft_net::Runtime) on smol,
//! and [`Node::start`] on it. The API, behaviour and wire format are
//! raft-tokio's, and a cluster may mix raft-tokio and raft-smol nodes. See
//! [`raft_net`] for the architecture.
//!
//! # Example: a one-node key-value store
//!
//! ```
//! use raft_core::{Config, NodeId};
//! use raft_host::kv::{KvCommand, KvOp, KvOutput};
//! use raft_host::secure::{Incarnation, KeyFile};
//! use raft_host::{ClusterKey, KvStore};
//! use raft_smol::{Node, NodeConfig};
//!
//! smol::block_on(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let raft = Config::new(NodeId(1), [NodeId(1)]);
//!     let key = KeyFile::new(ClusterKey::from_bytes([7; 32]), Incarnation::from_bytes([1; 16]));
//!     let config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key);
//!     let node = Node::start(config, KvStore::new()).await.unwrap();
//!
//!     node.role_watch().wait_for(|r| r.leader.is_some()).await;
//!     let put = KvCommand { client: 1, seq: 1, op: KvOp::put("x", "1") };
//!     assert_eq!(node.propose(&put).await.unwrap(), Ok(KvOutput::Put));
//!     // A linearizable read: a closure over the state machine.
//!     let x = node.read(|kv| kv.get_local("x").map(str::to_owned)).await.unwrap();
//!     assert_eq!(x.as_deref(), Some("1"));
//!
//!     let tasks = node.task_monitor();
//!     node.shutdown().await;
//!     assert_eq!(tasks.running(), 0);
//! });
//! ```

#![warn(missing_docs)]

mod rt;

pub use raft_net::prelude::*;
pub use rt::Smol;

use raft_host::StateMachine;

/// Starts nodes on smol. (A namespace: the running node is reached through
/// its [`Handle`].)
#[derive(Debug)]
pub struct Node(());

impl Node {
    /// Starts a node on smol's global executor; see [`raft_net::Node::start`].
    pub async fn start<S>(config: NodeConfig, state_machine: S) -> Result<Handle<S>, StartError>
    where
        S: StateMachine + Send + 'static,
        S::Output: Send + 'static,
    {
        raft_net::Node::start(Smol, config, state_machine).await
    }
}
