//! The handle's promises on one process (`raft_adapter_dev::api_cases`, the
//! same cases raft-tokio runs) on smol.

use raft_adapter_dev::api_cases as cases;
use raft_smol::Smol;

#[test]
fn a_node_without_peers_refuses_and_counts_dropped_messages() {
    smol::block_on(cases::a_node_without_peers_refuses_and_counts_dropped_messages(Smol));
}

#[test]
fn start_up_errors_leave_nothing_running() {
    smol::block_on(cases::start_up_errors_leave_nothing_running(Smol));
}

#[test]
fn dropping_every_handle_stops_the_node() {
    smol::block_on(cases::dropping_every_handle_stops_the_node(Smol));
}

#[test]
fn metrics_are_served_over_http() {
    smol::block_on(cases::metrics_are_served_over_http(Smol));
}

#[test]
fn propose_unless_proposes_only_what_the_check_leaves() {
    smol::block_on(cases::propose_unless_proposes_only_what_the_check_leaves(Smol));
}
