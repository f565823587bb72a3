//! Interaction tests: each script in `tests/scripts/` drives a small
//! cluster of [`Node`]s one step at a time (fire a timeout, deliver the
//! messages in flight, make writes durable) and prints every message,
//! write and applied entry, so that the expected output reads as a trace of
//! the protocol. A change in behaviour shows as a diff of that trace.
//!
//! Run one script: `cargo test -p raft-core --test interaction -- prevote_partition`.
//! After a deliberate change, regenerate the expected output with
//! `UPDATE_GOLDENFILES=1 cargo test -p raft-core --test interaction` and
//! read the diff before committing it.
//!
//! Commands (node ids are numbers; `ids` is one or more of them, none
//! meaning every node):
//!
//! * `cluster n=N [pre_vote=BOOL] [check_quorum=BOOL] [forward=BOOL]
//!   [lease_drift_ms=MS]`: a fresh cluster of nodes 1..=N, every one a
//!   voter, at time 0 (pre-vote and check-quorum on, forwarding off, and
//!   ReadIndex reads unless a lease's drift bound is given).
//! * `campaign ID`: moves the clock to node ID's election deadline and fires
//!   its timeout (no other node's timer fires).
//! * `tick ms=N`: moves the clock N ms, firing each timer at its deadline
//!   (messages stay in flight); `run ms=N` also delivers every message
//!   after each timer (a network without delay).
//! * `deliver [ids]`: hands every message in flight to its recipient (only
//!   those to `ids`), then runs the recipients' outputs.
//! * `stabilize`: `deliver` until no message is in flight.
//! * `propose ID DATA`, `forward ID DATA`, `read ID`, `transfer FROM TO`,
//!   `compact ID INDEX` (a snapshot of `state@INDEX`): the node's API call.
//! * `join ID`: a node that is not a member yet (it waits to be added);
//!   `add-learner LEADER ID`, `promote LEADER ID`, `remove LEADER ID`: a
//!   membership change asked of the leader.
//! * `hold ids` / `persist ids`: writes of these nodes stay pending until
//!   `persist` makes them durable and ends the hold (by default a write is
//!   durable as soon as it is made).
//! * `isolate ID` / `heal`: drop every message to and from ID, or stop.
//! * `status [ids]`: role, term, vote, leader and indexes.
//!
//! Output lines: `1->2 Msg term=T ...` a message sent (`dropped` if cut
//! off), `1: persist ...` a write, `1: durable` once reported durable,
//! `1: apply ...`, `1: read ...`, `1: event ...`. An entry prints as
//! `index/term:payload`.

use goldenscript::{Command, Runner};
use raft_core::{
    AppendResult, Body, Config, Duration, Entry, Event, Instant, LogIndex, Membership, MembershipChange, Message, Node,
    NodeId, Output, Payload, PersistToken, ProposalId, ReadId, ReadMode, Restored, Write,
};
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::fmt::Write as _;

#[derive(Default)]
struct Cluster {
    now: Instant,
    nodes: BTreeMap<u64, Node>,
    /// Messages in flight, in the order they were sent: (from, to, message).
    flight: Vec<(u64, u64, Message)>,
    /// Nodes whose writes wait for `persist`, and the newest pending token.
    held: BTreeMap<u64, Option<PersistToken>>,
    isolated: BTreeSet<u64>,
    /// The last read or forwarded proposal id given out.
    next_id: u64,
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

impl Cluster {
    fn node(&mut self, id: u64) -> Result<&mut Node> {
        self.nodes.get_mut(&id).ok_or_else(|| format!("no node {id}").into())
    }

    fn ids(&self, command: &Command) -> Result<Vec<u64>> {
        let ids: Vec<u64> =
            command.args.iter().filter(|a| a.key.is_none()).map(|a| a.parse()).collect::<Result<_>>()?;
        Ok(if ids.is_empty() { self.nodes.keys().copied().collect() } else { ids })
    }

