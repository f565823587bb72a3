//! Asking nodes for their status.

use super::bind_for;
use crate::packet::{self, MAX_DATAGRAM, NodeStatus, Packet};
use crate::random_u64;
use raft_host::ClusterKey;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Asks every server for its status; answers in the order of `servers`
/// (`None`: no answer within `timeout`). Requests are resent to silent
/// servers every third of the timeout.
pub async fn query_status(
    servers: &[SocketAddr],
    key: &ClusterKey,
    timeout: Duration,
) -> io::Result<Vec<Option<NodeStatus>>> {
    let mut answers = vec![None; servers.len()];
    let Some(&first) = servers.first() else { return Ok(answers) };
    let socket = bind_for(first).await?;
    let me = random_u64();
    let base = random_u64();
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    while answers.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, addr) in servers.iter().enumerate().filter(|(i, _)| answers[*i].is_none()) {
            let request = Packet::StatusRequest { nonce: base.wrapping_add(i as u64) };
            if let Some(p) = packet::encode(&request) {
                let _ = socket.send_to(&key.seal(me, &p), addr).await;
            }
        }
        let round_end = deadline.min(Instant::now() + timeout / 3);
        while answers.iter().any(Option::is_none) {
            let Ok(received) = tokio::time::timeout_at(round_end.into(), socket.recv_from(&mut buf)).await else {
                break;
            };
            let Ok((n, _)) = received else {
                tokio::time::sleep(Duration::from_millis(5)).await; // an ICMP error surfacing
                continue;
            };
            let Ok((_, payload)) = key.open(&buf[..n]) else { continue };
            if let Ok(Packet::StatusReply { nonce, status }) = packet::decode(payload) {
                let i = nonce.wrapping_sub(base);
                if let Some(slot) = answers.get_mut(usize::try_from(i).unwrap_or(usize::MAX)) {
                    *slot = Some(status);
                }
            }
        }
    }
    Ok(answers)
}
