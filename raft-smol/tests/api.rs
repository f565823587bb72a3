//! The handle's promises on one process: errors that promise "not applied",
//! link counters, start-up errors, and what a shutdown leaves behind.

use raft_smol::{Node, NodeConfig, ProposeError, StartError, TransferError};
use smol::future::FutureExt;
use std::time::Duration;

#[path = "shared/api_cases.rs"]
mod cases;

async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}

/// `f`, or `None` after `d`.
async fn within<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            smol::Timer::after(d).await;
            None
        })
        .await
}

#[test]
fn a_node_without_peers_refuses_and_counts_dropped_messages() {
    smol::block_on(cases::a_node_without_peers_refuses_and_counts_dropped_messages());
}

#[test]
fn start_up_errors_leave_nothing_running() {
    smol::block_on(cases::start_up_errors_leave_nothing_running());
}

#[test]
fn dropping_every_handle_stops_the_node() {
    smol::block_on(cases::dropping_every_handle_stops_the_node());
}
