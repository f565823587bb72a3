//! raft-conformance: the adapter conformance suite, scenarios written once
//! against [`ClusterUnderTest`] and run against every runtime and transport
//! (tokio and smol, TCP and UDP, and clusters mixing runtimes).
//!
//! A package of its own so that the pure simulator crate (raft-tests) pulls
//! in no async runtime.
//!
//! * [`ClusterUnderTest`] is what a scenario needs from a cluster: start,
//!   kill, restart and shut down members, propose key-value commands through
//!   a member, read a member's status and local state, and cut or restore
//!   the link between two members. Every method is synchronous and takes
//!   `&self`, so concurrent client threads can use a cluster while the
//!   scenario injects faults, and an implementation may run its nodes in
//!   this process (see [`inproc`]) or as child processes speaking a client
//!   protocol (nodes told to reach their peers through a [`FaultProxy`]).
//! * [`scenarios`] holds the scenarios; `tests/conformance.rs` runs each of
//!   them on every [`inproc::Adapter`] and on clusters mixing runtimes.

pub mod inproc;
pub mod proxy;
pub mod scenarios;

pub use proxy::FaultProxy;

use raft_core::Role;
use raft_host::kv::{KvCommand, KvError, KvOp, KvOutput};
use raft_host::secure::KeyFile;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use raft_tests::wait::{poll_until, wait_for};

/// What a state machine answered for one command.
pub type KvResult = Result<KvOutput, KvError>;

/// One member's view of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Its id.
    pub id: u64,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: u64,
    /// The leader it knows for that term.
    pub leader: Option<u64>,
    /// Its commit index.
    pub commit_index: u64,
    /// Its last applied index.
    pub last_applied: u64,
    /// The index of the last entry in its log (durable or not).
    pub last_log_index: u64,
    /// Datagrams its UDP transport dropped (`None` over TCP).
    pub datagrams_dropped: Option<u64>,
    /// The target of the leadership transfer it is running, if any.
    pub transfer_target: Option<u64>,
}

/// Why a proposal through one member returned no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not the leader; definitely not applied. Retry at the hint.
    NotLeader(Option<u64>),
    /// The outcome is unknown (timeout): it may or may not have been applied.
    Unknown,
    /// Refused for another reason; definitely not applied.
    Rejected(String),
    /// The member is not running.
    Down,
}

/// A cluster of key-value nodes under test. Members are numbered by
/// [`ids`](ClusterUnderTest::ids); none runs until started.
pub trait ClusterUnderTest: Send + Sync {
    /// A name for messages ("tokio", "smol", "mixed\[tokio,smol,tokio\]"...).
    fn name(&self) -> String;
    /// The members' ids.
    fn ids(&self) -> Vec<u64>;
    /// Starts member `id` (again, from its data directory, after a kill or
    /// shutdown). Panics if it cannot.
    fn start(&self, id: u64);
    /// Stops member `id` as abruptly as the implementation can (a process
    /// is killed; an in-process node is stopped without any goodbye to its
    /// peers). Its durable state stays for a restart.
    fn kill(&self, id: u64);
    /// Stops member `id` gracefully and returns how many of its tasks (and
    /// threads) were still running afterwards: 0 is the promise.
    fn shutdown(&self, id: u64) -> usize;
    /// Tasks still alive in the runtimes the implementation owns, if it
    /// can count them independently of the nodes' own bookkeeping.
    fn runtime_tasks(&self) -> Option<usize>;
    /// Whether member `id` is running.
    fn is_running(&self, id: u64) -> bool;
    /// Member `id`'s view of itself; `None` if it is not running.
    fn status(&self, id: u64) -> Option<NodeView>;
    /// Proposes `cmd` through member `id` and waits for the outcome (up to
    /// the node's own proposal timeout, then [`Failure::Unknown`]).
    fn propose(&self, id: u64, cmd: &KvCommand) -> Result<KvResult, Failure>;
    /// Asks member `id` to hand its leadership to member `to`, and waits
    /// until the transfer has ended: `Ok` once `to` campaigned;
    /// [`Failure::NotLeader`] if `id` does not lead; [`Failure::Unknown`]
    /// if `to` did not take over in time (`id` leads on);
    /// [`Failure::Rejected`] for any other refusal; [`Failure::Down`].
    fn transfer_leadership(&self, id: u64, to: u64) -> Result<(), Failure>;
    /// Member `id`'s local, possibly stale value of `key`; `None` if the
    /// member is not running.
    fn local_get(&self, id: u64, key: &str) -> Option<Option<String>>;
    /// Cuts (`up = false`) or restores the link carrying `from`'s messages to `to`.
    fn set_link(&self, from: u64, to: u64, up: bool);
    /// Where member `id` itself accepts peer connections (not through the
    /// proxy); `None` if it is not running.
    fn direct_addr(&self, id: u64) -> Option<SocketAddr>;
    /// Starts capturing the datagrams members send each other (UDP).
    fn start_capture(&self);
    /// Stops capturing; what was captured, as `((from, to), datagram)`.
    fn take_capture(&self) -> Vec<((u64, u64), Vec<u8>)>;
    /// The key file of the cluster (key and incarnation).
    fn cluster_key(&self) -> KeyFile;
    /// How the members reach each other.
    fn transport(&self) -> inproc::TransportKind;
}

