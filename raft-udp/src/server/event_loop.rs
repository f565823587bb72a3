//! The task that owns the node: datagrams in, the driver's actions out.

use super::NodeError;
use super::clients::{MAX_PENDING, Pending};
use crate::counters::Counters;
use crate::fragment::{Fragmenter, Reassembler};
use crate::packet::{self, ClientReply, ClientRequest, ClientResult, MAX_DATAGRAM, NodeStatus, Packet, RetryReason};
use raft_core::{Event, NodeId, Outgoing, PersistToken, ProposeError, Role, codec};
use raft_host::StdClock;
use raft_host::driver::{Completion, Outcome};
use raft_host::kv::encode_command;
use raft_host::{ClusterKey, DiskThread, Driver, KvCommand, KvError, KvOutput, KvStore, StorageError};
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

type Durable = Result<PersistToken, StorageError>;

/// The node and everything around it. Owned by one task.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) id: u64,
    pub(super) key: ClusterKey,
    pub(super) peers: HashMap<u64, SocketAddr>,
    pub(super) driver: Driver<KvStore>,
    pub(super) disk: DiskThread,
    pub(super) clock: StdClock,
    pub(super) frag: Fragmenter,
    pub(super) reasm: Reassembler,
    pub(super) pending: Pending,
    pub(super) counters: Counters,
    pub(super) next_ticket: u64,
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
        let deadline = server.driver.poll_timeout().map(|t| server.clock.to_std(t));
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
        if deadline.is_some_and(|d| now >= d) {
            server.driver.handle_timeout(server.clock.to_core(now));
        }
    };
    let Server { disk, .. } = server;
    disk.shutdown();
    tracing::info!("stopped; disk writes flushed");
    result
}

impl Server {
    /// Drains the driver and acts on everything it asks for.
    fn step(&mut self) -> Result<(), NodeError> {
        let now = self.clock.now();
        let actions = self.driver.drain(now).map_err(|e| NodeError::Failed(e.to_string()))?;
        for write in actions.writes {
            if !self.disk.submit(write) {
                return Err(NodeError::Failed("the disk thread stopped after an error".into()));
            }
        }
        for out in actions.sends {
            self.send_peer(out);
        }
        for done in actions.completed {
            self.complete(done);
        }
        for event in actions.events {
            if let Event::RoleChanged { role, term, leader } = event {
                tracing::info!(?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
            }
        }
        Ok(())
    }

    fn on_durable(&mut self, report: Option<Durable>) -> Result<(), NodeError> {
        match report {
            Some(Ok(token)) => {
                self.driver.handle_persisted(self.clock.now(), token);
                Ok(())
            }
            Some(Err(e)) => Err(NodeError::Failed(format!("disk write failed: {e}"))),
            None => Err(NodeError::Failed("the disk thread stopped".into())),
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.reasm.expire(now, &mut self.counters);
        self.pending.expire(now);
        let total = self.counters.total();
        let due = self.logged_drops.1.is_none_or(|t| now.saturating_duration_since(t) >= LOG_DROPS_EVERY);
        if total != self.logged_drops.0 && due {
            self.logged_drops = (total, Some(now));
            tracing::warn!(counters = %self.counters, "dropped datagrams so far");
        }
    }

    fn send_peer(&mut self, out: Outgoing) {
        let Some(&addr) = self.peers.get(&out.to.0) else { return };
        let bytes = codec::encode_message(&out.message);
        for frame in self.frag.split(&self.key, self.id, &bytes) {
            self.outbox.push((addr, frame));
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
                    Ok(msg) => self.driver.handle_message(self.clock.now(), NodeId(sender), msg),
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
        let leading = self.driver.node().role() == Role::Leader;
        if leading && self.pending.refresh(client, seq, nonce, from) {
            return; // already proposed; answered when applied
        }
        let result = if !leading {
            Some(self.not_leader())
        } else if self.pending.len() >= MAX_PENDING {
            Some(ClientResult::Retry(RetryReason::Busy))
        } else {
            let ticket = self.next_ticket;
            self.next_ticket += 1;
            let command = encode_command(&KvCommand { client, seq, op });
            match self.driver.propose(self.clock.now(), command, ticket) {
                Ok(_) => {
                    self.pending.insert(ticket, client, seq, nonce, from, Instant::now());
                    None
                }
                Err(ProposeError::NotLeader { .. }) => Some(self.not_leader()),
                Err(e) => Some(ClientResult::Rejected(e.to_string())),
            }
        };
        if let Some(result) = result {
            self.reply(from, &Packet::ClientReply(ClientReply { nonce, seq, result }));
        }
    }

    fn not_leader(&self) -> ClientResult {
        let leader = self.driver.node().leader().map(|l| l.0).filter(|l| *l != self.id);
        let addr = leader.and_then(|l| self.peers.get(&l)).map(|a| a.to_string());
        ClientResult::NotLeader { leader, addr }
    }

    fn complete(&mut self, done: Completion<Result<KvOutput, KvError>>) {
        let Some(w) = self.pending.take(done.ticket) else { return };
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
        let node = self.driver.node();
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
            last_applied: self.driver.state_machine().last_applied().0,
            last_log_index: node.last_log_index().0,
            snapshot_index: node.snapshot_index().0,
            dropped: self.counters.clone(),
        }
    }
}
