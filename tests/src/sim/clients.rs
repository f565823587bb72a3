//! Simulated key-value clients, in virtual time, recording a linearizability
//! [`History`].
//!
//! Each client has a random 64-bit id and issues commands with sequence
//! numbers 1, 2, 3..., one at a time. A command is sent to the node the
//! client believes leads; a `NotLeader` answer with a hint redirects it, one
//! without a hint (or a [`ReplyResult::Replaced`] answer: the node lost its
//! leadership) moves it to the next node. If no answer arrives within
//! [`ClientConfig::attempt_timeout`], the client sends the *same*
//! `(client, seq)` to the next node, so a command may reach the log several
//! times; the store's sessions apply it once. After
//! [`ClientConfig::op_timeout`] the client gives up: the operation's outcome
//! stays unknown in the history, and the client moves on to the next `seq`.
//!
//! A get goes through ReadIndex by default ([`ReadPath`]): the node the
//! client reaches calls `Node::read_index` (a follower asks its leader) and
//! answers from its own store once that has applied the read index; no log
//! entry is written. A failed read is retried like a `NotLeader` answer.
//!
//! Requests and replies travel a simple client network: each is lost with
//! the cluster's current drop rate (replies also with
//! [`ClientConfig::reply_drop`]) and otherwise delayed by the cluster's
//! latency range. A node that is down or disconnected neither receives
//! requests nor sends replies; partitions between nodes do not affect clients.
//!
//! ```
//! use raft_core::Duration;
//! use raft_tests::sim::clients::{ClientConfig, Clients};
//! use raft_tests::sim::kv::KvSim;
//! use raft_tests::sim::{Cluster, SimConfig};
//!
//! let mut c = Cluster::new(SimConfig::new(3, 5));
//! let kv = KvSim::install(&mut c);
//! let mut clients = Clients::new(&c, kv, ClientConfig::default());
//! clients.run_for(&mut c, Duration::from_secs(3));
//! clients.stop();
//! clients.finish(&mut c, Duration::from_secs(10));
//! assert!(clients.stats().ok > 10);
//! clients.check_linearizable(&c);
//! ```

use super::cluster::Cluster;
use super::kv::{KvSim, ReplyResult};
use super::rng::SimRng;
use crate::linearizability::{History, OpId};
use raft_core::{Duration, Instant, NodeId, ProposeError, ReadError, Role};
use raft_host::kv::{KvCommand, KvOp, KvOutput, encode_command};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// What the clients do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Random operations over the keys `k0..k{keys-1}`: 40% put, 30% get,
    /// 10% delete, 20% compare-and-swap (usually expecting the value the
    /// client last saw). Every written value is unique.
    Random {
        /// Number of keys.
        keys: usize,
    },
    /// Every client increments the decimal counter under key `counter` with
    /// compare-and-swap from the value it believes current to the next
    /// number (starting from "absent", as in a fresh store), and again; after
    /// a failed swap it uses the value the swap reported, after an unknown
    /// outcome it reads the counter first. The counter's final
    /// value must equal the acknowledged successful swaps plus some of the
    /// swaps of unknown outcome ([`Clients::check_counter`]): a command
    /// applied twice would show.
    Counter,
}

/// How a get reaches the store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// `Node::read_index` at the node reached, then that node's store (no log entry).
    ReadIndex,
    /// As a command through the log, like a write.
    Log,
    /// **Unsafe, to show what the checker catches:** a node that believes
    /// it leads answers from its store at once, with no confirmation; a
    /// stale leader serves stale reads.
    LeaderLocal,
}

/// Client behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// Number of clients.
    pub clients: usize,
    /// The operations.
    pub workload: Workload,
    /// Time without an answer after which the same command is sent to the next node.
    pub attempt_timeout: Duration,
    /// Time after the call when the client gives up (outcome unknown).
    pub op_timeout: Duration,
    /// Shortest pause between an answer and the next call.
    pub think_min: Duration,
    /// Longest pause between an answer and the next call.
    pub think_max: Duration,
    /// Extra probability that a node's reply is lost (on top of the network's drop rate).
    pub reply_drop: f64,
    /// How gets are served.
    pub reads: ReadPath,
    /// Every get attempt goes to a random node rather than the believed
    /// leader (with [`ReadPath::ReadIndex`]: follower reads).
    pub reads_anywhere: bool,
}

