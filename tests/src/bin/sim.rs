//! Demo of the deterministic simulator: a readable timeline, in virtual time,
//! of elections, a leader failure and recovery, and a few committed commands.
//!
//! `cargo run -p raft-tests --bin sim -- --nodes 5 --seed 7 [--duration-ms 20000]`
//!
//! `sim soak [--seeds N] [--jobs J] ...` instead runs every scenario and
//! property test binary over many seeds on every core (see
//! [`raft_tests::soak`]): `cargo run -p raft-tests --bin sim -- soak --seeds 10000`.

use clap::{Parser, Subcommand};
use raft_core::{Duration, LogIndex, NodeId, Role, Term};
use raft_tests::sim::trace::{MsgSummary, fmt_instant};
use raft_tests::sim::{Cluster, MsgKind, SimConfig, TraceEvent, TraceKind};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;

/// `sim`: one simulated run printed as a timeline, or `sim soak`.
#[derive(Debug, Parser)]
#[command(name = "sim", about = "The deterministic simulator: one run as a timeline, or a soak over many seeds")]
struct Cli {
    #[command(subcommand)]
    soak: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every scenario and property test binary over many seeds, on every core.
    Soak(raft_tests::soak::SoakArgs),
}

/// The simulated run.
#[derive(Debug, clap::Args)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=15))]
    nodes: u64,
    /// The run's seed: the same seed replays the same run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Simulated time to run, in milliseconds.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    duration_ms: u64,
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
    let nodes = usize::try_from(args.nodes).expect("at most 15 nodes");
    let mut c = Cluster::new(SimConfig::new(nodes, args.seed));
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
    let cli = Cli::parse();
    match cli.soak {
        Some(Command::Soak(a)) => match raft_tests::soak::run(&a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("sim soak: {e}");
                ExitCode::from(2)
            }
        },
        None => {
            run(&cli.run);
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sim").chain(v.iter().copied()))
    }

    #[test]
    fn flags() {
        let a = parse(&["--nodes", "7", "--seed=3", "--duration-ms", "100"]).unwrap().run;
        assert_eq!((a.nodes, a.seed, a.duration_ms), (7, 3, 100));
        for bad in [&["--nodes", "16"][..], &["--nodes", "0"], &["--nodes"], &["--seed", "x"], &["--bogus"]] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let soak = parse(&["soak", "--seeds", "5"]).unwrap();
        assert!(matches!(soak.soak, Some(Command::Soak(a)) if a.seeds == 5));
        assert_eq!(parse(&["soak", "--seeds", "0"]).unwrap_err().exit_code(), 2);
    }
}
