//! The service side of the socket: client requests become proposals through
//! the node's [`Handle`], status requests are answered from its status.
//!
//! # Who gets how many bytes back
//!
//! A request from an address that has not proven it receives datagrams
//! there gets at most a [`Packet::CookieReply`], and only if that reply is
//! no larger than the request ([`crate::cookie`]); otherwise nothing. Every
//! other answer (command outcomes, redirects, values, status) goes only to
//! requests carrying a valid cookie for their source address.
//!
//! # What reaches the log
//!
//! A command in a session ([`Packet::SessionRequest`]) is proposed only if
//! the leader's applied state cannot answer it: a command at or below its
//! session's applied sequence number is answered from the session, an
//! unknown or expired session is told so (confirmed with a linearizable
//! read, so a registration this node has not applied yet is not missed),
//! and a copy of a command still in flight waits for the first one. A
//! registration is proposed once per registration id this node saw within a
//! cookie's lifetime. So a replayed datagram never adds an entry.

use super::registrations::Registrations;
use super::sessions::{self, Key, Work};
use crate::cookie::{COOKIE_LIFETIME, CookieJar};
use crate::packet::{
    self, ClientOp, ClientReply, ClientResult, Cookie, MAX_VALUE_BYTES, NodeStatus, Packet, RetryReason, SessionRequest,
};
use raft_core::Role;
use raft_host::{KvError, KvOp, KvOutput, KvStore, SessionLimits};
use raft_net::udp::AppDatagram;
use raft_net::{AppGauge, Handle, ProposeError, RoleInfo, Status, UdpApp};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most requests waiting for their outcome; beyond it clients are told to retry.
pub(crate) const MAX_PENDING: usize = 65_536;

pub(crate) type KvResult = Result<Result<KvOutput, KvError>, ProposeError>;

/// The session protocol's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Written into every registration this node proposes as leader.
    pub sessions: SessionLimits,
    /// Most bytes of client entries proposed and not yet applied; beyond it
    /// clients are told the leader is full.
    pub max_uncommitted_bytes: u64,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits { sessions: SessionLimits::DEFAULT, max_uncommitted_bytes: 16 << 20 }
    }
}

/// The store's session table: sessions, their bytes and the table's bound
/// (`None` if the node cannot read its store: stopped).
async fn session_table(handle: &Handle<KvStore>) -> Option<[u64; 3]> {
    handle
        .local_read(|kv: &KvStore| [kv.session_count() as u64, kv.session_bytes(), kv.session_limits().max_bytes])
        .await
        .ok()
}

/// Waits up to `within` until the node knows a leader (itself or another);
/// false if it does not by then, or stopped.
async fn leader_known(handle: &Handle<KvStore>, within: Duration) -> bool {
    let mut role = handle.role_watch();
    let known = role.wait_for(|r| r.leader.is_some());
    tokio::time::timeout(within, known).await.is_ok_and(|r| r.is_some())
}

/// Where to send the answer to a client's command in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiter {
    seq: u64,
    nonce: u64,
    addr: SocketAddr,
}

/// A finished request: what it was, the bytes it had proposed, the outcome.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) key: Key,
    pub(crate) seq: u64,
    pub(crate) bytes: u64,
    pub(crate) result: KvResult,
}

/// The requests in flight, at most one per session or registration.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) handle: Handle<KvStore>,
    pub(crate) app: UdpApp,
    pub(crate) peers: HashMap<u64, SocketAddr>,
    in_flight: HashMap<Key, Waiter>,
    pending: usize,
    uncommitted: u64,
    limits: ServiceLimits,
    cookies: CookieJar,
    registrations: Registrations,
    /// Requests from unproven addresses left unanswered (even a cookie
    /// reply would have been larger).
    unproven: u64,
    /// `raft_kv_sessions`, `raft_kv_session_bytes`, `raft_kv_session_limit_bytes`
    /// in the node's metrics, refreshed by [`Service::refresh_session_gauges`].
    session_gauges: [AppGauge; 3],
    /// How long a request that reaches this node during an election waits
    /// for its outcome (the longest election timeout).
    wait_for_leader: Duration,
    done: tokio::sync::mpsc::UnboundedSender<Finished>,
    /// The leader this node follows and its configured address, named in
    /// the answers it serves (see [`Service::note_role`]).
    following: Option<(u64, String)>,
}

