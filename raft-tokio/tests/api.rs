//! The handle's promises on one process (`raft_adapter_dev::api_cases`, the
//! same cases raft-smol runs) on tokio.

use raft_adapter_dev::api_cases as cases;
use raft_tokio::Tokio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_peers_refuses_and_counts_dropped_messages() {
    cases::a_node_without_peers_refuses_and_counts_dropped_messages(Tokio::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_leave_nothing_running() {
    cases::start_up_errors_leave_nothing_running(Tokio::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_stops_the_node() {
    cases::dropping_every_handle_stops_the_node(Tokio::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_http() {
    cases::metrics_are_served_over_http(Tokio::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propose_unless_proposes_only_what_the_check_leaves() {
    cases::propose_unless_proposes_only_what_the_check_leaves(Tokio::current()).await;
}
