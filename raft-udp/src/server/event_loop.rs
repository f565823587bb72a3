//! The task that owns the node: datagrams in, the engine's actions out.

use super::NodeError;
use super::clients::{Clients, KvEngine, MAX_PENDING, Waiter};
use crate::counters::Counters;
use crate::fragment::{Fragmenter, Reassembler};
use crate::packet::{self, ClientReply, ClientRequest, ClientResult, MAX_DATAGRAM, NodeStatus, Packet, RetryReason};
use raft_core::{Event, Message, NodeId, Role, codec};
use raft_host::engine::{Done, Refused, Transport};
use raft_host::kv::encode_command;
use raft_host::{ClusterKey, KvCommand, KvError, KvOutput, Outcome, StdClock, StorageError};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

/// Datagrams handled before the node's outputs are drained (batching).
const RECV_BATCH: usize = 256;
/// How often buffers are swept.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Drop counts are logged at most this often (when they changed).
const LOG_DROPS_EVERY: Duration = Duration::from_secs(10);

type Durable = Result<raft_core::PersistToken, StorageError>;

/// The node and everything around it. Owned by one task.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) id: u64,
    pub(super) key: ClusterKey,
    pub(super) peers: HashMap<u64, SocketAddr>,
    pub(super) engine: KvEngine,
    pub(super) clock: StdClock,
    pub(super) frag: Fragmenter,
    pub(super) reasm: Reassembler,
    pub(super) clients: Clients,
    pub(super) counters: Counters,
    /// Datagrams to send once the current step is done.
    pub(super) outbox: Vec<(SocketAddr, Vec<u8>)>,
    /// The drop total last written to the log, and when.
    pub(super) logged_drops: (u64, Option<Instant>),
}