    /// Runs node `id`'s outputs: writes (durable at once unless held),
    /// messages into flight, the rest printed.
    fn process(&mut self, id: u64, out: &mut String) -> Result<()> {
        loop {
            let now = self.now;
            let node = self.node(id)?;
            let Some(output) = node.poll_output() else { return Ok(()) };
            match output {
                Output::Persist(p) => {
                    writeln!(out, "{id}: persist {}", write(&p.write))?;
                    match self.held.get_mut(&id) {
                        Some(pending) => *pending = Some(p.token),
                        None => self.node(id)?.handle_persisted(now, p.token),
                    }
                }
                Output::Send(o) => {
                    let to = o.to.0;
                    let cut = self.isolated.contains(&id) || self.isolated.contains(&to);
                    writeln!(out, "{id}->{to} {}{}", message(&o.message), if cut { " (dropped)" } else { "" })?;
                    if !cut {
                        self.flight.push((id, to, o.message));
                    }
                }
                Output::Apply(entries) => {
                    let list: Vec<String> = entries.iter().map(entry).collect();
                    writeln!(out, "{id}: apply {}", list.join(" "))?;
                }
                Output::Read { id: read, result } => writeln!(out, "{id}: read {} {result:?}", read.0)?,
                Output::Forwarded { id: proposal, result } => {
                    writeln!(out, "{id}: forwarded {} {result:?}", proposal.0)?
                }
                Output::RestoreSnapshot(snap) => writeln!(
                    out,
                    "{id}: restore snapshot {}/{} {:?}",
                    snap.meta.index.0,
                    snap.meta.term.0,
                    String::from_utf8_lossy(snap.data.as_ref())
                )?,
                Output::Event(e) => writeln!(out, "{id}: event {}", event(&e))?,
                other => writeln!(out, "{id}: {other:?}")?,
            }
        }
    }

    fn deliver(&mut self, to: &BTreeSet<u64>, out: &mut String) -> Result<bool> {
        let (now, mut rest, mut receivers) = (self.now, Vec::new(), BTreeSet::new());
        let flight = std::mem::take(&mut self.flight);
        let mut delivered = false;
        for (from, dest, msg) in flight {
            if !to.contains(&dest) {
                rest.push((from, dest, msg));
                continue;
            }
            delivered = true;
            receivers.insert(dest);
            self.node(dest)?.handle_message(now, NodeId(from), msg);
        }
        self.flight = rest;
        for id in receivers {
            self.process(id, out)?;
        }
        Ok(delivered)
    }

    /// Delivers until no message is in flight.
    fn stabilize(&mut self, out: &mut String) -> Result<()> {
        let all: BTreeSet<u64> = self.nodes.keys().copied().collect();
        for _ in 0..100 {
            if !self.deliver(&all, out)? {
                return Ok(());
            }
        }
        Err("no end to the messages after 100 rounds".into())
    }

    /// Moves the clock to `until`, firing each timer at its own deadline in
    /// order; with `settle`, every message in flight is delivered after each
    /// (a network without delay).
    fn advance(&mut self, until: Instant, settle: bool, out: &mut String) -> Result<()> {
        for _ in 0..10_000 {
            let next = self.nodes.iter().filter_map(|(id, n)| n.poll_timeout().map(|d| (d, *id))).min();
            let Some((deadline, id)) = next.filter(|(d, _)| *d <= until) else {
                self.now = until;
                return Ok(());
            };
            self.fire(id, deadline, out)?;
            if settle {
                self.stabilize(out)?;
            }
        }
        Err("more than 10,000 timers in one advance".into())
    }

    /// Moves the clock to `deadline` (if later) and fires node `id`'s timer.
    fn fire(&mut self, id: u64, deadline: Instant, out: &mut String) -> Result<()> {
        self.now = deadline.max(self.now);
        let at = self.now;
        self.node(id)?.handle_timeout(at);
        self.process(id, out)
    }

