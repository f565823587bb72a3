//! Demo of the deterministic simulator: a readable timeline, in virtual time,
//! of elections, a leader failure and recovery, and a few committed commands.
//!
//! `cargo run -p raft-tests --bin sim -- --nodes 5 --seed 7 [--duration-ms 20000]`
//!
//! `sim soak [--seeds N] [--jobs J] ...` instead runs every scenario and
//! property test binary over many seeds on every core (see
//! [`raft_tests::soak`]): `cargo run -p raft-tests --bin sim -- soak --seeds 10000`.

use raft_core::{Duration, LogIndex, NodeId, Role, Term};
use raft_tests::sim::trace::{MsgSummary, fmt_instant};
use raft_tests::sim::{Cluster, MsgKind, SimConfig, TraceEvent, TraceKind};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;

const USAGE: &str = "usage: sim [--nodes N (1..=15, default 5)] [--seed S (default 7)] [--duration-ms D (default 20000)] \
     | sim soak --help";

#[derive(Debug)]
struct Args {
    nodes: usize,
    seed: u64,
    duration_ms: u64,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args { nodes: 5, seed: 7, duration_ms: 20_000 };
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        if !matches!(name.as_str(), "--nodes" | "--seed" | "--duration-ms") {
            return Err(format!("unknown flag {flag:?}"));
        }
        let value = inline.or_else(|| it.next()).ok_or_else(|| format!("{name} needs a value"))?;
        let number: u64 = value.parse().map_err(|_| format!("{name}: {value:?} is not a non-negative integer"))?;
        match name.as_str() {
            "--nodes" if (1..=15).contains(&number) => args.nodes = number as usize,
            "--nodes" => return Err(format!("--nodes must be between 1 and 15, got {number}")),
            "--seed" => args.seed = number,
            _ if number == 0 => return Err("--duration-ms must be positive".to_string()),
            _ => args.duration_ms = number,
        }
    }
    Ok(Some(args))
}

/// What the timeline printer remembers between events.
#[derive(Default)]
struct View {
    roles: BTreeMap<NodeId, (Role, Term)>,
    votes: BTreeMap<(NodeId, Term), Vec<NodeId>>,
}

fn stamp(e: &TraceEvent) -> String {
    format!("t={:>11}", fmt_instant(e.at))
}

/// Prints the interesting events as they happen.
fn timeline(view: &Rc<RefCell<View>>) -> Box<dyn FnMut(&TraceEvent)> {
    let view = Rc::clone(view);
    Box::new(move |e: &TraceEvent| {
        let mut v = view.borrow_mut();
        match &e.kind {
            TraceKind::Deliver { from, to, msg: MsgSummary::Vote { term, granted: true, pre_vote: false }, .. } => {
                v.votes.entry((*to, *term)).or_default().push(*from);
            }
            TraceKind::Role { node, role, term, leader } => {
                let before = v.roles.insert(*node, (*role, *term));
                match role {
                    Role::Candidate => println!("{}  n{node} timed out: candidate for term {term}", stamp(e)),
                    Role::Leader => {
                        let mut voters = v.votes.get(&(*node, *term)).cloned().unwrap_or_default();
                        voters.sort();
                        voters.dedup();
                        let list: Vec<String> = voters.iter().map(|n| format!("n{n}")).collect();
                        println!(
                            "{}  n{node} ELECTED leader of term {term} (votes: itself{}{})",
                            stamp(e),
                            if list.is_empty() { "" } else { ", " },
                            list.join(", ")
                        );
                    }
                    _ => {
                        if let Some((Role::Leader, old)) = before {
                            let who = leader.map_or("unknown".to_string(), |l| format!("n{l}"));
                            println!(
                                "{}  n{node} steps down: leader of term {old} -> follower in term {term} (leader {who})",
                                stamp(e)
                            );
                        }
                    }
                }
            }
            TraceKind::Crash { node, lost_writes } => {
                v.roles.remove(node);
                println!("{}  n{node} CRASHES ({lost_writes} unfinished writes lost)", stamp(e));
            }
            TraceKind::Restart { node, term, log_len, .. } => {
                println!("{}  n{node} restarts from disk: term {term}, {log_len} log entries", stamp(e));
            }
            TraceKind::Disconnect { node } => println!("{}  n{node} is DISCONNECTED from the network", stamp(e)),
            TraceKind::Connect { node } => println!("{}  n{node} is reconnected", stamp(e)),
            TraceKind::Propose { node, index: Some(i) } => {
                println!("{}  n{node} accepts a proposal at index {i}", stamp(e));
            }
            TraceKind::Note(s) => println!("{}  -- {s}", stamp(e)),
            _ => {}
        }
    })
}

fn leader_of(c: &Cluster) -> Option<(NodeId, Term)> {
    c.leaders().into_iter().max_by_key(|&(_, t)| t)
}

fn wait_for_leader(c: &mut Cluster, not: Option<NodeId>) -> Option<(NodeId, Term)> {
    let ok = c.run_until(|c| leader_of(c).is_some_and(|(l, _)| Some(l) != not), Duration::from_secs(10));
    if ok { leader_of(c) } else { None }
}