impl Default for ClientConfig {
    /// 3 clients, random operations on 3 keys, 300 ms per attempt, give up
    /// after 3 s, 0-20 ms between operations, no extra reply loss, gets
    /// through ReadIndex.
    fn default() -> ClientConfig {
        ClientConfig {
            clients: 3,
            workload: Workload::Random { keys: 3 },
            attempt_timeout: Duration::from_millis(300),
            op_timeout: Duration::from_secs(3),
            think_min: Duration::ZERO,
            think_max: Duration::from_millis(20),
            reply_drop: 0.0,
            reads: ReadPath::ReadIndex,
            reads_anywhere: false,
        }
    }
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Operations called.
    pub calls: u64,
    /// Operations that returned an output.
    pub ok: u64,
    /// Operations given up (outcome unknown).
    pub unknown: u64,
    /// Requests sent (first attempts and retries).
    pub attempts: u64,
    /// Requests that re-sent a command already sent (after a timeout or a redirect).
    pub retries: u64,
    /// Requests or replies lost by the client network (or a node down or disconnected).
    pub lost: u64,
    /// `NotLeader` answers received.
    pub not_leader: u64,
    /// `Replaced` answers received (the node lost its leadership).
    pub replaced: u64,
    /// Failed reads (no read index) answered or refused at once.
    pub reads_failed: u64,
    /// ReadIndex reads a node that did not lead accepted (it asks its leader).
    pub follower_reads: u64,
    /// Replies for an operation the client no longer waits for.
    pub late_replies: u64,
    /// Counter workload: swaps acknowledged as done.
    pub swaps_ok: u64,
    /// Counter workload: swaps whose outcome is unknown.
    pub swaps_unknown: u64,
}

#[derive(Clone, Debug)]
enum Answer {
    Kv(ReplyResult),
    NotLeader(Option<NodeId>),
    /// The leader is handing over leadership: try again shortly.
    Busy,
}

#[derive(Clone, Debug)]
enum What {
    /// A request reaches `node`.
    Arrive { node: NodeId, cmd: KvCommand },
    /// An answer from `node` reaches client `k`.
    Answer { k: usize, node: NodeId, seq: u64, attempt: u64, answer: Answer },
}

#[derive(Debug)]
struct Event {
    at: Instant,
    order: u64,
    what: What,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// A client timer that fired.
enum Timer {
    GiveUp,
    Resend,
    NextNode(NodeId),
    Start,
}

#[derive(Debug)]
struct Call {
    op: KvOp,
    hid: OpId,
    seq: u64,
    deadline: Instant,
    attempt: u64,
    node: NodeId,
    attempt_deadline: Instant,
    retry_at: Option<Instant>,
}

#[derive(Debug)]
struct Client {
    id: u64,
    seq: u64,
    leader: NodeId,
    call: Option<Call>,
    next_op_at: Instant,
    /// Random workload: the value this client last saw per key.
    seen: HashMap<String, Option<String>>,
    /// Counter workload: the counter value, if known (`Some(None)`: absent).
    counter: Option<Option<String>>,
}

/// A set of simulated clients and the history of their operations.
#[derive(Debug)]
pub struct Clients {
    cfg: ClientConfig,
    kv: KvSim,
    rng: SimRng,
    clients: Vec<Client>,
    by_id: HashMap<u64, usize>,
    history: History,
    events: BinaryHeap<Reverse<Event>>,
    order: u64,
    stopped: bool,
    stats: ClientStats,
    /// Nodes the clients may call (`n1..=n{n}`).
    n: u64,
}

/// The key of the [`Workload::Counter`] workload.
pub const COUNTER_KEY: &str = "counter";

impl Clients {
    /// Clients for `c`, answering through `kv` (which must be installed on
    /// `c`). They start calling at the next [`Clients::run_for`].
    ///
    /// Panics if a timeout in `cfg` is zero.
    pub fn new(c: &Cluster, kv: KvSim, cfg: ClientConfig) -> Clients {
        assert!(
            cfg.attempt_timeout > Duration::ZERO && cfg.op_timeout > Duration::ZERO,
            "client timeouts must be positive: {cfg:?}"
        );
        let mut rng = SimRng::stream(c.seed(), 50);
        let n = c.len() as u64;
        let mut clients = Vec::new();
        let mut by_id = HashMap::new();
        for k in 0..cfg.clients {
            let mut id = rng.next_u64();
            while by_id.contains_key(&id) {
                id = rng.next_u64();
            }
            by_id.insert(id, k);
            clients.push(Client {
                id,
                seq: 0,
                leader: NodeId(rng.below(n) + 1),
                call: None,
                next_op_at: c.now(),
                seen: HashMap::new(),
                counter: Some(None),
            });
        }
        Clients {
            cfg,
            kv,
            rng,
            clients,
            by_id,
            history: History::new(),
            events: BinaryHeap::new(),
            order: 0,
            stopped: false,
            stats: ClientStats::default(),
            n,
        }
    }