/// Runs until `stop` completes (then flushes the disk) or a fatal error.
pub(super) async fn serve(
    mut server: Server,
    socket: UdpSocket,
    mut durable: UnboundedReceiver<Durable>,
    stop: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    tokio::pin!(stop);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut housekeeping = Instant::now() + HOUSEKEEPING;
    let result = loop {
        if let Err(e) = server.step() {
            break Err(e);
        }
        for (addr, frame) in server.outbox.drain(..) {
            if let Err(e) = socket.send_to(&frame, addr).await {
                tracing::debug!(%addr, error = %e, "send failed");
            }
        }
        let deadline = server.engine.deadline().map(|t| server.clock.to_std(t));
        let wake = deadline.map_or(housekeeping, |d| d.min(housekeeping));
        tokio::select! {
            biased;
            () = &mut stop => break Ok(()),
            r = durable.recv() => {
                let mut result = server.on_durable(r);
                while result.is_ok() {
                    match durable.try_recv() {
                        Ok(r) => result = server.on_durable(Some(r)),
                        Err(_) => break,
                    }
                }
                if let Err(e) = result {
                    break Err(e);
                }
            }
            r = socket.recv_from(&mut buf) => {
                match r {
                    Ok((n, from)) => server.on_datagram(&buf[..n], from),
                    Err(e) => tracing::debug!(error = %e, "receive failed"),
                }
                for _ in 0..RECV_BATCH {
                    match socket.try_recv_from(&mut buf) {
                        Ok((n, from)) => server.on_datagram(&buf[..n], from),
                        Err(_) => break,
                    }
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        // Whichever branch ran (a flood of datagrams must not starve the
        // timers), and however late or early a timer fired (a paused
        // process): the clock decides what is due.
        let now = Instant::now();
        if now >= housekeeping {
            server.housekeeping(now);
            housekeeping = now + HOUSEKEEPING;
        }
        server.engine.handle_timer(server.clock.to_core(now));
    };
    // Clients still waiting hear nothing: they retry, as after any lost datagram.
    if let (_, Some(disk)) = server.engine.stop() {
        disk.shutdown();
    }
    tracing::info!("stopped; disk writes flushed");
    result
}

impl Server {
    /// Drains the engine and acts on everything it asks for.
    fn step(&mut self) -> Result<(), NodeError> {
        let now = self.clock.now();
        let mut peers =
            PeerOut { id: self.id, key: &self.key, peers: &self.peers, frag: &mut self.frag, outbox: &mut self.outbox };
        let flushed = match self.engine.flush(now, &mut peers) {
            Ok(f) => f,
            Err(failure) => return Err(NodeError::Failed(failure.to_string())),
        };
        for done in flushed.done {
            self.complete(done);
        }
        for event in flushed.events {
            if let Event::RoleChanged { role, term, leader } = event {
                tracing::info!(?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
            }
        }
        Ok(())
    }

    fn on_durable(&mut self, report: Option<Durable>) -> Result<(), NodeError> {
        match report {
            Some(Ok(token)) => {
                self.engine.handle_durable(self.clock.now(), Ok(token));
                Ok(())
            }
            Some(Err(e)) => Err(NodeError::Failed(format!("disk write failed: {e}"))),
            None => Err(NodeError::Failed("the disk thread stopped".into())),
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.reasm.expire(now, &mut self.counters);
        self.clients.expire(&mut self.engine, now);
        let total = self.counters.total();
        let due = self.logged_drops.1.is_none_or(|t| now.saturating_duration_since(t) >= LOG_DROPS_EVERY);
        if total != self.logged_drops.0 && due {
            self.logged_drops = (total, Some(now));
            tracing::warn!(counters = %self.counters, "dropped datagrams so far");
        }
    }

    fn reply(&mut self, addr: SocketAddr, packet: &Packet<'_>) {
        if let Some(payload) = packet::encode(packet) {
            self.outbox.push((addr, self.key.seal(self.id, &payload)));
        }
    }

    /// Handles one datagram. Never panics; drops and counts what is not valid.
    pub(super) fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        if datagram.len() > MAX_DATAGRAM {
            self.counters.oversize += 1;
            return;
        }
        let Ok((sender, payload)) = self.key.open(datagram) else {
            self.counters.bad_frame += 1;
            return;
        };
        let Ok(packet) = packet::decode(payload) else {
            self.counters.malformed += 1;
            return;
        };
        match packet {
            Packet::Peer(fragment) => {
                if sender == self.id || !self.peers.contains_key(&sender) {
                    self.counters.unknown_peer += 1;
                    return;
                }
                let Some(bytes) = self.reasm.accept(sender, fragment, Instant::now(), &mut self.counters) else {
                    return;
                };
                match codec::decode_message(&bytes) {
                    Ok(msg) => self.engine.handle_message(self.clock.now(), NodeId(sender), msg),
                    Err(_) => self.counters.malformed += 1,
                }
            }
            Packet::ClientRequest(req) => self.on_client_request(sender, from, req),
            Packet::StatusRequest { nonce } => {
                let status = self.status();
                self.reply(from, &Packet::StatusReply { nonce, status });
            }
            Packet::ClientReply(_) | Packet::StatusReply { .. } => self.counters.unexpected += 1,
        }
    }

    fn on_client_request(&mut self, client: u64, from: SocketAddr, req: ClientRequest) {
        let ClientRequest { nonce, seq, op } = req;
        let leading = self.engine.node().role() == Role::Leader;
        if leading && self.clients.refresh(&mut self.engine, client, seq, nonce, from) {
            return; // already proposed; answered when applied
        }
        let result = if !leading {
            Some(self.not_leader())
        } else if self.engine.waiting().len() >= MAX_PENDING {
            Some(ClientResult::Retry(RetryReason::Busy))
        } else {
            let command = encode_command(&KvCommand { client, seq, op });
            let waiter = Waiter { client, seq, nonce, addr: from, since: Instant::now() };
            match self.engine.propose(self.clock.now(), command, waiter) {
                Ok(ticket) => {
                    self.clients.proposed(client, ticket);
                    None
                }
                Err((Refused::NotLeader { .. }, _)) => Some(self.not_leader()),
                Err((e, _)) => Some(ClientResult::Rejected(e.to_string())),
            }
        };
        if let Some(result) = result {
            self.reply(from, &Packet::ClientReply(ClientReply { nonce, seq, result }));
        }
    }

    fn not_leader(&self) -> ClientResult {
        let leader = self.engine.node().leader().map(|l| l.0).filter(|l| *l != self.id);
        let addr = leader.and_then(|l| self.peers.get(&l)).map(|a| a.to_string());
        ClientResult::NotLeader { leader, addr }
    }

    fn complete(&mut self, done: Done<Waiter, Result<KvOutput, KvError>>) {
        let w = done.waiter;
        self.clients.finished(done.ticket, &w);
        let result = match done.outcome {
            Outcome::Applied(Some(Ok(output))) => ClientResult::Done(output),
            Outcome::Applied(Some(Err(e))) => ClientResult::Rejected(e.to_string()),
            Outcome::Applied(None) => ClientResult::Rejected("the entry carried no command".into()),
            Outcome::Superseded => ClientResult::Retry(RetryReason::Superseded),
            _ => ClientResult::Retry(RetryReason::Unknown),
        };
        let reply = Packet::ClientReply(ClientReply { nonce: w.nonce, seq: w.seq, result });
        self.reply(w.addr, &reply);
    }

    fn status(&self) -> NodeStatus {
        let node = self.engine.node();
        let role = match node.role() {
            Role::Leader => "leader",
            Role::Follower => "follower",
            _ => "candidate",
        };
        NodeStatus {
            id: self.id,
            role: role.into(),
            term: node.term().0,
            leader: node.leader().map(|l| l.0),
            commit_index: node.commit_index().0,
            last_applied: self.engine.state_machine().last_applied().0,
            last_log_index: node.last_log_index().0,
            snapshot_index: node.snapshot_index().0,
            dropped: self.counters.clone(),
        }
    }
}

/// Peer messages, split into sealed datagrams for the outbox.
struct PeerOut<'a> {
    id: u64,
    key: &'a ClusterKey,
    peers: &'a HashMap<u64, SocketAddr>,
    frag: &'a mut Fragmenter,
    outbox: &'a mut Vec<(SocketAddr, Vec<u8>)>,
}

impl Transport for PeerOut<'_> {
    fn send(&mut self, to: NodeId, message: Message) {
        let Some(&addr) = self.peers.get(&to.0) else { return };
        let bytes = codec::encode_message(&message);
        for frame in self.frag.split(self.key, self.id, &bytes) {
            self.outbox.push((addr, frame));
        }
    }
}
