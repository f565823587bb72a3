//! A client of the replicated key-value store.
//!
//! [`Client::execute`] sends one command to the node it believes leads,
//! follows redirects, moves on to the next server when one does not answer,
//! and keeps resending the same (client id, sequence number) until a node
//! answers or the timeout passes. The store's sessions apply a command at
//! most once however many copies reach the log, so the outcome is exactly
//! one of: applied with a known output, definitely not applied, or unknown
//! (timed out; see [`CommandOutcome`]).

mod member;
mod route;
mod status;

pub use member::MemberClient;
pub use status::query_status;

use crate::packet::{self, ClientRequest, ClientResult, MAX_DATAGRAM, Packet, RetryReason};
use crate::random_u64;
use raft_host::{ClusterKey, KvOp, KvOutput};
use route::Route;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// How one command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Applied once, with this output.
    Ok(KvOutput),
    /// Definitely not applied, and it never will be: a node refused it for a
    /// reason every node shares (too large, malformed), or it is too large
    /// to send, or no datagram of it could be sent at all.
    Failed(String),
    /// The timeout passed: it may or may not have been applied (or be
    /// applied later). Even when every node answered "not the leader", a
    /// copy of a request still travelling the network (delayed or
    /// duplicated) could reach a node after it became leader.
    Unknown,
}

/// A client: one random id, sequence numbers from 1, one command at a time.
#[derive(Debug)]
pub struct Client {
    socket: UdpSocket,
    key: ClusterKey,
    id: u64,
    seq: u64,
    nonce: u64,
    route: Route,
    timeout: Duration,
    buf: Vec<u8>,
}

/// Binds a socket of the same address family as `first`, on any port.
pub(crate) async fn bind_for(first: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if first.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    UdpSocket::bind(any).await
}

impl Client {
    /// A client of the cluster reachable at `servers` (at least one), whose
    /// commands each give up after `timeout`.
    pub async fn connect(servers: Vec<SocketAddr>, key: ClusterKey, timeout: Duration) -> io::Result<Client> {
        let Some(&first) = servers.first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no server address given"));
        };
        let socket = bind_for(first).await?;
        let start = (random_u64() % servers.len() as u64) as usize;
        Ok(Client {
            socket,
            key,
            id: random_u64(),
            seq: 0,
            nonce: random_u64(),
            route: Route::new(servers, start),
            timeout,
            buf: vec![0u8; MAX_DATAGRAM + 1],
        })
    }

    /// This client's id (random).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How long one attempt at one server waits before trying the next.
    fn attempt_timeout(&self) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(1))
    }

    /// Runs one command to completion (see [`CommandOutcome`]).
    pub async fn execute(&mut self, op: KvOp) -> CommandOutcome {
        self.seq += 1;
        let seq = self.seq;
        let deadline = Instant::now() + self.timeout;
        // A request datagram went out (any copy may yet be proposed), and an
        // attempt went unanswered (a copy may already have been proposed).
        let (mut sent, mut unanswered) = (false, false);
        let mut problem = String::from("timed out before sending");
        // Redirects in a row: hints can point in circles while leadership moves.
        let mut redirects = 0u32;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.nonce = self.nonce.wrapping_add(1);
            let nonce = self.nonce;
            let request = Packet::ClientRequest(ClientRequest { nonce, seq, op: op.clone() });
            let frame = packet::encode(&request).map(|p| self.key.seal(self.id, &p)).unwrap_or_default();
            if frame.is_empty() || frame.len() > MAX_DATAGRAM {
                return CommandOutcome::Failed(format!("command too large for one datagram ({MAX_DATAGRAM} bytes)"));
            }
            let target = self.route.target();
            if let Err(e) = self.socket.send_to(&frame, target).await {
                problem = format!("cannot send to {target}: {e}");
                self.route.rotate(now);
                tokio::time::sleep(Duration::from_millis(50).min(deadline - now)).await;
                continue;
            }
            sent = true;
            let attempt_end = deadline.min(now + self.attempt_timeout());
            let Some((node, result)) = self.wait_reply(nonce, seq, attempt_end).await else {
                unanswered = true;
                self.route.no_answer(Instant::now());
                continue;
            };
            self.route.answered(node, target);
            redirects = if matches!(result, ClientResult::NotLeader { .. }) { redirects + 1 } else { 0 };
            let pause = match result {
                ClientResult::Done(output) => return CommandOutcome::Ok(output),
                ClientResult::Rejected(why) if !unanswered => return CommandOutcome::Failed(why),
                ClientResult::Rejected(_) => return CommandOutcome::Unknown,
                ClientResult::NotLeader { leader, addr } => {
                    self.route.redirect(leader, addr.and_then(|a| a.parse().ok()), Instant::now());
                    match (leader, redirects) {
                        (Some(_), 0..=2) => Duration::ZERO,
                        (Some(_), _) => Duration::from_millis(10),
                        (None, _) => Duration::from_millis(50),
                    }
                }
                ClientResult::Retry(reason) => {
                    if reason == RetryReason::Busy {
                        Duration::from_millis(20)
                    } else {
                        Duration::from_millis(2)
                    }
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(left)).await;
        }
        if sent { CommandOutcome::Unknown } else { CommandOutcome::Failed(problem) }
    }

    /// Waits for the reply to request `nonce` until `until`; skips anything else.
    async fn wait_reply(&mut self, nonce: u64, seq: u64, until: Instant) -> Option<(u64, ClientResult)> {
        loop {
            let received = tokio::time::timeout_at(until.into(), self.socket.recv_from(&mut self.buf)).await.ok()?;
            let Ok((n, _)) = received else {
                // An ICMP error surfacing on the socket: keep waiting, briefly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let Ok((sender, payload)) = self.key.open(&self.buf[..n]) else { continue };
            if let Ok(Packet::ClientReply(r)) = packet::decode(payload)
                && r.nonce == nonce
                && r.seq == seq
            {
                return Some((sender, r.result));
            }
        }
    }
}
