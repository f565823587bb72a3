//! raft-net: a raft-core node as a set of async tasks, on any runtime.
//!
//! [`Node::start`] runs one member of a Raft cluster: the host engine
//! ([`raft_host::Engine`]: the sans-IO core, a
//! [`StateMachine`](raft_host::StateMachine), the durable log written with
//! group commit on its own thread) owned by one task, and authenticated TCP
//! links to the other members (or, with [`Node::start_udp`], sealed and
//! fragmented UDP datagrams: [`udp`]). The returned [`Handle`] proposes commands,
//! reads, reports [`Status`], follows role changes and shuts the node down.
//!
//! Nothing here names a runtime: the crate is written against one small
//! trait, [`Runtime`] (spawn, timers, blocking work, TCP and UDP sockets),
//! and runtime-neutral crates (`async-channel`, `futures-lite`). raft-tokio
//! and raft-smol each implement [`Runtime`] and re-export this API; a new
//! runtime plugs in the same way. A new transport plugs in beside the TCP
//! links (`src/net/`): a task that feeds authenticated `(from, message)`
//! pairs to the owning task, and a sender behind [`raft_host::Transport`].
//!
//! # Architecture
//!
//! * **One task owns the node** ([`raft_host::Engine`]). It waits for the
//!   first of: a command from a handle, a message from a peer, a
//!   durable-write report, the core's timer (from `poll_timeout`; a wake-up
//!   is checked against the clock before the timer fires) or the stop
//!   signal; takes whatever else is ready too (so one flush covers a burst
//!   of proposals: one disk write, one AppendEntries), then flushes the
//!   engine: writes go to the disk thread, messages to the peers' queues,
//!   outcomes to the proposers.
//! * **Disk**: [`raft_host::DiskThread`] writes and fsyncs on its own thread
//!   with group commit and reports durable tokens back over a channel.
//! * **Transport**: each node dials every peer for its own outgoing
//!   direction, so each ordered pair of members has one connection that
//!   carries frames one way. Each connection is a transport v2 session
//!   ([`raft_host::secure`]: a Noise handshake under the cluster key, bound
//!   to the cluster incarnation and both node ids, counters against
//!   replay), so the sender is what the session proves, not the address.
//!   Unauthenticated connections get fixed-size reads, a deadline and only
//!   the slots nobody authenticated holds; each peer keeps one
//!   authenticated connection (the newest), closed when idle.
//!   Each peer has a writer task with a bounded two-lane queue (control
//!   before bulk, drop-oldest, drops counted) so heartbeats never wait
//!   behind a backlog; a lost connection is re-established lazily, with
//!   capped exponential backoff and deterministic per-link jitter. An
//!   accept task spawns one reader task per inbound connection.
//! * **Shutdown** closes a stop signal every task watches, tells waiting
//!   proposers their outcome is unknown, flushes and joins the disk thread,
//!   and returns once every task has ended ([`TaskMonitor`] counts them).
//!
//! # Example
//!
//! A runtime crate gives [`Node::start`] its runtime; see raft-tokio's and
//! raft-smol's crate docs for a runnable one-node key-value store.

#![warn(missing_docs)]

mod api;
mod backoff;
mod engine;
mod handle;
mod metrics;
mod metrics_http;
mod net;
mod node;
mod queue;
mod runtime;
mod sync;
mod timed;
pub mod udp;

pub use api::{
    CommandOutcome, MembershipError, NodeConfig, PeerStatus, ProposeError, RoleInfo, RoleWatch, StartError, Status,
    TaskMonitor, TransferError,
};
pub use handle::Handle;
pub use metrics::{AppGauge, AppGaugeError};
pub use node::Node;
pub use raft_core;
pub use raft_host;
pub use runtime::Runtime;
pub use udp::{UdpApp, UdpOptions};

/// What an application names when it runs a node through a runtime crate
/// (raft-tokio, raft-smol): each re-exports this whole module, so the two
/// offer the same API by construction.
pub mod prelude {
    pub use crate::{
        AppGauge, AppGaugeError, CommandOutcome, Handle, MembershipError, NodeConfig, PeerStatus, ProposeError,
        RoleInfo, RoleWatch, StartError, Status, TaskMonitor, TransferError, raft_core, raft_host,
    };
}
