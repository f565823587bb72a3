//! raft-udp: runs a [`raft_core::Node`] over authenticated UDP datagrams.
//!
//! **Placeholder.** This crate will hold the UDP transport (HMAC-SHA256 on
//! every datagram, fragmentation above `--max-datagram`), the replicated
//! key-value service, and the `raft-udp` binary (`node`, `client`, `status`,
//! `cluster`, `bench`). Until that lands the binary only explains this.

pub use raft_core;