    /// The configuration, to change for the rest of the run (e.g. `reply_drop`).
    pub fn config_mut(&mut self) -> &mut ClientConfig {
        &mut self.cfg
    }

    /// The history recorded so far (times in microseconds of virtual time).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Counters.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// The KV layer the clients talk to.
    pub fn kv(&self) -> &KvSim {
        &self.kv
    }

    /// No client starts a new operation after this; outstanding ones go on.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// True if some client waits for an operation.
    pub fn busy(&self) -> bool {
        self.clients.iter().any(|cl| cl.call.is_some())
    }

    /// Runs the cluster and the clients for `d` of virtual time.
    pub fn run_for(&mut self, c: &mut Cluster, d: Duration) {
        let end = c.now() + d;
        self.run(c, end, false);
    }

    /// Runs until no client waits for an operation (after [`Clients::stop`])
    /// or `max` has passed. Returns whether every client is done.
    pub fn finish(&mut self, c: &mut Cluster, max: Duration) -> bool {
        let end = c.now() + max;
        self.run(c, end, true);
        !self.busy()
    }

    fn run(&mut self, c: &mut Cluster, end: Instant, until_idle: bool) {
        // Clients know every machine, also those added since (a membership change).
        self.n = c.len() as u64;
        loop {
            self.collect_replies(c);
            while self.step(c) {
                self.collect_replies(c);
            }
            if c.now() >= end || (until_idle && self.stopped && !self.busy()) {
                return;
            }
            let wake = self.next_wake().map_or(end, |w| w.min(end));
            let kv = self.kv.clone();
            c.run_until(|_| kv.has_replies(), wake.saturating_since(c.now()));
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut best = self.events.peek().map(|Reverse(e)| e.at);
        let mut consider = |t: Instant| best = Some(best.map_or(t, |b: Instant| b.min(t)));
        for cl in &self.clients {
            match &cl.call {
                Some(call) => {
                    consider(call.deadline);
                    consider(call.retry_at.unwrap_or(call.attempt_deadline));
                }
                None if !self.stopped => consider(cl.next_op_at),
                None => {}
            }
        }
        best
    }

    /// Does everything due now; returns whether anything happened.
    fn step(&mut self, c: &mut Cluster) -> bool {
        let now = c.now();
        let mut progressed = false;
        while self.events.peek().is_some_and(|Reverse(e)| e.at <= now) {
            let Some(Reverse(ev)) = self.events.pop() else { break };
            self.handle(c, ev.what);
            progressed = true;
        }
        for k in 0..self.clients.len() {
            let cl = &self.clients[k];
            let action = match &cl.call {
                Some(call) if call.deadline <= now => Timer::GiveUp,
                Some(call) if call.retry_at.is_some_and(|t| t <= now) => Timer::Resend,
                Some(call) if call.retry_at.is_none() && call.attempt_deadline <= now => Timer::NextNode(call.node),
                None if !self.stopped && cl.next_op_at <= now => Timer::Start,
                _ => continue,
            };
            match action {
                Timer::GiveUp => self.give_up(k, now),
                Timer::Resend => self.send(c, k),
                Timer::NextNode(node) => {
                    self.clients[k].leader = self.next_node(node);
                    self.send(c, k);
                }
                Timer::Start => self.start_op(c, k),
            }
            progressed = true;
        }
        progressed
    }

    fn next_node(&self, id: NodeId) -> NodeId {
        NodeId(id.0 % self.n + 1)
    }

    fn think(&mut self) -> Duration {
        let (lo, hi) = (self.cfg.think_min.as_micros(), self.cfg.think_max.as_micros());
        Duration::from_micros(self.rng.between(lo, hi))
    }

    fn latency(&mut self, c: &mut Cluster) -> Option<Duration> {
        let net = c.net_config_mut();
        let (drop, lo, hi) = (net.drop_rate, net.latency_min.as_micros(), net.latency_max.as_micros());
        if self.rng.chance(drop) {
            self.stats.lost += 1;
            return None;
        }
        Some(Duration::from_micros(self.rng.between(lo, hi)))
    }

    fn schedule(&mut self, at: Instant, what: What) {
        self.order += 1;
        self.events.push(Reverse(Event { at, order: self.order, what }));
    }

    fn next_op(&mut self, k: usize) -> KvOp {
        let seq = self.clients[k].seq;
        match self.cfg.workload.clone() {
            Workload::Counter => match &self.clients[k].counter {
                None => KvOp::get(COUNTER_KEY),
                Some(v) => {
                    let n: u64 = v.as_deref().map_or(0, |s| s.parse().unwrap_or(0));
                    KvOp::cas(COUNTER_KEY, v.as_deref(), (n + 1).to_string())
                }
            },
            Workload::Random { keys } => {
                let key = format!("k{}", self.rng.below(keys.max(1) as u64));
                let value = format!("c{k}.{seq}");
                match self.rng.below(100) {
                    0..40 => KvOp::put(key, value),
                    40..70 => KvOp::get(key),
                    70..80 => KvOp::delete(key),
                    r => {
                        let seen = self.clients[k].seen.get(&key).cloned().flatten();
                        let expected = if r < 95 { seen } else { Some(format!("c{k}.{}", seq.saturating_sub(1))) };
                        KvOp::cas(key, expected.as_deref(), value)
                    }
                }
            }
        }
    }

    fn start_op(&mut self, c: &mut Cluster, k: usize) {
        let now = c.now();
        self.clients[k].seq += 1;
        let op = self.next_op(k);
        let cl = &mut self.clients[k];
        let hid = self.history.call(cl.id, op.clone(), now.as_micros());
        self.stats.calls += 1;
        cl.call = Some(Call {
            op,
            hid,
            seq: cl.seq,
            deadline: now + self.cfg.op_timeout,
            attempt: 0,
            node: cl.leader,
            attempt_deadline: now,
            retry_at: None,
        });
        self.send(c, k);
    }

    /// Sends (or re-sends) client `k`'s command to the node it believes leads.
    fn send(&mut self, c: &mut Cluster, k: usize) {
        let now = c.now();
        let timeout = self.cfg.attempt_timeout;
        let get = self.clients[k].call.as_ref().is_some_and(|call| matches!(call.op, KvOp::Get { .. }));
        let anywhere = (self.cfg.reads_anywhere && get).then(|| NodeId(self.rng.below(self.n) + 1));
        let cl = &mut self.clients[k];
        let Some(call) = cl.call.as_mut() else { return };
        call.attempt += 1;
        call.node = anywhere.unwrap_or(cl.leader);
        call.attempt_deadline = now + timeout;
        call.retry_at = None;
        let cmd = KvCommand { client: cl.id, seq: call.seq, op: call.op.clone() };
        let (node, retry) = (call.node, call.attempt > 1);
        self.stats.attempts += 1;
        if retry {
            self.stats.retries += 1;
        }
        if let Some(d) = self.latency(c) {
            self.schedule(now + d, What::Arrive { node, cmd });
        }
    }

    fn give_up(&mut self, k: usize, now: Instant) {
        let think = self.think();
        let cl = &mut self.clients[k];
        let Some(call) = cl.call.take() else { return };
        self.history.timed_out(call.hid);
        self.stats.unknown += 1;
        if !matches!(call.op, KvOp::Get { .. }) {
            cl.seen.remove(call.op.key());
        }
        if self.cfg.workload == Workload::Counter && matches!(call.op, KvOp::Cas { .. }) {
            self.stats.swaps_unknown += 1;
        }
        cl.counter = None;
        cl.next_op_at = now + think;
    }

    fn handle(&mut self, c: &mut Cluster, what: What) {
        match what {
            What::Arrive { node, cmd } => self.arrive(c, node, cmd),
            What::Answer { k, node, seq, attempt, answer } => self.answer(c, k, node, seq, attempt, answer),
        }
    }

    /// A request reaches `node`: it proposes the command, or says it does not lead.
    fn arrive(&mut self, c: &mut Cluster, node: NodeId, cmd: KvCommand) {
        if !c.is_up(node) || !c.is_connected(node) {
            self.stats.lost += 1;
            return;
        }
        let Some(&k) = self.by_id.get(&cmd.client) else { return };
        if let (KvOp::Get { key }, ReadPath::ReadIndex) = (&cmd.op, self.cfg.reads) {
            let follower = c.node(node).is_some_and(|n| n.role() != Role::Leader);
            let r = self.kv.read(c, node, cmd.client, cmd.seq, key);
            if r.is_ok() && follower {
                self.stats.follower_reads += 1;
            }
            if let Err(e) = r {
                let attempt = self.clients[k].call.as_ref().map_or(0, |call| call.attempt);
                if let Some(d) = self.latency(c) {
                    let answer = Answer::Kv(ReplyResult::ReadFailed(e));
                    self.schedule(c.now() + d, What::Answer { k, node, seq: cmd.seq, attempt, answer });
                }
            }
            return;
        }
        if let (KvOp::Get { key }, ReadPath::LeaderLocal) = (&cmd.op, self.cfg.reads) {
            let attempt = self.clients[k].call.as_ref().map_or(0, |call| call.attempt);
            let answer = match c.node(node) {
                Some(n) if n.role() == Role::Leader => {
                    Answer::Kv(ReplyResult::Output(KvOutput::Get(self.kv.get_local(node, key))))
                }
                n => Answer::NotLeader(n.and_then(|n| n.leader())),
            };
            if let Some(d) = self.latency(c) {
                self.schedule(c.now() + d, What::Answer { k, node, seq: cmd.seq, attempt, answer });
            }
            return;
        }
        match c.propose(node, encode_command(&cmd)) {
            Ok(index) => self.kv.expect(c, node, index, cmd.client, cmd.seq),
            Err(ProposeError::NotLeader { leader_hint }) => {
                let attempt = self.clients[k].call.as_ref().map_or(0, |call| call.attempt);
                if let Some(d) = self.latency(c) {
                    let answer = Answer::NotLeader(leader_hint);
                    self.schedule(c.now() + d, What::Answer { k, node, seq: cmd.seq, attempt, answer });
                }
            }
            Err(ProposeError::TransferInProgress { .. }) => {
                let attempt = self.clients[k].call.as_ref().map_or(0, |call| call.attempt);
                if let Some(d) = self.latency(c) {
                    self.schedule(c.now() + d, What::Answer { k, node, seq: cmd.seq, attempt, answer: Answer::Busy });
                }
            }
            Err(e) => c.fail(format_args!("n{node} refused client command {cmd:?}: {e}")),
        }
    }

    /// Moves every reply the nodes produced onto the client network.
    fn collect_replies(&mut self, c: &mut Cluster) {
        for r in self.kv.take_replies() {
            let Some(&k) = self.by_id.get(&r.client) else { continue };
            if !c.is_connected(r.node) || self.rng.chance(self.cfg.reply_drop) {
                self.stats.lost += 1;
                continue;
            }
            let Some(d) = self.latency(c) else { continue };
            let answer = Answer::Kv(r.result);
            self.schedule(r.at + d, What::Answer { k, node: r.node, seq: r.seq, attempt: 0, answer });
        }
    }

    fn answer(&mut self, c: &mut Cluster, k: usize, node: NodeId, seq: u64, attempt: u64, answer: Answer) {
        let now = c.now();
        let current = self.clients[k].call.as_ref().is_some_and(|call| call.seq == seq);
        if !current {
            self.stats.late_replies += 1;
            return;
        }
        let Some(call) = self.clients[k].call.as_ref() else { return };
        let this_attempt = call.node == node && (attempt == 0 || attempt == call.attempt);
        match answer {
            Answer::Kv(ReplyResult::Output(out)) => self.done(c, k, out),
            Answer::Kv(ReplyResult::Error(e)) => {
                c.fail(format_args!("client {} seq {seq}: n{node} answered with an error: {e}", self.clients[k].id))
            }
            Answer::Kv(ReplyResult::ReadFailed(e)) => {
                self.stats.reads_failed += 1;
                if this_attempt {
                    let hint = match e {
                        ReadError::NotLeader { leader_hint } => leader_hint,
                        _ => c.node(node).and_then(|n| n.leader()),
                    };
                    match hint.filter(|&h| h != node) {
                        Some(h) => self.retry(k, h, now + Duration::from_millis(1)),
                        None => {
                            let next = self.next_node(node);
                            self.retry(k, next, now + Duration::from_millis(10));
                        }
                    }
                }
            }
            Answer::Kv(ReplyResult::Replaced) => {
                self.stats.replaced += 1;
                if this_attempt {
                    let hint = c.node(node).and_then(|n| n.leader()).filter(|&l| l != node);
                    let next = hint.unwrap_or_else(|| self.next_node(node));
                    self.retry(k, next, now + Duration::from_millis(1));
                }
            }
            Answer::Busy => {
                if this_attempt {
                    self.retry(k, node, now + Duration::from_millis(20));
                }
            }
            Answer::NotLeader(hint) => {
                self.stats.not_leader += 1;
                if this_attempt {
                    match hint.filter(|&h| h != node) {
                        Some(h) => self.retry(k, h, now + Duration::from_millis(1)),
                        None => {
                            let next = self.next_node(node);
                            self.retry(k, next, now + Duration::from_millis(10));
                        }
                    }
                }
            }
        }
    }

    fn retry(&mut self, k: usize, target: NodeId, at: Instant) {
        let cl = &mut self.clients[k];
        cl.leader = target;
        if let Some(call) = cl.call.as_mut() {
            call.retry_at = Some(at);
        }
    }

    fn done(&mut self, c: &mut Cluster, k: usize, out: KvOutput) {
        let now = c.now();
        let think = self.think();
        let counter = self.cfg.workload == Workload::Counter;
        let cl = &mut self.clients[k];
        let Some(call) = cl.call.take() else { return };
        if !call.op.accepts(&out) {
            c.fail(format_args!("client {} got {out:?} for {}", cl.id, call.op));
        }
        self.history.returned(call.hid, out.clone(), now.as_micros());
        self.stats.ok += 1;
        cl.leader = call.node;
        cl.next_op_at = now + think;
        let key = call.op.key().to_owned();
        let value = match (&call.op, out) {
            (KvOp::Put { value, .. }, _) => Some(value.clone()),
            (_, KvOutput::Get(v)) => v,
            (_, KvOutput::Delete { .. }) => None,
            (_, KvOutput::Cas { swapped, current }) => {
                if counter && swapped {
                    self.stats.swaps_ok += 1;
                }
                current
            }
            _ => return,
        };
        if counter {
            cl.counter = Some(value.clone());
        }
        cl.seen.insert(key, value);
    }

    /// Checks the recorded history with the linearizability checker; panics
    /// with the seed, the checker's report and the trace tail otherwise.
    /// Operations still waiting count as unknown.
    pub fn check_linearizable(&self, c: &Cluster) {
        if let Err(e) = self.history.check() {
            c.fail(format_args!("client history ({} operations) is not linearizable: {e}", self.history.len()));
        }
    }

    /// [`Workload::Counter`]: checks that the counter in `node`'s store equals
    /// the acknowledged swaps plus at most the swaps of unknown outcome (so no
    /// command was applied twice). Returns the counter.
    pub fn check_counter(&self, c: &Cluster, node: NodeId) -> u64 {
        let value = self.kv.get_local(node, COUNTER_KEY);
        let n: u64 = value.as_deref().map_or(0, |v| v.parse().unwrap_or(u64::MAX));
        let (ok, unknown) = (self.stats.swaps_ok, self.stats.swaps_unknown + self.pending_swaps());
        if n < ok || n > ok + unknown {
            c.fail(format_args!(
                "counter is {n} on n{node}, but {ok} swaps were acknowledged and {unknown} have an unknown outcome"
            ));
        }
        n
    }

    fn pending_swaps(&self) -> u64 {
        self.clients
            .iter()
            .filter(|cl| cl.call.as_ref().is_some_and(|call| matches!(call.op, KvOp::Cas { .. })))
            .count() as u64
    }
}
