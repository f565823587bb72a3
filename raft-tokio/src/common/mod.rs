//! The runtime-independent half of an adapter, compiled into both
//! raft-tokio and raft-smol (raft-smol includes this directory by path), so
//! that the two crates behave the same: configuration and error types, the
//! [`engine::Engine`] that wraps the host [`Driver`](raft_host::Driver) with
//! proposal tickets and status, the per-peer outgoing queue, reconnect
//! backoff, and small executor-agnostic synchronization primitives. Nothing
//! in here names a runtime: the futures it exposes are woken through
//! `std::task::Waker` only.

pub(crate) mod api;
pub(crate) mod backoff;
pub(crate) mod engine;
pub(crate) mod queue;
pub(crate) mod sync;
