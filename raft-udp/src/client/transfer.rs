//! Moving leadership to a chosen node: find the leader, ask it to hand
//! over, and watch the statuses until the chosen node leads.

use super::{bind_for, fetch_cookie, query_status};
use crate::packet::{self, Cookie, MAX_DATAGRAM, NodeStatus, Packet, TransferResult};
use crate::random_u64;
use raft_host::ClusterKey;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long one status round waits for the nodes.
const STATUS_ROUND: Duration = Duration::from_millis(300);
/// How long one request waits for the leader's answer (a transfer ends
/// within an election timeout).
const ANSWER_WAIT: Duration = Duration::from_millis(1500);
/// Pause between status rounds while nothing is to be done.
const PAUSE: Duration = Duration::from_millis(50);

/// The node that leads once the transfer is done, and its term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leading {
    /// The node's id.
    pub leader: u64,
    /// Its term.
    pub term: u64,
}

/// Why leadership did not move.
#[derive(Debug)]
pub enum TransferLeaderError {
    /// The leader refused, or its transfer did not finish (the target is
    /// not a member, is down, or did not catch up in time).
    Refused(String),
    /// The timeout passed first; the last thing seen.
    TimedOut(String),
    /// No client socket could be opened.
    Io(io::Error),
}

impl fmt::Display for TransferLeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferLeaderError::Refused(why) => write!(f, "transfer refused: {why}"),
            TransferLeaderError::TimedOut(last) => write!(f, "timed out ({last})"),
            TransferLeaderError::Io(e) => write!(f, "cannot open a client socket: {e}"),
        }
    }
}

impl std::error::Error for TransferLeaderError {}

/// Node `to` leading, as the answering nodes report it: it says it leads,
/// or a node names it leader of its term (highest term wins).
fn leading(answers: &[Option<NodeStatus>], to: u64) -> Option<Leading> {
    let said = answers.iter().flatten().filter(|s| (s.id == to && s.role == "leader") || s.leader == Some(to));
    let best = said.max_by_key(|s| s.term)?;
    // A higher term elsewhere means `to` led only an older one.
    let newest = answers.iter().flatten().map(|s| s.term).max().unwrap_or(0);
    (best.term == newest).then_some(Leading { leader: to, term: best.term })
}

