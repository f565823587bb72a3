//! `raft-udp status`.

use super::StatusArgs;
use super::kv::print_line;
use crate::client::query_status;
use crate::packet::NodeStatus;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

/// One node's status as a JSON line.
pub(crate) fn json_line(addr: SocketAddr, s: &NodeStatus) -> String {
    json!({
        "id": s.id,
        "addr": addr.to_string(),
        "role": s.role,
        "term": s.term,
        "leader": s.leader,
        "commit_index": s.commit_index,
        "last_applied": s.last_applied,
        "last_log_index": s.last_log_index,
        "snapshot_index": s.snapshot_index,
        "dropped": s.dropped,
        "sessions": s.sessions,
        "session_bytes": s.session_bytes,
        "session_limit_bytes": s.session_limit_bytes,
        "unproven": s.unproven,
        "voters": s.voters,
        "learners": s.learners,
    })
    .to_string()
}

/// Prints a line per answering node; exit 0 if any answered, 1 if none did.
pub(super) fn run(args: &StatusArgs) -> Result<u8, String> {
    let key = crate::keyfile::read_key(&args.key_file)?;
    super::runtime()?.block_on(async {
        let answers = query_status(&args.servers, &key, Duration::from_millis(args.timeout_ms))
            .await
            .map_err(|e| format!("cannot open a client socket: {e}"))?;
        let mut any = false;
        for (addr, answer) in args.servers.iter().zip(&answers) {
            match answer {
                Some(s) => {
                    any = true;
                    print_line(&json_line(*addr, s));
                }
                None => eprintln!("raft-udp: no answer from {addr}"),
            }
        }
        Ok(if any { 0 } else { 1 })
    })
}
