//! Asking the leader about the configuration, or to change it.

use super::{bind_for, fetch_cookie};
use crate::members::{MemberOp, MemberResult};
use crate::packet::{self, Cookie, MAX_DATAGRAM, Packet};
use crate::random_u64;
use raft_host::ClusterKey;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Sends member requests to whichever node leads, following redirects.
#[derive(Debug)]
pub struct MemberClient {
    socket: UdpSocket,
    key: ClusterKey,
    id: u64,
    nonce: u64,
    servers: Vec<SocketAddr>,
    next: usize,
    target: SocketAddr,
    buf: Vec<u8>,
    /// Each node's cookie for this client's address (a node acts only for
    /// a proven address).
    cookies: HashMap<SocketAddr, Cookie>,
}

impl MemberClient {
    /// A client of the cluster reachable at `servers` (at least one).
    pub async fn connect(servers: Vec<SocketAddr>, key: ClusterKey) -> io::Result<MemberClient> {
        let Some(&first) = servers.first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no server address given"));
        };
        let socket = bind_for(first).await?;
        let buf = vec![0u8; MAX_DATAGRAM + 1];
        let (id, nonce, cookies) = (random_u64(), random_u64(), HashMap::new());
        Ok(MemberClient { socket, key, id, nonce, servers, next: 0, target: first, buf, cookies })
    }

    /// The servers it was given.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The cluster key it seals requests with.
    pub fn key(&self) -> &ClusterKey {
        &self.key
    }

    fn rotate(&mut self) {
        self.next = (self.next + 1) % self.servers.len();
        self.target = self.servers[self.next];
    }

    /// Asks the leader for `op`: each attempt waits up to `attempt` for an
    /// answer before trying the next server. `None` if `until` passes first;
    /// otherwise the leader's answer (never `NotLeader`).
    pub async fn ask(&mut self, op: &MemberOp, attempt: Duration, until: Instant) -> Option<MemberResult> {
        loop {
            let now = Instant::now();
            if now >= until {
                return None;
            }
            let cookie = match self.cookies.get(&self.target) {
                Some(c) => *c,
                None => {
                    match fetch_cookie(&self.socket, self.target, &self.key, self.id, until.min(now + attempt)).await {
                        Some(c) => *self.cookies.entry(self.target).or_insert(c),
                        None => {
                            self.rotate();
                            continue;
                        }
                    }
                }
            };
            self.nonce = self.nonce.wrapping_add(1);
            let nonce = self.nonce;
            let request = Packet::MemberRequest { nonce, cookie, op: op.clone() };
            let frame = packet::encode(&request).map(|p| self.key.seal(self.id, &p))?;
            if self.socket.send_to(&frame, self.target).await.is_err() {
                self.rotate();
                tokio::time::sleep(Duration::from_millis(50).min(until - now)).await;
                continue;
            }
            match self.wait_reply(nonce, until.min(now + attempt)).await {
                None => {
                    // Its cookie may have expired: ask for a fresh one next time.
                    self.cookies.remove(&self.target);
                    self.rotate();
                }
                Some(MemberResult::NotLeader { leader: Some(_), addr: Some(addr) }) => match addr.parse() {
                    Ok(a) => self.target = a,
                    Err(_) => self.rotate(),
                },
                Some(MemberResult::NotLeader { .. }) => {
                    self.rotate();
                    let left = until.saturating_duration_since(Instant::now());
                    tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                }
                Some(answer) => return Some(answer),
            }
        }
    }

    async fn wait_reply(&mut self, nonce: u64, until: Instant) -> Option<MemberResult> {
        loop {
            let received = tokio::time::timeout_at(until.into(), self.socket.recv_from(&mut self.buf)).await.ok()?;
            let Ok((n, _)) = received else {
                tokio::time::sleep(Duration::from_millis(5)).await; // an ICMP error surfacing
                continue;
            };
            let Ok((_, payload)) = self.key.open(&self.buf[..n]) else { continue };
            if let Ok(Packet::MemberReply { nonce: got, result }) = packet::decode(payload)
                && got == nonce
            {
                return Some(result);
            }
        }
    }
}