/// Moves leadership of the cluster reachable at `servers` to node `to`,
/// giving up after `timeout`. Returns once `to` leads (at once if it
/// already does).
pub async fn transfer_leader(
    servers: &[SocketAddr],
    key: &ClusterKey,
    to: u64,
    timeout: Duration,
) -> Result<Leading, TransferLeaderError> {
    let Some(&first) = servers.first() else {
        return Err(TransferLeaderError::Io(io::Error::new(io::ErrorKind::InvalidInput, "no server address given")));
    };
    let socket = bind_for(first).await.map_err(TransferLeaderError::Io)?;
    let me = random_u64();
    let mut nonce = random_u64();
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no node answered");
    // The leader (id, term) that already handed over: wait for the election.
    let mut handed: Option<(u64, u64)> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut cookies: HashMap<SocketAddr, Cookie> = HashMap::new();
    while Instant::now() < deadline {
        let round = STATUS_ROUND.min(deadline.saturating_duration_since(Instant::now()));
        let answers = query_status(servers, key, round).await.map_err(TransferLeaderError::Io)?;
        if let Some(done) = leading(&answers, to) {
            return Ok(done);
        }
        let leader = servers
            .iter()
            .zip(&answers)
            .filter_map(|(a, s)| s.as_ref().filter(|s| s.role == "leader").map(|s| (*a, s)))
            .max_by_key(|(_, s)| s.term);
        let Some((addr, status)) = leader.filter(|(_, s)| handed != Some((s.id, s.term))) else {
            if answers.iter().any(Option::is_some) && handed.is_none() {
                last = String::from("no leader");
            }
            tokio::time::sleep(PAUSE.min(deadline.saturating_duration_since(Instant::now()))).await;
            continue;
        };
        last = format!("node {} leads term {}", status.id, status.term);
        // The leader acts only for an address proven by its cookie.
        let cookie = match cookies.get(&addr) {
            Some(c) => *c,
            None => match fetch_cookie(&socket, addr, key, me, deadline.min(Instant::now() + ANSWER_WAIT)).await {
                Some(c) => *cookies.entry(addr).or_insert(c),
                None => continue,
            },
        };
        nonce = nonce.wrapping_add(1);
        let Some(payload) = packet::encode(&Packet::TransferRequest { nonce, cookie, to }) else { break };
        if socket.send_to(&key.seal(me, &payload), addr).await.is_err() {
            tokio::time::sleep(PAUSE).await;
            continue;
        }
        let until = deadline.min(Instant::now() + ANSWER_WAIT);
        let answer = wait_reply(&socket, key, nonce, until, &mut buf).await;
        if answer.is_none() {
            // The cookie may have expired (the node then answers with a new
            // one, which `wait_reply` skips): ask for a fresh one next time.
            cookies.remove(&addr);
        }
        match answer {
            Some(TransferResult::HandedOver) => {
                handed = Some((status.id, status.term));
                last = format!("node {} handed over; waiting for node {to} to lead", status.id);
            }
            Some(TransferResult::InProgress { to: t }) if t == to => {
                tokio::time::sleep(PAUSE).await;
            }
            Some(TransferResult::InProgress { to: t }) => {
                let why = format!("node {} is already transferring leadership to node {t}", status.id);
                return Err(TransferLeaderError::Refused(why));
            }
            Some(TransferResult::Failed(why)) => return Err(TransferLeaderError::Refused(why)),
            // Leadership moved meanwhile, or no answer: look again.
            Some(TransferResult::NotLeader { .. }) | None => {}
        }
    }
    Err(TransferLeaderError::TimedOut(last))
}

/// Waits for the answer to request `nonce` until `until`; skips anything else.
async fn wait_reply(
    socket: &tokio::net::UdpSocket,
    key: &ClusterKey,
    nonce: u64,
    until: Instant,
    buf: &mut [u8],
) -> Option<TransferResult> {
    loop {
        let received = tokio::time::timeout_at(until.into(), socket.recv_from(buf)).await.ok()?;
        let Ok((n, _)) = received else {
            tokio::time::sleep(Duration::from_millis(5)).await; // an ICMP error surfacing
            continue;
        };
        let Ok((_, payload)) = key.open(&buf[..n]) else { continue };
        if let Ok(Packet::TransferReply { nonce: got, result }) = packet::decode(payload)
            && got == nonce
        {
            return Some(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counters;

    fn st(id: u64, role: &str, term: u64, leader: Option<u64>) -> Option<NodeStatus> {
        let role = role.into();
        let dropped = Counters::default();
        Some(NodeStatus {
            id,
            role,
            term,
            leader,
            commit_index: 0,
            last_applied: 0,
            last_log_index: 0,
            snapshot_index: 0,
            dropped,
            sessions: 0,
            session_bytes: 0,
            session_limit_bytes: 0,
            unproven: 0,
            voters: vec![],
            learners: vec![],
        })
    }

    #[test]
    fn leading_needs_the_newest_term() {
        let now = [st(1, "follower", 5, Some(2)), st(2, "leader", 5, Some(2)), None];
        assert_eq!(leading(&now, 2), Some(Leading { leader: 2, term: 5 }));
        assert_eq!(leading(&now, 1), None);
        // Node 2 led term 5, but node 3 has moved on to term 6.
        let stale = [st(1, "follower", 5, Some(2)), None, st(3, "candidate", 6, None)];
        assert_eq!(leading(&stale, 2), None);
        // Node 3 is not among the servers asked, but node 1 follows it.
        assert_eq!(leading(&[st(1, "follower", 7, Some(3))], 3), Some(Leading { leader: 3, term: 7 }));
    }
}
