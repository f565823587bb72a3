//! The handle's promises on one process: errors that promise "not applied",
//! link counters, start-up errors, and what a shutdown leaves behind.

use raft_tokio::{Node, NodeConfig, ProposeError, StartError, TransferError};
use std::time::Duration;

#[path = "shared/api_cases.rs"]
mod cases;

async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// `f`, or `None` after `d`.
async fn within<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(d, f).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_peers_refuses_and_counts_dropped_messages() {
    cases::a_node_without_peers_refuses_and_counts_dropped_messages().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_leave_nothing_running() {
    cases::start_up_errors_leave_nothing_running().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_stops_the_node() {
    cases::dropping_every_handle_stops_the_node().await;
}
