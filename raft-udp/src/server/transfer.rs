//! `TransferRequest`s: the node hands its leadership over through its
//! [`Handle`] and answers once the transfer has ended.

use crate::packet::{self, Packet, TransferResult};
use raft_core::NodeId;
use raft_host::KvStore;
use raft_net::{Handle, TransferError, UdpApp};
use std::net::SocketAddr;

/// Starts a transfer to `to` and answers `from` when it has ended (within
/// an election timeout: the core abandons a transfer after that).
pub(crate) fn spawn(handle: Handle<KvStore>, app: UdpApp, from: SocketAddr, nonce: u64, to: u64) {
    tokio::spawn(async move {
        let result = match handle.transfer_leadership(NodeId(to)).await {
            Ok(()) => TransferResult::HandedOver,
            Err(TransferError::NotLeader { leader_hint }) => {
                TransferResult::NotLeader { leader: leader_hint.map(|l| l.0) }
            }
            Err(TransferError::InProgress { to }) => TransferResult::InProgress { to: to.0 },
            Err(TransferError::LeadershipLost { leader_hint }) => {
                TransferResult::NotLeader { leader: leader_hint.map(|l| l.0) }
            }
            Err(e) => TransferResult::Failed(e.to_string()),
        };
        tracing::info!(to, ?result, "leadership transfer asked for by a client ended");
        if let Some(payload) = packet::encode(&Packet::TransferReply { nonce, result }) {
            app.send(from, &payload);
        }
    });
}
