//! Asking nodes for their status.

use super::bind_for;
use crate::packet::{self, COOKIE_REQUEST_PADDING, Chunk, Cookie, MAX_DATAGRAM, NodeStatus, Packet};
use crate::random_u64;
use raft_host::ClusterKey;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Asks every server for its status; answers in the order of `servers`
/// (`None`: no answer within `timeout`). A node answers only an address that
/// proved itself with a cookie, so each server is first asked for one.
/// Requests are resent to silent servers every third of the timeout.
pub async fn query_status(
    servers: &[SocketAddr],
    key: &ClusterKey,
    timeout: Duration,
) -> io::Result<Vec<Option<NodeStatus>>> {
    let mut answers = vec![None; servers.len()];
    let mut cookies: Vec<Option<Cookie>> = vec![None; servers.len()];
    let Some(&first) = servers.first() else { return Ok(answers) };
    let socket = bind_for(first).await?;
    let me = random_u64();
    let base = random_u64();
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let request = |i: usize, cookie: Option<Cookie>| {
        let nonce = base.wrapping_add(i as u64);
        let p = match cookie {
            Some(cookie) => Packet::StatusQuery { nonce, cookie },
            None => Packet::CookieRequest { nonce, padding: Chunk(&[0; COOKIE_REQUEST_PADDING]) },
        };
        packet::encode(&p).map(|p| key.seal(me, &p))
    };
    while answers.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, addr) in servers.iter().enumerate().filter(|(i, _)| answers[*i].is_none()) {
            if let Some(frame) = request(i, cookies[i]) {
                let _ = socket.send_to(&frame, addr).await;
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
            let slot = |nonce: u64| usize::try_from(nonce.wrapping_sub(base)).ok().filter(|i| *i < servers.len());
            match packet::decode(payload) {
                Ok(Packet::StatusReply { nonce, status }) => {
                    if let Some(i) = slot(nonce) {
                        answers[i] = Some(status);
                    }
                }
                Ok(Packet::CookieReply { nonce, cookie }) => {
                    if let Some(i) = slot(nonce).filter(|i| answers[*i].is_none()) {
                        cookies[i] = Some(cookie);
                        if let Some(frame) = request(i, Some(cookie)) {
                            let _ = socket.send_to(&frame, servers[i]).await;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(answers)
}

/// A cookie from `addr` for `socket`'s address, asked for again with
/// growing waits until `until` (`None`: no answer by then, e.g. the node is
/// down). A node answers status queries and other requests only from an
/// address that proved itself with one.
pub(crate) async fn fetch_cookie(
    socket: &tokio::net::UdpSocket,
    addr: SocketAddr,
    key: &ClusterKey,
    me: u64,
    until: Instant,
) -> Option<Cookie> {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut attempt = 0u32;
    while Instant::now() < until {
        let nonce = random_u64();
        let p = packet::encode(&Packet::CookieRequest { nonce, padding: Chunk(&[0; COOKIE_REQUEST_PADDING]) })?;
        socket.send_to(&key.seal(me, &p), addr).await.ok()?;
        let wait_until = until.min(Instant::now() + Duration::from_millis(50 << attempt.min(3)));
        attempt += 1;
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(wait_until.into(), socket.recv_from(&mut buf)).await {
            let Ok((_, payload)) = key.open(&buf[..n]) else { continue };
            if let Ok(Packet::CookieReply { nonce: got, cookie }) = packet::decode(payload)
                && got == nonce
            {
                return Some(cookie);
            }
        }
    }
    None
}
