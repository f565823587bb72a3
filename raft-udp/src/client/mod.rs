//! A client of the replicated key-value store.
//!
//! [`Client::execute`] sends one command to the node it believes leads,
//! follows redirects, moves to the leader that a follower's answer names
//! (when that leader answered before, or is a listed server that has not
//! timed out lately), moves on to the next server when one does not answer,
//! and keeps resending the same (session, sequence number) until a node
//! answers or the timeout passes. Before its first request to a node it
//! asks that node for an address cookie; before its first write it
//! registers a session, and registers again if the cluster says the session
//! expired (unless a copy of the command may already have been applied in
//! the old one: then the outcome is unknown). The store's sessions apply a command at
//! most once however many copies reach the log, so the outcome is exactly
//! one of: applied with a known output, definitely not applied, or unknown
//! (timed out; see [`CommandOutcome`]).

mod member;
mod route;
mod rtt;
mod status;
mod transfer;

pub use member::MemberClient;
pub(crate) use status::fetch_cookie;
pub use status::query_status;
pub use transfer::{Leading, TransferLeaderError, transfer_leader};

use crate::packet::{
    self, COOKIE_REQUEST_PADDING, Chunk, ClientOp, ClientResult, Cookie, MAX_DATAGRAM, MAX_VALUE_BYTES, Packet,
    RetryReason, SessionRequest,
};
use crate::random_u64;
use raft_host::{ClusterKey, KvOp, KvOutput};
use route::Route;
use rtt::RttEstimate;
use std::collections::HashMap;
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

/// A client: a session registered through the log, sequence numbers from 1
/// in it, one command at a time, and an address cookie per node.
#[derive(Debug)]
pub struct Client {
    socket: UdpSocket,
    key: ClusterKey,
    id: u64,
    /// The registered session, once there is one.
    session: Option<u64>,
    seq: u64,
    nonce: u64,
    route: Route,
    timeout: Duration,
    rtt: RttEstimate,
    buf: Vec<u8>,
    /// Each node's cookie for this client's address.
    cookies: HashMap<SocketAddr, Cookie>,
}

/// A reply to one of a command's attempts.
struct Reply {
    /// The node that sealed it, and the address it came from.
    node: u64,
    from: SocketAddr,
    /// The attempt it answers.
    nonce: u64,
    result: ClientResult,
    /// The leader that a follower served it through, and the leader's
    /// configured address.
    leader: Option<(u64, String)>,
}

