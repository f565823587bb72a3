//! The runtime-independent part of an adapter, compiled into both
//! raft-tokio and raft-smol (raft-smol includes this directory by path), so
//! that the two crates are one implementation: configuration and error
//! types, the [`engine::Engine`] that wraps the host
//! [`Driver`](raft_host::Driver) with proposal tickets and status,
//! [`node::Node::start`] and the owning task's loop, the public
//! [`handle::Handle`], the TCP links ([`net`]), the per-peer outgoing queue,
//! reconnect backoff, and small executor-agnostic synchronization primitives
//! (including [`sync::first`], a biased two-way select).
//!
//! Nothing in here names a runtime. What needs one is written against the
//! including crate's `crate::rt` module, which each crate provides with the
//! same names and signatures (checked by compiling both crates): bounded and
//! unbounded channels (`bounded`, `unbounded`, `recv`, `try_recv`, `close`,
//! `send_now`, `oneshot`), tasks (`spawn`, `detach`, `join`, `Task`), the
//! blocking pool (`unblock`), timers (`sleep`, `timeout`, and `Alarm`, the owning task's timer) and
//! sockets (`TcpListener`, `TcpStream`, `split`, `AsyncReadExt`,
//! `AsyncWriteExt`). Anything added to one crate's `rt` must be added to the
//! other's.

pub(crate) mod api;
pub(crate) mod backoff;
pub(crate) mod engine;
pub(crate) mod handle;
pub(crate) mod net;
pub(crate) mod node;
pub(crate) mod queue;
pub(crate) mod sync;
