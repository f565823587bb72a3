//! raft-tokio: runs a [`raft_core::Node`] over tokio TCP.
//!
//! **Placeholder.** This crate will own one task that drives the sans-IO core
//! (feeding it messages, timers and finished disk writes, draining its outputs),
//! a length-prefixed, HMAC-authenticated TCP transport, and a handle with
//! `propose`, `read`, `status` and `shutdown`. Until that lands it only
//! re-exports the core so that the workspace layout is final.

pub use raft_core;
