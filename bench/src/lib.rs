//! Throughput benchmark: the same workload on raft-rs (peer baseline) and on our core.
pub mod core;
pub mod raftrs;
pub mod workload;
