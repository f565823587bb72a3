//! `raft-udp member list|add|remove`: the cluster's configuration, and
//! changes to it that return once committed.
//!
//! `add` and `remove` are driven by the configuration the leader reports:
//! each round lists it, and asks for the next step toward the wanted state
//! (add as learner, then promote once caught up; or remove), so a lost
//! answer or a new leader only costs another round.

use super::args;
use crate::client::MemberClient;
use crate::members::{Member, MemberOp, MemberResult, Members};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one listing waits for the leader's answer before the next server.
const LIST_ATTEMPT: Duration = Duration::from_millis(500);
/// How long one change waits for its answer (it comes once committed).
const CHANGE_ATTEMPT: Duration = Duration::from_secs(3);

#[derive(Args, Debug, Clone)]
pub(crate) struct MemberArgs {
    #[command(subcommand)]
    command: MemberCommand,
}

#[derive(Subcommand, Debug, Clone)]
enum MemberCommand {
    /// Print the configuration: leader, term, voters and learners with addresses, joint state.
    List {
        #[command(flatten)]
        conn: Conn,
        /// Give up after this many milliseconds.
        #[arg(long, default_value = "2000", value_parser = args::positive)]
        timeout_ms: u64,
    },
    /// Add node ID at ADDR as a learner, wait until it has caught up, then
    /// make it a voter (unless --learner). Exit 0 once committed, 1 if refused or timed out.
    Add {
        #[command(flatten)]
        conn: Conn,
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// The new node's address (its --listen), as every member will reach it.
        #[arg(long, value_name = "HOST:PORT", value_parser = args::addr)]
        addr: SocketAddr,
        /// Leave it a learner (receives the log, does not vote).
        #[arg(long)]
        learner: bool,
        /// Give up after this many milliseconds.
        #[arg(long, default_value = "30000", value_parser = args::positive)]
        timeout_ms: u64,
    },
    /// Remove node ID (the leader too: it steps down). Exit 0 once committed,
    /// 1 if refused or timed out.
    Remove {
        #[command(flatten)]
        conn: Conn,
        /// The node to remove.
        #[arg(long)]
        id: u64,
        /// Give up after this many milliseconds.
        #[arg(long, default_value = "10000", value_parser = args::positive)]
        timeout_ms: u64,
    },
}

/// How to reach the cluster.
#[derive(Args, Debug, Clone)]
struct Conn {
    /// The nodes' addresses, comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',', required = true, value_parser = args::addr)]
    servers: Vec<SocketAddr>,
    /// File holding the cluster key.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
}

/// What a change is after.
#[derive(Debug, Clone, Copy)]
pub(super) enum Goal {
    Voter(u64, SocketAddr),
    Learner(u64, SocketAddr),
    Gone(u64),
}

impl Goal {
    /// The next request toward the goal; `None` once reached.
    fn next_step(self, m: &Members) -> Option<MemberOp> {
        let voter = |id| m.voter_ids().contains(&id) || m.outgoing.contains(&id);
        let learner = |id| m.learner_ids().contains(&id);
        match self {
            Goal::Voter(id, addr) | Goal::Learner(id, addr) if !voter(id) && !learner(id) => {
                Some(MemberOp::AddLearner { id, addr: addr.to_string() })
            }
            Goal::Voter(id, _) if learner(id) => Some(MemberOp::Promote { id }),
            Goal::Gone(id) if voter(id) || learner(id) => Some(MemberOp::Remove { id }),
            _ => None,
        }
    }
}

pub(super) fn run(args: MemberArgs) -> Result<u8, String> {
    let (conn, timeout, goal) = match args.command {
        MemberCommand::List { conn, timeout_ms } => (conn, timeout_ms, None),
        MemberCommand::Add { conn, id, addr, learner, timeout_ms } => {
            (conn, timeout_ms, Some(if learner { Goal::Learner(id, addr) } else { Goal::Voter(id, addr) }))
        }
        MemberCommand::Remove { conn, id, timeout_ms } => (conn, timeout_ms, Some(Goal::Gone(id))),
    };
    let key = crate::keyfile::read_key(&conn.key_file)?;
    let deadline = Instant::now() + Duration::from_millis(timeout);
    super::runtime()?.block_on(async {
        let mut client =
            MemberClient::connect(conn.servers, key).await.map_err(|e| format!("cannot open a client socket: {e}"))?;
        let (line, code) = match goal {
            None => match list(&mut client, deadline).await {
                Ok(m) => (list_line(&m), 0),
                Err(e) => (failure(&e), 1),
            },
            Some(goal) => match change(&mut client, goal, deadline).await {
                Ok(m) => (json!({"ok": true, "voters": m.voter_ids(), "learners": m.learner_ids()}).to_string(), 0),
                Err(e) => (failure(&e), 1),
            },
        };
        super::kv::print_line(&line);
        Ok(code)
    })
}

fn failure(error: &str) -> String {
    json!({"ok": false, "error": error}).to_string()
}

fn list_line(m: &Members) -> String {
    let members = |v: &[Member]| -> Vec<Value> { v.iter().map(|m| json!({"id": m.id, "addr": m.addr})).collect() };
    json!({
        "ok": true,
        "leader": m.leader,
        "term": m.term,
        "voters": members(&m.voters),
        "learners": members(&m.learners),
        "joint": m.joint(),
    })
    .to_string()
}

/// The leader's configuration.
async fn list(client: &mut MemberClient, deadline: Instant) -> Result<Members, String> {
    let mut last = String::from("no leader answered");
    while Instant::now() < deadline {
        match client.ask(&MemberOp::List, LIST_ATTEMPT, deadline).await {
            Some(MemberResult::Done(m)) => return Ok(m),
            Some(MemberResult::Refused { error, .. } | MemberResult::Unknown(error)) => last = error,
            Some(MemberResult::NotLeader { .. }) | None => {}
        }
    }
    Err(format!("timed out: {last}"))
}

/// Steps toward `goal` until the committed configuration reaches it.
pub(super) async fn change(client: &mut MemberClient, goal: Goal, deadline: Instant) -> Result<Members, String> {
    let mut last = String::from("no leader answered");
    let mut asked = false;
    loop {
        if Instant::now() >= deadline {
            return Err(format!("timed out: {last}"));
        }
        let m = list(client, deadline).await?;
        if m.joint() {
            last = "a voter change is still under way".into();
            pause(deadline, 50).await;
            continue;
        }
        let Some(step) = goal.next_step(&m) else {
            return match goal {
                // Gone before anything was asked: it never was a member.
                Goal::Gone(id) if !asked => Err(format!("node {id} is not a member")),
                _ => Ok(m),
            };
        };
        asked = true;
        match client.ask(&step, CHANGE_ATTEMPT, deadline).await {
            Some(MemberResult::Done(_)) | None | Some(MemberResult::NotLeader { .. }) => {}
            Some(MemberResult::Unknown(why)) => last = why,
            Some(MemberResult::Refused { error, retry: true }) => {
                last = error;
                pause(deadline, 100).await;
            }
            Some(MemberResult::Refused { error, retry: false }) => return Err(error),
        }
    }
}

async fn pause(deadline: Instant, ms: u64) {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::sleep(Duration::from_millis(ms).min(left)).await;
}