/// Proposes at the current leader and waits until every live node applied it.
fn commit(c: &mut Cluster, cmd: &str) -> Option<LogIndex> {
    let (leader, _) = wait_for_leader(c, None)?;
    let index = c.propose(leader, cmd).ok()?;
    let live = c.ids().into_iter().filter(|&id| c.is_up(id) && c.is_connected(id)).count();
    let done = c.run_until(|c| c.n_committed(index).0 >= live, Duration::from_secs(5));
    if done {
        let t = fmt_instant(c.now());
        let s = if live == 1 { "" } else { "s" };
        println!("t={t:>11}  {cmd:?} committed at index {index}, applied on {live} node{s}");
        Some(index)
    } else {
        None
    }
}

fn run(args: &Args) {
    println!("simulating {} nodes, seed {}, {} ms of virtual time", args.nodes, args.seed, args.duration_ms);
    println!("(election timeout 300-600 ms, heartbeat 110 ms, network 1-5 ms, disk 0-2 ms)\n");
    let mut c = Cluster::new(SimConfig::new(args.nodes, args.seed));
    let view = Rc::new(RefCell::new(View::default()));
    c.set_trace_observer(Some(timeline(&view)));

    c.note("waiting for the first election");
    let Some((leader, _)) = wait_for_leader(&mut c, None) else {
        println!("no leader within 10 s");
        return;
    };
    for k in 1..=3 {
        commit(&mut c, &format!("set x {k}"));
    }
    if args.nodes >= 3 {
        c.note(format!("scripted failure: disconnecting leader n{leader}"));
        c.disconnect(leader);
        let _ = c.propose(leader, "lost write"); // accepted by the isolated leader, never committed
        if let Some((next, term)) = wait_for_leader(&mut c, Some(leader)) {
            let old = c.node(leader).map(|n| (n.role(), n.term()));
            c.note(format!("n{next} leads term {term}; isolated n{leader} still sees itself as {old:?}"));
        }
        commit(&mut c, "set y 1");
        c.note(format!("reconnecting n{leader}"));
        c.connect(leader);
        c.run_for(Duration::from_millis(500));
        commit(&mut c, "set y 2");

        if let Some((l2, _)) = leader_of(&c) {
            c.note(format!("scripted crash of leader n{l2}"));
            c.crash(l2);
            let t0 = c.now();
            if wait_for_leader(&mut c, Some(l2)).is_some() {
                c.note(format!("re-elected after {} ms", c.now().saturating_since(t0).as_millis()));
            }
            commit(&mut c, "set z 1");
            c.run_for(Duration::from_millis(300));
            c.restart(l2);
            c.run_for(Duration::from_millis(1_000));
            commit(&mut c, "set z 2");
        }
    } else {
        c.note("leader failure needs at least 3 nodes: skipped");
    }
    let end = raft_core::Instant::from_micros(args.duration_ms * 1000);
    if c.now() < end {
        c.note(format!("idle until t={}", fmt_instant(end)));
        c.run_for(end.saturating_since(c.now()));
    }
    c.set_trace_observer(None);
    summary(&c);
}

fn summary(c: &Cluster) {
    println!("\n== summary at t={} (seed {})", fmt_instant(c.now()), c.seed());
    println!("leaders per term:");
    for (term, leader) in c.leaders_by_term() {
        println!("  term {term:>3}: n{leader}");
    }
    println!("highest index applied anywhere: {}", c.max_applied());
    let stats = c.stats();
    println!(
        "{:>5} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "node", "messages", "bytes", "votes", "appends", "dropped", "writes", "restarts"
    );
    for n in &stats.nodes {
        let votes = n.msgs.of_kind(MsgKind::RequestVote) + n.msgs.of_kind(MsgKind::RequestVoteResponse);
        let appends = n.msgs.of_kind(MsgKind::AppendEntries) + n.msgs.of_kind(MsgKind::AppendEntriesResponse);
        println!(
            "{:>5} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8}",
            format!("n{}", n.id),
            n.msgs.sent,
            n.msgs.bytes_sent,
            votes,
            appends,
            n.msgs.dropped,
            n.disk.completed,
            n.restarts
        );
    }
    let t = stats.total();
    println!("{:>5} {:>9} {:>11}", "total", t.sent, t.bytes_sent);
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "soak") {
        return soak(args.skip(1));
    }
    match parse_args(args) {
        Ok(Some(args)) => {
            run(&args);
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sim: {e} ({USAGE})");
            ExitCode::from(2)
        }
    }
}

fn soak(args: impl Iterator<Item = String>) -> ExitCode {
    use raft_tests::soak::{SoakArgs, USAGE, run};
    match SoakArgs::parse(args) {
        Ok(Some(a)) => match run(&a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("sim soak: {e}");
                ExitCode::from(2)
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sim soak: {e} ({USAGE})");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Option<Args>, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags() {
        let a = parse(&["--nodes", "7", "--seed=3", "--duration-ms", "100"]).unwrap().unwrap();
        assert_eq!((a.nodes, a.seed, a.duration_ms), (7, 3, 100));
        assert!(parse(&["--nodes", "16"]).is_err());
        assert!(parse(&["--nodes", "0"]).is_err());
        assert!(parse(&["--nodes"]).is_err());
        assert!(parse(&["--seed", "x"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