impl Service {
    pub(crate) fn new(
        handle: Handle<KvStore>,
        app: UdpApp,
        peers: HashMap<u64, SocketAddr>,
        limits: ServiceLimits,
        wait_for_leader: Duration,
    ) -> (Service, tokio::sync::mpsc::UnboundedReceiver<Finished>) {
        let (done, finished) = tokio::sync::mpsc::unbounded_channel();
        let gauge = |name, help| handle.app_gauge(name, help).expect("a valid metric name of our own");
        let session_gauges = [
            gauge("kv_sessions", "Client sessions in the store's session table"),
            gauge("kv_session_bytes", "Bytes the store's session table accounts for"),
            gauge("kv_session_limit_bytes", "The session table's bound in bytes (oldest idle sessions expire first)"),
        ];
        let service = Service {
            handle,
            app,
            peers,
            in_flight: HashMap::new(),
            pending: 0,
            uncommitted: 0,
            limits,
            cookies: CookieJar::new(COOKIE_LIFETIME),
            registrations: Registrations::new(COOKIE_LIFETIME),
            unproven: 0,
            session_gauges,
            wait_for_leader,
            done,
            following: None,
        };
        (service, finished)
    }

    /// Sets the session gauges from the store (read on the node's task, so
    /// done in a task of its own).
    pub(crate) fn refresh_session_gauges(&self) {
        let (handle, gauges) = (self.handle.clone(), self.session_gauges.clone());
        tokio::spawn(async move {
            if let Some(table) = session_table(&handle).await {
                for (g, v) in gauges.iter().zip(table) {
                    g.set(v);
                }
            }
        });
    }

    fn reply(&self, addr: SocketAddr, packet: &Packet<'_>) {
        if let Some(payload) = packet::encode(packet) {
            self.app.send(addr, &payload);
        }
    }

    /// Handles one datagram that is not peer traffic.
    pub(crate) fn datagram(&mut self, d: AppDatagram) {
        let Ok(packet) = packet::decode(&d.payload) else {
            self.app.count(|c| c.malformed += 1);
            return;
        };
        let size = d.payload.len();
        match packet {
            Packet::CookieRequest { nonce, .. }
            | Packet::StatusRequest { nonce }
            | Packet::ClientRequest(packet::ClientRequest { nonce, .. }) => self.challenge(d.from, nonce, size),
            Packet::StatusQuery { nonce, cookie } => self.status_query(d.from, nonce, &cookie, size),
            Packet::SessionRequest(req) => self.request(d.from, req, size),
            Packet::TransferRequest { nonce, cookie, to } => {
                if !self.proven(d.from, &cookie) {
                    return self.challenge(d.from, nonce, size);
                }
                super::transfer::spawn(self.handle.clone(), self.app.clone(), d.from, nonce, to);
            }
            Packet::MemberRequest { nonce, cookie, op } => {
                if !self.proven(d.from, &cookie) {
                    return self.challenge(d.from, nonce, size);
                }
                super::members::request(&self.handle, &self.app, d.from, nonce, op);
            }
            // A peer fragment that raft-net did not take is malformed.
            Packet::Peer(_) => self.app.count(|c| c.malformed += 1),
            Packet::ClientReply(_)
            | Packet::StatusReply { .. }
            | Packet::CookieReply { .. }
            | Packet::SessionReply(_)
            | Packet::TransferReply { .. }
            | Packet::MemberReply { .. }
            | Packet::SessionReplyFollowing { .. } => self.app.count(|c| c.unexpected += 1),
        }
    }

    /// Answers an unproven address with a cookie, if that is no more bytes
    /// than it sent (payloads are sealed alike, so comparing them compares
    /// the datagrams).
    fn challenge(&mut self, from: SocketAddr, nonce: u64, request_len: usize) {
        let cookie = self.cookies.issue(from, Instant::now());
        match packet::encode(&Packet::CookieReply { nonce, cookie }) {
            Some(reply) if reply.len() <= request_len => self.app.send(from, &reply),
            _ => self.unproven += 1,
        }
    }

    fn proven(&self, from: SocketAddr, cookie: &Cookie) -> bool {
        self.cookies.check(from, cookie, Instant::now())
    }

