//! The service side of the socket: client requests become proposals through
//! the node's [`Handle`], status requests are answered from its status.

use crate::packet::{self, ClientReply, ClientRequest, ClientResult, NodeStatus, Packet, RetryReason};
use raft_core::Role;
use raft_host::{KvCommand, KvError, KvOutput, KvStore};
use raft_net::udp::AppDatagram;
use raft_net::{Handle, ProposeError, Status, UdpApp};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Most proposals waiting for their outcome; beyond it clients are told to retry.
pub(crate) const MAX_PENDING: usize = 65_536;

type KvResult = Result<Result<KvOutput, KvError>, ProposeError>;

/// Where to send the answer to a client's command in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiter {
    seq: u64,
    nonce: u64,
    addr: SocketAddr,
}

/// The proposals in flight, at most one per client (its latest command).
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) handle: Handle<KvStore>,
    pub(crate) app: UdpApp,
    pub(crate) peers: HashMap<u64, SocketAddr>,
    in_flight: HashMap<u64, Waiter>,
    pending: usize,
}

/// A finished proposal: the client, its sequence number, the outcome.
pub(crate) type Finished = (u64, u64, KvResult);

impl Service {
    pub(crate) fn new(handle: Handle<KvStore>, app: UdpApp, peers: HashMap<u64, SocketAddr>) -> Service {
        Service { handle, app, peers, in_flight: HashMap::new(), pending: 0 }
    }

    fn reply(&self, addr: SocketAddr, packet: &Packet<'_>) {
        if let Some(payload) = packet::encode(packet) {
            self.app.send(addr, &payload);
        }
    }

    /// Handles one datagram that is not peer traffic. Returns a proposal to
    /// run (its future answers with [`Service::finished`]).
    pub(crate) fn datagram(&mut self, d: AppDatagram) -> Option<(u64, u64, KvCommand)> {
        let Ok(packet) = packet::decode(&d.payload) else {
            self.app.count(|c| c.malformed += 1);
            return None;
        };
        match packet {
            Packet::ClientRequest(req) => self.request(d.sender, d.from, req),
            Packet::MemberRequest { nonce, op } => {
                super::members::request(&self.handle, &self.app, d.from, nonce, op);
                None
            }
            Packet::StatusRequest { nonce } => {
                let status = self.status();
                self.reply(d.from, &Packet::StatusReply { nonce, status });
                None
            }
            // A peer fragment that raft-net did not take is malformed.
            Packet::Peer(_) => {
                self.app.count(|c| c.malformed += 1);
                None
            }
            Packet::ClientReply(_) | Packet::StatusReply { .. } | Packet::MemberReply { .. } => {
                self.app.count(|c| c.unexpected += 1);
                None
            }
        }
    }

    fn request(&mut self, client: u64, from: SocketAddr, req: ClientRequest) -> Option<(u64, u64, KvCommand)> {
        let ClientRequest { nonce, seq, op } = req;
        let status = self.handle.status();
        let leading = status.role.role == Role::Leader;
        if leading && let Some(w) = self.in_flight.get_mut(&client).filter(|w| w.seq == seq) {
            // Already proposed; answered when applied, at the newest address.
            w.nonce = nonce;
            w.addr = from;
            return None;
        }
        let result = if !leading {
            self.not_leader(status.role.leader.map(|l| l.0))
        } else if self.pending >= MAX_PENDING {
            ClientResult::Retry(RetryReason::Busy)
        } else {
            self.in_flight.insert(client, Waiter { seq, nonce, addr: from });
            self.pending += 1;
            return Some((client, seq, KvCommand { client, seq, op }));
        };
        self.reply(from, &Packet::ClientReply(ClientReply { nonce, seq, result }));
        None
    }

    /// Answers a finished proposal (if its client still waits for that command).
    pub(crate) fn finished(&mut self, (client, seq, result): Finished) {
        self.pending -= 1;
        let Some(w) = self.in_flight.get(&client).filter(|w| w.seq == seq).cloned() else { return };
        self.in_flight.remove(&client);
        let result = match result {
            Ok(Ok(output)) => ClientResult::Done(output),
            Ok(Err(e)) => ClientResult::Rejected(e.to_string()),
            Err(ProposeError::NotLeader { leader_hint }) => self.not_leader(leader_hint.map(|l| l.0)),
            Err(ProposeError::Superseded { .. }) => ClientResult::Retry(RetryReason::Superseded),
            Err(e @ ProposeError::TooLarge { .. }) => ClientResult::Rejected(e.to_string()),
            Err(_) => ClientResult::Retry(RetryReason::Unknown),
        };
        self.reply(w.addr, &Packet::ClientReply(ClientReply { nonce: w.nonce, seq, result }));
    }

    fn not_leader(&self, leader: Option<u64>) -> ClientResult {
        let id = self.handle.id().0;
        let leader = leader.filter(|l| *l != id);
        // The configuration's address first: the leader may have joined at runtime.
        let status = self.handle.status();
        let addr = leader
            .and_then(|l| super::members::member_addr(&status, raft_core::NodeId(l)))
            .or_else(|| leader.and_then(|l| self.peers.get(&l)).map(|a| a.to_string()));
        ClientResult::NotLeader { leader, addr }
    }

    fn status(&self) -> NodeStatus {
        node_status(&self.handle.status())
    }
}

/// The status a node reports to `raft-udp status`.
pub(crate) fn node_status(s: &Status) -> NodeStatus {
    let role = match s.role.role {
        _ if s.removed => "removed",
        Role::Leader => "leader",
        Role::Follower => "follower",
        _ => "candidate",
    };
    NodeStatus {
        id: s.id.0,
        role: role.into(),
        term: s.role.term.0,
        leader: s.role.leader.map(|l| l.0),
        commit_index: s.commit_index.0,
        last_applied: s.last_applied.0,
        last_log_index: s.last_log_index.0,
        snapshot_index: s.snapshot_index.0,
        dropped: s.datagrams.clone().unwrap_or_default(),
        voters: s.membership.voters.iter().map(|id| id.0).collect(),
        learners: s.membership.learners.iter().map(|id| id.0).collect(),
    }
}
