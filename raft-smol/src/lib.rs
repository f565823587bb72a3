//! raft-smol: runs a [`raft_core::Node`] over smol / async-io TCP.
//!
//! **Placeholder.** This crate will mirror raft-tokio's API on the smol
//! runtime (no tokio in its dependency graph): one task owning the core, an
//! authenticated TCP transport, and a handle with `propose`, `read`, `status`
//! and `shutdown`. Until that lands it only re-exports the core.

pub use raft_core;