    fn status_query(&mut self, from: SocketAddr, nonce: u64, cookie: &Cookie, size: usize) {
        if !self.proven(from, cookie) {
            return self.challenge(from, nonce, size);
        }
        let (handle, app, unproven) = (self.handle.clone(), self.app.clone(), self.unproven);
        tokio::spawn(async move {
            let Some([sessions, bytes, limit]) = session_table(&handle).await else { return };
            let mut status = node_status(&handle.status());
            status.sessions = sessions;
            status.session_bytes = bytes;
            status.session_limit_bytes = limit;
            status.unproven = unproven;
            if let Some(payload) = packet::encode(&Packet::StatusReply { nonce, status }) {
                app.send(from, &payload);
            }
        });
    }

    fn request(&mut self, from: SocketAddr, req: SessionRequest, size: usize) {
        let SessionRequest { nonce, cookie, session, seq, op } = req;
        if !self.proven(from, &cookie) {
            return self.challenge(from, nonce, size);
        }
        let answer = |s: &Service, result| s.reply_following(from, ClientReply { nonce, seq, result });
        let role = self.handle.role();
        self.note_role(role);
        // The leader proposes; a follower that knows the leader forwards the
        // command to it (`Config::forward_proposals`) or asks it for a read
        // index, and answers when it has applied the outcome. With no leader
        // known (an election is under way) the request waits for one, up to
        // `wait_for_leader`: turned away, the client would only ask again a
        // little later, and the command can go the moment the election ends.
        // Any other node (a learner) names the leader at once.
        let me = self.handle.id();
        let following = role.role == Role::Follower && role.leader.is_some_and(|l| l != me);
        let electing = role.leader.is_none();
        if role.role != Role::Leader && !following && !electing {
            return answer(self, self.not_leader(role.leader.map(|l| l.0)));
        }
        if let ClientOp::Kv(KvOp::Put { value: v, .. } | KvOp::Cas { new: v, .. }) = &op
            && v.len() > MAX_VALUE_BYTES
        {
            let why = format!(
                "value too large: {} bytes, and the largest value a get can return is {MAX_VALUE_BYTES} bytes",
                v.len()
            );
            return answer(self, ClientResult::Rejected(why));
        }
        let key = match &op {
            ClientOp::Register { id } => Key::Register(*id),
            ClientOp::Kv(KvOp::Get { .. }) => Key::Read(nonce, from),
            ClientOp::Kv(_) => Key::Session(session),
        };
        if let Some(w) = self.in_flight.get_mut(&key).filter(|w| w.seq == seq) {
            // Already under way; answered when done, at the newest address.
            w.nonce = nonce;
            w.addr = from;
            return;
        }
        if let Key::Register(id) = key
            && let Some(session) = self.registrations.session(id, Instant::now())
        {
            return answer(self, ClientResult::Done(KvOutput::Registered { session }));
        }
        if self.pending >= MAX_PENDING {
            return answer(self, ClientResult::Retry(RetryReason::Busy));
        }
        let work = sessions::work(key, session, seq, op, self.limits.sessions);
        let bytes = work.entry_len() as u64;
        if self.uncommitted + bytes > self.limits.max_uncommitted_bytes {
            return answer(self, ClientResult::Full { limit: self.limits.max_uncommitted_bytes });
        }
        if let Key::Register(id) = key {
            self.registrations.proposed(id, Instant::now());
        }
        self.in_flight.insert(key, Waiter { seq, nonce, addr: from });
        self.pending += 1;
        self.uncommitted += bytes;
        self.spawn(key, seq, bytes, work, electing.then_some(self.wait_for_leader));
    }

    /// Runs `work` on its own task, first waiting up to `wait_for_leader`
    /// (if given) for a leader to be known.
    fn spawn(&self, key: Key, seq: u64, bytes: u64, work: Work, wait_for_leader: Option<Duration>) {
        let (handle, done) = (self.handle.clone(), self.done.clone());
        tokio::spawn(async move {
            let elected = match wait_for_leader {
                Some(within) => leader_known(&handle, within).await,
                None => true,
            };
            let result = match elected {
                true => work.run(&handle).await,
                false => Err(ProposeError::NotLeader { leader_hint: None }),
            };
            let _ = done.send(Finished { key, seq, bytes, result });
        });
    }