    /// The first two numbers of `command` (`usage` if there are fewer).
    fn pair(&self, command: &Command, usage: &str) -> Result<(u64, u64)> {
        match self.ids(command)?[..] {
            [a, b, ..] => Ok((a, b)),
            _ => Err(usage.into()),
        }
    }
}

/// `ID DATA` from `command`.
fn id_and_data(command: &Command, usage: &str) -> Result<(u64, Vec<u8>)> {
    let mut args = command.consume_args();
    let id = args.next_pos().ok_or(usage)?.parse()?;
    let data = args.next_pos().ok_or(usage)?.value.clone().into_bytes();
    Ok((id, data))
}

impl Runner for Cluster {
    fn run(&mut self, command: &Command) -> Result<String> {
        let mut out = String::new();
        let now = self.now;
        match command.name.as_str() {
            "cluster" => {
                let mut args = command.consume_args();
                let n: u64 = args.lookup_parse("n")?.ok_or("cluster needs n=N")?;
                let pre_vote = args.lookup_parse("pre_vote")?.unwrap_or(true);
                let check_quorum = args.lookup_parse("check_quorum")?.unwrap_or(true);
                let forward = args.lookup_parse("forward")?.unwrap_or(false);
                let lease_ms: Option<u64> = args.lookup_parse("lease_drift_ms")?;
                args.reject_rest()?;
                *self = Cluster::default();
                let members: Vec<NodeId> = (1..=n).map(NodeId).collect();
                for id in 1..=n {
                    let mut config = Config::new(NodeId(id), members.clone());
                    config.seed = id;
                    config.pre_vote = pre_vote;
                    config.check_quorum = check_quorum;
                    config.forward_proposals = forward;
                    if let Some(ms) = lease_ms {
                        config.read_mode = ReadMode::Lease { max_clock_drift: Duration::from_millis(ms) };
                    }
                    let node = Node::new(config, Restored::fresh(), Instant::ZERO)?;
                    self.nodes.insert(id, node);
                }
                for id in 1..=n {
                    self.process(id, &mut out)?;
                }
            }
            "campaign" => {
                let id = self.ids(command)?[0];
                let deadline = self.node(id)?.poll_timeout().ok_or("no timer")?;
                writeln!(out, "(time {} ms)", deadline.as_micros() / 1000)?;
                self.fire(id, deadline, &mut out)?;
            }
            "tick" | "run" => {
                let ms: u64 = command.consume_args().lookup_parse("ms")?.ok_or("tick and run need ms=N")?;
                let until = now + Duration::from_millis(ms);
                self.advance(until, command.name == "run", &mut out)?;
            }
            "deliver" => {
                let to = self.ids(command)?.into_iter().collect();
                self.deliver(&to, &mut out)?;
            }
            "stabilize" => self.stabilize(&mut out)?,
            "propose" => {
                let (id, data) = id_and_data(command, "propose ID DATA")?;
                let result = self.node(id)?.propose(now, data);
                writeln!(out, "{id}: propose -> {result:?}")?;
                self.process(id, &mut out)?;
            }
            "forward" => {
                let (id, data) = id_and_data(command, "forward ID DATA")?;
                self.next_id += 1;
                let proposal = ProposalId(self.next_id);
                let result = self.node(id)?.forward(now, proposal, data);
                writeln!(out, "{id}: forward {} -> {result:?}", proposal.0)?;
                self.process(id, &mut out)?;
            }
            "compact" => {
                let (id, index) = self.pair(command, "compact ID INDEX")?;
                let index = LogIndex(index);
                let data = format!("state@{}", index.0);
                let result = self.node(id)?.compact(now, index, data.into_bytes());
                writeln!(out, "{id}: compact {} -> {result:?}", index.0)?;
                self.process(id, &mut out)?;
            }
            "read" => {
                let id = self.ids(command)?[0];
                self.next_id += 1;
                let read = ReadId(self.next_id);
                let result = self.node(id)?.read_index(now, read);
                writeln!(out, "{id}: read {} -> {result:?}", read.0)?;
                self.process(id, &mut out)?;
            }
            "transfer" => {
                let (from, to) = self.pair(command, "transfer FROM TO")?;
                let result = self.node(from)?.transfer_leadership(now, NodeId(to));
                writeln!(out, "{from}: transfer to {to} -> {result:?}")?;
                self.process(from, &mut out)?;
            }
            "join" => {
                // A node that is not a member yet: it waits to be added.
                for id in self.ids(command)? {
                    let mut config = Config::new(NodeId(id), Vec::new());
                    config.seed = id;
                    self.nodes.insert(id, Node::new(config, Restored::fresh(), now)?);
                    self.process(id, &mut out)?;
                }
            }
            "add-learner" | "promote" | "remove" => {
                let (leader, id) = self.pair(command, "CHANGE LEADER ID")?;
                let id = NodeId(id);
                let change = match command.name.as_str() {
                    "add-learner" => MembershipChange::AddLearner { id, addr: format!("addr{}", id.0).as_str().into() },
                    "promote" => MembershipChange::Promote { id },
                    _ => MembershipChange::Remove { id },
                };
                let result = self.node(leader)?.change_membership(now, change);
                writeln!(out, "{leader}: {} {} -> {result:?}", command.name, id.0)?;
                self.process(leader, &mut out)?;
            }
            "hold" => {
                for id in self.ids(command)? {
                    self.held.entry(id).or_insert(None);
                }
            }
            "persist" => {
                for id in self.ids(command)? {
                    if let Some(Some(token)) = self.held.remove(&id) {
                        writeln!(out, "{id}: durable")?;
                        self.node(id)?.handle_persisted(now, token);
                        self.process(id, &mut out)?;
                    }
                }
            }
            "isolate" => {
                for id in self.ids(command)? {
                    self.isolated.insert(id);
                    self.flight.retain(|(from, to, _)| *from != id && *to != id);
                }
            }
            "heal" => self.isolated.clear(),
            "status" => {
                for id in self.ids(command)? {
                    let n = self.node(id)?;
                    writeln!(
                        out,
                        "{id}: {:?} term={} vote={} leader={} last={}/{} commit={} applied={} durable={}",
                        n.role(),
                        n.term().0,
                        n.voted_for().map_or("-".into(), |v| v.0.to_string()),
                        n.leader().map_or("-".into(), |v| v.0.to_string()),
                        n.last_log_index().0,
                        n.last_log_term().0,
                        n.commit_index().0,
                        n.last_applied().0,
                        n.durable_index().0,
                    )?;
                }
            }
            name => return Err(format!("unknown command {name}").into()),
        }
        Ok(out)
    }
}

fn entry(e: &Entry) -> String {
    let payload = match &e.payload {
        Payload::Noop => "noop".to_string(),
        Payload::Command(c) => String::from_utf8_lossy(c.as_ref()).into_owned(),
        Payload::Membership(m) => conf(m),
        other => format!("{other:?}"),
    };
    format!("{}/{}:{payload}", e.index.0, e.term.0)
}

fn conf(m: &Membership) -> String {
    let ids = |set: &BTreeSet<NodeId>| set.iter().map(|v| v.0.to_string()).collect::<Vec<_>>().join(",");
    let mut conf = format!("conf(voters={}", ids(&m.voters));
    if !m.outgoing.is_empty() {
        conf += &format!(" outgoing={}", ids(&m.outgoing));
    }
    if !m.learners.is_empty() {
        conf += &format!(" learners={}", ids(&m.learners));
    }
    conf + ")"
}

fn entries(list: &[Entry]) -> String {
    list.iter().map(entry).collect::<Vec<_>>().join(" ")
}

fn write(w: &Write) -> String {
    let mut s = Vec::new();
    if let Some(hs) = &w.hard_state {
        s.push(format!("term={} vote={}", hs.term.0, hs.voted_for.map_or("-".into(), |v| v.0.to_string())));
    }
    if let Some(from) = w.truncate_from {
        s.push(format!("truncate from {}", from.0));
    }
    if !w.entries.is_empty() {
        s.push(format!("entries [{}]", entries(&w.entries)));
    }
    if w.snapshot.is_some() {
        s.push("snapshot".into());
    }
    s.join(", ")
}

fn message(m: &Message) -> String {
    let t = m.term.0;
    match &m.body {
        Body::RequestVote(v) => format!(
            "{} term={t} last={}/{}{}",
            if v.pre_vote { "PreVote" } else { "RequestVote" },
            v.last_log_index.0,
            v.last_log_term.0,
            if v.transfer { " transfer" } else { "" }
        ),
        Body::RequestVoteResponse(r) => format!(
            "{} term={t} {}",
            if r.pre_vote { "PreVoteResponse" } else { "VoteResponse" },
            if r.granted { "granted" } else { "refused" }
        ),
        Body::AppendEntries(a) => format!(
            "AppendEntries term={t} prev={}/{} commit={} [{}]",
            a.prev_log_index.0,
            a.prev_log_term.0,
            a.leader_commit.0,
            entries(&a.entries)
        ),
        Body::AppendEntriesResponse(r) => match &r.result {
            AppendResult::Success { match_index } => format!("AppendOk term={t} match={}", match_index.0),
            AppendResult::Reject { prev_log_index, last_log_index, conflict_term, conflict_index } => format!(
                "AppendReject term={t} prev={} last={} conflict={}/{}",
                prev_log_index.0,
                last_log_index.0,
                conflict_index.0,
                conflict_term.map_or("-".into(), |c| c.0.to_string())
            ),
        },
        Body::TimeoutNow => format!("TimeoutNow term={t}"),
        Body::InstallSnapshot(i) => format!(
            "InstallSnapshot term={t} snapshot={}/{} bytes {}..{} of {}",
            i.index.0,
            i.snapshot_term.0,
            i.offset,
            i.offset + i.data.len() as u64,
            i.total_len
        ),
        Body::InstallSnapshotResponse(r) => format!(
            "InstallSnapshotResponse term={t} snapshot={} next={}{}",
            r.index.0,
            r.next_offset,
            if r.done { " done" } else { "" }
        ),
        Body::Forward(f) => {
            format!("Forward term={t} id={} {:?}", f.id, String::from_utf8_lossy(f.command.as_ref()))
        }
        Body::ForwardResponse(r) => format!("ForwardResponse term={t} id={} {:?}", r.id, r.outcome),
        Body::ReadIndex(r) => format!("ReadIndex term={t} id={}", r.id),
        Body::ReadIndexResponse(r) => {
            format!("ReadIndexResponse term={t} id={} index={}", r.id, r.index.map_or("-".into(), |i| i.0.to_string()))
        }
    }
}

fn event(e: &Event) -> String {
    match e {
        Event::RoleChanged { role, term, leader } => {
            format!("{role:?} term={} leader={}", term.0, leader.map_or("-".into(), |l| l.0.to_string()))
        }
        Event::MembershipChanged { membership } => format!("membership {}", conf(membership)),
        other => format!("{other:?}"),
    }
}

/// Runs `tests/scripts/NAME`.
fn script(name: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts").join(name);
    goldenscript::run(&mut Cluster::default(), &path).unwrap_or_else(|e| panic!("{name}: {e}"));
}

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { script(stringify!($name)); })*
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
    };
}

scripts!(
    election,
    prevote_partition,
    check_quorum,
    transfer,
    transfer_lost,
    durability,
    read_index,
    lease_read,
    membership,
    snapshot,
    forwarding,
);

#[test]
fn every_script_has_a_test() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut files: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "tests/scripts and the scripts! list differ");
}