/// The longest one attempt at one server waits (the first command's
/// attempts, before any round trip was observed, wait much less).
fn max_attempt(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

/// Binds a socket of the same address family as `first`, on any port.
pub(crate) async fn bind_for(first: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if first.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    UdpSocket::bind(any).await
}

/// What ends one attempt.
enum Answer {
    /// A reply to one of the command's attempts.
    Reply(Reply),
    /// A cookie for the latest attempt (which was not acted on).
    Cookie(Cookie),
}

impl Client {
    /// A client of the cluster reachable at `servers` (at least one), whose
    /// commands each give up after `timeout`. It registers a session with
    /// its first command that needs one (a put, delete or cas; gets need
    /// none), and again whenever the cluster says its session expired.
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
            session: None,
            seq: 0,
            nonce: random_u64(),
            route: Route::new(servers, start),
            timeout,
            rtt: RttEstimate::new(max_attempt(timeout)),
            buf: vec![0u8; MAX_DATAGRAM + 1],
            cookies: HashMap::new(),
        })
    }

    /// The id this client seals its datagrams with (random).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client's session, once registered.
    pub fn session(&self) -> Option<u64> {
        self.session
    }

    /// Runs one command to completion (see [`CommandOutcome`]).
    pub async fn execute(&mut self, op: KvOp) -> CommandOutcome {
        if let KvOp::Put { value: v, .. } | KvOp::Cas { new: v, .. } = &op
            && v.len() > MAX_VALUE_BYTES
        {
            return CommandOutcome::Failed(format!(
                "value too large: {} bytes, and the largest value a get can return is {MAX_VALUE_BYTES} bytes",
                v.len()
            ));
        }
        let deadline = Instant::now() + self.timeout;
        if matches!(op, KvOp::Get { .. }) {
            return self.run(ClientOp::Kv(op), 0, 0, deadline).await.0;
        }
        loop {
            let session = match self.session {
                Some(s) => s,
                None => match self.register(deadline).await {
                    Ok(s) => s,
                    Err(outcome) => return outcome,
                },
            };
            self.seq += 1;
            let (outcome, unknown_session) = self.run(ClientOp::Kv(op.clone()), session, self.seq, deadline).await;
            match unknown_session {
                // The session expired before any copy of the command could
                // have been applied in it: register again and resend.
                Some(false) => self.session = None,
                // A copy may have been applied before it expired.
                Some(true) => {
                    self.session = None;
                    return CommandOutcome::Unknown;
                }
                None => return outcome,
            }
        }
    }

    /// Registers a new session (its output is its id).
    async fn register(&mut self, deadline: Instant) -> Result<u64, CommandOutcome> {
        let id = random_u64();
        match self.run(ClientOp::Register { id }, 0, 0, deadline).await.0 {
            CommandOutcome::Ok(KvOutput::Registered { session }) => {
                self.session = Some(session);
                self.seq = 0;
                Ok(session)
            }
            CommandOutcome::Ok(other) => Err(CommandOutcome::Failed(format!("unexpected answer {other}"))),
            failed @ CommandOutcome::Failed(_) => Err(failed),
            CommandOutcome::Unknown => Err(CommandOutcome::Unknown),
        }
    }

    /// Sends `op` until a node answers it or `deadline` passes. The second
    /// value is `Some` if a node said the session is unknown, with whether
    /// a copy of the command may have been applied before that.
    async fn run(&mut self, op: ClientOp, session: u64, seq: u64, deadline: Instant) -> (CommandOutcome, Option<bool>) {
        // A request datagram went out (any copy may yet be proposed), and an
        // attempt went unanswered (a copy may already have been proposed).
        let (mut sent, mut unanswered) = (false, false);
        let mut problem = String::from("timed out before sending");
        // Redirects in a row: hints can point in circles while leadership moves.
        let mut redirects = 0u32;
        // Every attempt of this command has a nonce from here on: a late
        // answer to an earlier attempt answers the command too.
        let first_nonce = self.nonce.wrapping_add(1);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.nonce = self.nonce.wrapping_add(1);
            let nonce = self.nonce;
            let target = self.route.target();
            let cookie = self.cookies.get(&target).copied();
            let request = match cookie {
                Some(cookie) => Packet::SessionRequest(SessionRequest { nonce, cookie, session, seq, op: op.clone() }),
                None => Packet::CookieRequest { nonce, padding: Chunk(&[0; COOKIE_REQUEST_PADDING]) },
            };
            let frame = packet::encode(&request).map(|p| self.key.seal(self.id, &p)).unwrap_or_default();
            if frame.is_empty() || frame.len() > MAX_DATAGRAM {
                return (
                    CommandOutcome::Failed(format!("command too large for one datagram ({MAX_DATAGRAM} bytes)")),
                    None,
                );
            }
            if let Err(e) = self.socket.send_to(&frame, target).await {
                problem = format!("cannot send to {target}: {e}");
                self.route.rotate(now);
                tokio::time::sleep(Duration::from_millis(50).min(deadline - now)).await;
                continue;
            }
            // A timeout after only cookie requests is still reported as an
            // unknown outcome ("timeout"), as for any unanswered command.
            sent = true;
            // One attempt waits about a round trip (see `rtt`), then the next server is tried.
            let attempt_end = deadline.min(now + self.rtt.timeout());
            let Some(answer) = self.wait_reply(first_nonce, nonce, seq, attempt_end).await else {
                // Without a cookie the node acts on nothing: only an attempt
                // that carried one may have been proposed.
                unanswered |= cookie.is_some();
                self.rtt.missed();
                self.route.no_answer(Instant::now());
                continue;
            };
            let Reply { node, from, nonce: answered, result, leader } = match answer {
                // A first cookie, or a fresh one for an expired cookie: the
                // request was not acted on. Send it again at once.
                Answer::Cookie(c) => {
                    self.rtt.observe(now.elapsed());
                    self.cookies.insert(target, c);
                    continue;
                }
                Answer::Reply(reply) => reply,
            };
            if answered == nonce {
                self.rtt.observe(now.elapsed());
            } else {
                self.rtt.heard();
            }
            self.route.answered(node, from);
            redirects = if matches!(result, ClientResult::NotLeader { .. }) { redirects + 1 } else { 0 };
            let pause = match result {
                ClientResult::Done(output) => {
                    if let Some((leader, addr)) = leader {
                        self.route.follow(leader, addr.parse().ok(), Instant::now());
                    }
                    return (CommandOutcome::Ok(output), None);
                }
                ClientResult::Rejected(why) if !unanswered => return (CommandOutcome::Failed(why), None),
                ClientResult::Rejected(_) => return (CommandOutcome::Unknown, None),
                ClientResult::UnknownSession => return (CommandOutcome::Unknown, Some(unanswered)),
                ClientResult::Full { limit } if !unanswered => {
                    let why = format!("the leader holds its limit of {limit} uncommitted bytes; try again later");
                    return (CommandOutcome::Failed(why), None);
                }
                ClientResult::Full { .. } => Duration::from_millis(20),
                ClientResult::NotLeader { leader, addr } => {
                    self.route.redirect(leader, addr.and_then(|a| a.parse().ok()), Instant::now());
                    match (leader, redirects) {
                        (Some(_), 0..=2) => Duration::ZERO,
                        (Some(_), _) => Duration::from_millis(10),
                        // An election is under way: it usually ends within tens of milliseconds.
                        (None, _) => Duration::from_millis(20),
                    }
                }
                ClientResult::Retry(reason) => {
                    if reason == RetryReason::Busy {
                        Duration::from_millis(20)
                    } else {
                        unanswered |= reason == RetryReason::Unknown;
                        Duration::from_millis(2)
                    }
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(left)).await;
        }
        (if sent { CommandOutcome::Unknown } else { CommandOutcome::Failed(problem) }, None)
    }

    /// Waits until `until` for a reply to command `seq`, to any of its
    /// attempts (nonces `first..=last`), or a cookie for the latest attempt;
    /// skips anything else.
    async fn wait_reply(&mut self, first: u64, last: u64, seq: u64, until: Instant) -> Option<Answer> {
        loop {
            let received = tokio::time::timeout_at(until.into(), self.socket.recv_from(&mut self.buf)).await.ok()?;
            let Ok((n, from)) = received else {
                // An ICMP error surfacing on the socket: keep waiting, briefly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let Ok((sender, payload)) = self.key.open(&self.buf[..n]) else { continue };
            let (r, leader) = match packet::decode(payload) {
                Ok(Packet::SessionReply(r)) => (r, None),
                Ok(Packet::SessionReplyFollowing { reply, leader, addr }) => (reply, Some((leader, addr))),
                Ok(Packet::CookieReply { nonce: n, cookie }) if n == last => return Some(Answer::Cookie(cookie)),
                _ => continue,
            };
            if r.nonce.wrapping_sub(first) <= last.wrapping_sub(first) && r.seq == seq {
                return Some(Answer::Reply(Reply { node: sender, from, nonce: r.nonce, result: r.result, leader }));
            }
        }
    }
}
