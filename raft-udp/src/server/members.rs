//! Member requests: the leader lists its configuration or makes a change,
//! answering once the change has committed; other nodes name the leader.

use crate::members::{Member, MemberOp, MemberResult, Members};
use crate::packet::{self, Packet};
use raft_core::{Bytes, ChangeError, MembershipChange, NodeId, Role};
use raft_host::KvStore;
use raft_net::{Handle, MembershipError, Status, UdpApp};
use std::net::SocketAddr;

/// The address the configuration in effect holds for `id`.
pub(crate) fn member_addr(status: &Status, id: NodeId) -> Option<String> {
    let addr = status.membership.addrs.get(&id)?;
    std::str::from_utf8(addr).ok().map(str::to_owned)
}

/// The configuration in effect on this node, as a reply.
fn members(status: &Status) -> Members {
    let m = &status.membership;
    let list = |ids: &std::collections::BTreeSet<NodeId>| {
        ids.iter().map(|&id| Member { id: id.0, addr: member_addr(status, id) }).collect()
    };
    Members {
        leader: status.role.leader.unwrap_or(status.id).0,
        term: status.role.term.0,
        voters: list(&m.voters),
        learners: list(&m.learners),
        outgoing: m.outgoing.iter().map(|id| id.0).collect(),
    }
}

fn reply(app: &UdpApp, to: SocketAddr, nonce: u64, result: MemberResult) {
    if let Some(payload) = packet::encode(&Packet::MemberReply { nonce, result }) {
        app.send(to, &payload);
    }
}

fn not_leader(status: &Status, leader: Option<NodeId>) -> MemberResult {
    let leader = leader.filter(|l| *l != status.id);
    MemberResult::NotLeader { leader: leader.map(|l| l.0), addr: leader.and_then(|l| member_addr(status, l)) }
}

/// Answers one member request from `from` (a change in a task of its own:
/// the answer comes once it has committed).
pub(crate) fn request(handle: &Handle<KvStore>, app: &UdpApp, from: SocketAddr, nonce: u64, op: MemberOp) {
    let status = handle.status();
    if status.role.role != Role::Leader {
        reply(app, from, nonce, not_leader(&status, status.role.leader));
        return;
    }
    let change = match op {
        MemberOp::List => return reply(app, from, nonce, MemberResult::Done(members(&status))),
        MemberOp::AddLearner { id, addr } => {
            if addr.parse::<SocketAddr>().is_err() {
                let error = format!("address {addr:?} is not IP:PORT");
                return reply(app, from, nonce, MemberResult::Refused { error, retry: false });
            }
            MembershipChange::AddLearner { id: NodeId(id), addr: Bytes::from(addr.as_str()) }
        }
        MemberOp::Promote { id } => MembershipChange::Promote { id: NodeId(id) },
        MemberOp::Remove { id } => MembershipChange::Remove { id: NodeId(id) },
    };
    let (handle, app) = (handle.clone(), app.clone());
    tokio::spawn(async move {
        let result = match handle.change_membership(change).await {
            Ok(_) => MemberResult::Done(members(&handle.status())),
            Err(MembershipError::Refused(ChangeError::NotLeader { leader_hint })) => {
                not_leader(&handle.status(), leader_hint)
            }
            Err(MembershipError::Refused(e)) => {
                let retry = matches!(
                    e,
                    ChangeError::ChangeInProgress | ChangeError::TransferInProgress | ChangeError::LearnerBehind { .. }
                );
                MemberResult::Refused { error: e.to_string(), retry }
            }
            Err(e @ MembershipError::Superseded { .. }) => MemberResult::Refused { error: e.to_string(), retry: true },
            Err(e) => MemberResult::Unknown(e.to_string()),
        };
        reply(&app, from, nonce, result);
    });
}
