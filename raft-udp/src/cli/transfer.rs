//! `raft-udp transfer-leader` and the `cluster` command `transfer N`.

use super::args;
use super::kv::print_line;
use crate::client::{Leading, TransferLeaderError, transfer_leader};
use clap::Args;
use raft_host::ClusterKey;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub(crate) struct TransferArgs {
    /// The nodes' addresses, comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',', required = true, value_parser = args::addr)]
    servers: Vec<SocketAddr>,
    /// File holding the cluster key.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// The id of the node that should lead.
    #[arg(long, value_name = "N")]
    to: u64,
    /// Give up after this many milliseconds.
    #[arg(long, default_value = "2000", value_parser = args::positive)]
    timeout_ms: u64,
}

/// The JSON line for an outcome and the exit status that goes with it.
pub(super) fn json_line(outcome: &Result<Leading, TransferLeaderError>) -> (String, u8) {
    match outcome {
        Ok(l) => (json!({ "ok": true, "leader": l.leader, "term": l.term }).to_string(), 0),
        Err(e) => (json!({ "ok": false, "error": e.to_string() }).to_string(), 1),
    }
}

/// Moves leadership to `to` and prints the JSON line; returns the exit status.
pub(super) async fn transfer_and_print(servers: &[SocketAddr], key: &ClusterKey, to: u64, timeout: Duration) -> u8 {
    let outcome = transfer_leader(servers, key, to, timeout).await;
    let (line, code) = json_line(&outcome);
    print_line(&line);
    code
}

/// `raft-udp transfer-leader`: exit 0 once node `--to` leads, 1 otherwise.
pub(super) fn run(a: &TransferArgs) -> Result<u8, String> {
    let key = crate::keyfile::read_key(&a.key_file)?;
    let timeout = Duration::from_millis(a.timeout_ms);
    Ok(super::runtime()?.block_on(transfer_and_print(&a.servers, &key, a.to, timeout)))
}