    /// Answers a finished request (if its client still waits for it).
    pub(crate) fn finished(&mut self, f: Finished) {
        self.pending -= 1;
        self.uncommitted -= f.bytes;
        if let (Key::Register(id), Ok(Ok(KvOutput::Registered { session }))) = (f.key, &f.result) {
            self.registrations.applied(id, *session, Instant::now());
        }
        let Some(w) = self.in_flight.get(&f.key).filter(|w| w.seq == f.seq).cloned() else { return };
        self.in_flight.remove(&f.key);
        let result = match f.result {
            Ok(Ok(output)) => ClientResult::Done(output),
            Ok(Err(KvError::UnknownSession { .. })) => ClientResult::UnknownSession,
            Ok(Err(e)) => ClientResult::Rejected(e.to_string()),
            Err(ProposeError::NotLeader { leader_hint }) => self.not_leader(leader_hint.map(|l| l.0)),
            Err(ProposeError::Superseded { .. }) => ClientResult::Retry(RetryReason::Superseded),
            Err(e @ ProposeError::TooLarge { .. }) => ClientResult::Rejected(e.to_string()),
            Err(_) => ClientResult::Retry(RetryReason::Unknown),
        };
        self.note_role(self.handle.role());
        self.reply_following(w.addr, ClientReply { nonce: w.nonce, seq: f.seq, result });
    }

    /// Sends `reply`, naming the leader if this node serves as its
    /// follower (see [`Service::note_role`]) and the command was done.
    fn reply_following(&self, addr: SocketAddr, reply: ClientReply) {
        let leader = self.following.as_ref().filter(|_| matches!(reply.result, ClientResult::Done(_)));
        let packet = match leader {
            Some((leader, leader_addr)) => {
                Packet::SessionReplyFollowing { reply, leader: *leader, addr: leader_addr.clone() }
            }
            None => Packet::SessionReply(reply),
        };
        match packet::encode(&packet) {
            // A long configured address must not push a large value's
            // answer past one datagram: then the leader goes unnamed.
            Some(p) if p.len() + raft_host::auth::FRAME_OVERHEAD > packet::MAX_DATAGRAM => {
                if let Packet::SessionReplyFollowing { reply, .. } = packet {
                    self.reply(addr, &Packet::SessionReply(reply));
                }
            }
            Some(p) => self.app.send(addr, &p),
            None => {}
        }
    }

    /// Notes the leader this node follows in `role` (none while it leads,
    /// runs for election, or knows of no leader), looking its address up
    /// when the leader changed. Called before every answer; the request
    /// path reads the role anyway, and a lookup copies the node's status.
    fn note_role(&mut self, role: RoleInfo) {
        let leader = match (role.role, role.leader) {
            (Role::Follower, Some(l)) if l != self.handle.id() => Some(l.0),
            _ => None,
        };
        if self.following.as_ref().map(|(l, _)| *l) != leader {
            self.following = leader.and_then(|l| self.leader_addr(l).map(|a| (l, a)));
        }
    }

    /// Forgets the leader's address, so that the next answer looks it up
    /// again (a configuration may have changed it).
    pub(crate) fn forget_leader_addr(&mut self) {
        self.following = None;
    }

    /// The address of node `leader` as configured on this node: the
    /// configuration's first (the leader may have joined at runtime), then
    /// the peer list's.
    fn leader_addr(&self, leader: u64) -> Option<String> {
        let status = self.handle.status();
        super::members::member_addr(&status, raft_core::NodeId(leader))
            .or_else(|| self.peers.get(&leader).map(|a| a.to_string()))
    }

    fn not_leader(&self, leader: Option<u64>) -> ClientResult {
        let id = self.handle.id().0;
        let leader = leader.filter(|l| *l != id);
        ClientResult::NotLeader { leader, addr: leader.and_then(|l| self.leader_addr(l)) }
    }
}

/// The status a node reports to `raft-udp status` (the session fields are
/// filled in from the store by the caller).
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
        sessions: 0,
        session_bytes: 0,
        session_limit_bytes: 0,
        unproven: 0,
        voters: s.membership.voters.iter().map(|id| id.0).collect(),
        learners: s.membership.learners.iter().map(|id| id.0).collect(),
    }
}