/// The leader all running members of `among` agree on (same leader, same
/// term, and the leader itself says so).
pub fn agreed_leader(c: &dyn ClusterUnderTest, among: &[u64]) -> Option<u64> {
    let views: Vec<NodeView> = among.iter().filter_map(|&i| c.status(i)).collect();
    let first = views.first()?;
    let leader = first.leader?;
    let agree = views.iter().all(|v| v.leader == Some(leader) && v.term == first.term);
    let leader_says = views.iter().any(|v| v.id == leader && v.role == Role::Leader);
    (agree && leader_says && views.len() == among.len()).then_some(leader)
}

/// Waits for [`agreed_leader`].
pub fn wait_leader(c: &dyn ClusterUnderTest, among: &[u64], limit: Duration) -> u64 {
    wait_for(limit, &format!("{}: a leader agreed on by {among:?}", c.name()), || agreed_leader(c, among))
}

/// Cuts or restores every link between `id` and the other members.
pub fn isolate(c: &dyn ClusterUnderTest, id: u64, isolated: bool) {
    for other in c.ids() {
        if other != id {
            c.set_link(id, other, !isolated);
            c.set_link(other, id, !isolated);
        }
    }
}

/// A session id no other client of this process has used (scenarios may
/// run one after another on the same cluster and its data).
pub fn fresh_client_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A key-value client with an exactly-once session: one command at a time,
/// retried with the same sequence number until it has an answer.
#[derive(Debug)]
pub struct Client {
    /// The session's client id.
    pub id: u64,
    seq: u64,
    target: u64,
}

impl Client {
    /// A client with a fresh session id, first trying member `first`.
    pub fn new(first: u64) -> Client {
        Client { id: fresh_client_id(), seq: 0, target: first }
    }

    fn next_target(&mut self, ids: &[u64]) {
        let at = ids.iter().position(|&i| i == self.target).unwrap_or(0);
        self.target = ids[(at + 1) % ids.len()];
    }

    /// Runs `op` until it returns or `limit` passes; `None` if the outcome
    /// stayed unknown. Follows leader hints; retries after unknown outcomes
    /// with the same sequence number, which the store answers exactly once.
    pub fn execute(&mut self, c: &dyn ClusterUnderTest, op: KvOp, limit: Duration) -> Option<KvOutput> {
        self.seq += 1;
        let cmd = KvCommand { client: self.id, seq: self.seq, op };
        let deadline = Instant::now() + limit;
        let ids = c.ids();
        while Instant::now() < deadline {
            match c.propose(self.target, &cmd) {
                Ok(Ok(out)) => return Some(out),
                Ok(Err(e)) => panic!("{}: {cmd:?} failed in the state machine: {e}", c.name()),
                Err(Failure::NotLeader(Some(l))) if l != self.target => self.target = l,
                // Perhaps a deposed leader that does not know it yet: ask
                // another member (its hint leads to the current leader).
                Err(Failure::Unknown) => self.next_target(&ids),
                Err(_) => {
                    self.next_target(&ids);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        None
    }

    /// [`execute`](Client::execute), which must succeed within 10 s.
    pub fn must(&mut self, c: &dyn ClusterUnderTest, op: KvOp) -> KvOutput {
        let what = op.to_string();
        self.execute(c, op, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{}: {what} got no answer in 10 s", c.name()))
    }
}
