//! `cluster`'s `add` and `remove N`: a new node process started with
//! `--join` and added (learner, then voter), or a member removed and its
//! process stopped.

use super::cluster::{Nodes, free_addrs};
use super::member::{Goal, change};
use crate::client::MemberClient;
use raft_host::ClusterKey;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `add` and `remove` wait for the change.
const WAIT: Duration = Duration::from_secs(30);

async fn client(nodes: &Arc<Mutex<Nodes>>, key: &ClusterKey) -> Result<MemberClient, String> {
    let addrs = nodes.lock().map_err(|_| "lock poisoned")?.addrs.clone();
    MemberClient::connect(addrs, key.clone()).await.map_err(|e| format!("cannot open a client socket: {e}"))
}

/// Starts node N+1 with `--join` on a free port and adds it as a voter.
pub(super) async fn add(nodes: &Arc<Mutex<Nodes>>, key: &ClusterKey) -> String {
    let started = (|| {
        let addr = free_addrs(1)?[0];
        let mut g = nodes.lock().map_err(|_| "lock poisoned")?;
        g.addrs.push(addr);
        g.children.push(None);
        let i = g.addrs.len() - 1;
        g.start(i)?;
        Ok::<_, String>((i as u64 + 1, addr))
    })();
    let (id, addr) = match started {
        Ok(s) => s,
        Err(e) => return format!("cannot start a new node: {e}"),
    };
    let result = match client(nodes, key).await {
        Ok(mut c) => change(&mut c, Goal::Voter(id, addr), Instant::now() + WAIT).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(m) => format!("node {id} ({addr}) added; voters {:?}, learners {:?}", m.voter_ids(), m.learner_ids()),
        Err(e) => format!("node {id} ({addr}) started with --join but not added: {e}"),
    }
}

/// Removes node `i + 1` from the configuration, then stops its process.
pub(super) async fn remove(nodes: &Arc<Mutex<Nodes>>, key: &ClusterKey, i: usize) -> String {
    let id = i as u64 + 1;
    let result = match client(nodes, key).await {
        Ok(mut c) => change(&mut c, Goal::Gone(id), Instant::now() + WAIT).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(m) => {
            let stopped = nodes.lock().map(|mut g| g.kill9(i)).unwrap_or(false);
            let process = if stopped { "; its process stopped" } else { "" };
            format!("node {id} removed{process}; voters {:?}, learners {:?}", m.voter_ids(), m.learner_ids())
        }
        Err(e) => format!("node {id} not removed: {e}"),
    }
}
