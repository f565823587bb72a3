//! Helpers shared by the replication scenario tests (each test binary uses
//! a subset, hence `dead_code` is allowed).
#![allow(dead_code)]

use raft_core::{Bytes, Duration, LogIndex, NodeId, Payload, Term};
use raft_tests::sim::clients::Clients;
use raft_tests::sim::{Cluster, NetConfig, SimRng};

/// Milliseconds.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seconds.
pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// MIT's `RaftElectionTimeout`: a sleep length only.
pub(crate) const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);

/// The command bytes for MIT's integer command `x`.
pub(crate) fn cmd(x: u64) -> Bytes {
    Bytes::from(x.to_string().as_str())
}

/// The payload of [`cmd`]`(x)`.
pub(crate) fn payload(x: u64) -> Payload {
    Payload::Command(cmd(x))
}

/// The integer of a command payload made by [`cmd`], if it is one.
pub(crate) fn value(p: &Payload) -> Option<u64> {
    match p {
        Payload::Command(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A random MIT-style integer command (below 2^31).
pub(crate) fn rand_cmd(rng: &mut SimRng) -> u64 {
    rng.below(1 << 31)
}

/// MIT `wait`: polls `n_committed(index)` with a backoff (10 ms doubling to
/// 1 s, 30 polls) until `n` nodes applied it. Returns `None` if a node's term
/// moved past `start_term` (if given); panics if fewer than `n` applied it.
pub(crate) fn wait(c: &mut Cluster, index: LogIndex, n: usize, start_term: Option<Term>) -> Option<Payload> {
    let mut to = ms(10);
    for _ in 0..30 {
        if c.n_committed(index).0 >= n {
            break;
        }
        c.run_for(to);
        if to < secs(1) {
            to = Duration::from_micros(to.as_micros() * 2);
        }
        if let Some(t) = start_term
            && c.ids().into_iter().any(|id| c.node(id).is_some_and(|node| node.term() > t))
        {
            return None;
        }
    }
    let (nd, e) = c.n_committed(index);
    if nd < n {
        c.fail(format_args!("only {nd} decided for index {index}; wanted {n}"));
    }
    e.map(|e| e.payload)
}

/// The node `k` places after `id` in a cluster of `n` (MIT's `(i + k) % n`).
pub(crate) fn plus(id: NodeId, k: u64, n: usize) -> NodeId {
    NodeId((id.0 - 1 + k) % n as u64 + 1)
}

/// MIT `crash1`: disconnect, then crash (unfinished writes are lost).
pub(crate) fn crash1(c: &mut Cluster, id: NodeId) {
    c.disconnect(id);
    c.crash(id);
}

/// MIT `start1` followed by `connect`: restart from the durable state.
pub(crate) fn start1_connect(c: &mut Cluster, id: NodeId) {
    c.restart(id);
    c.connect(id);
}

/// Every index from 1 to `last` is applied by every node with the same
/// entry; returns the committed payloads in index order.
pub(crate) fn committed_log(c: &Cluster, last: LogIndex) -> Vec<Payload> {
    (1..=last.0)
        .map(|i| {
            let (nd, e) = c.n_committed(LogIndex(i));
            if nd != c.len() {
                c.fail(format_args!("index {i} applied by {nd} of {} nodes", c.len()));
            }
            e.map(|e| e.payload).unwrap_or_else(|| c.fail(format_args!("index {i} applied by nobody")))
        })
        .collect()
}

/// One MIT churn step: with probability 0.2 disconnect a random server; with
/// 0.5 connect one (restarting it first if down); with 0.2 crash one (MIT
/// `crash1`).
pub(crate) fn churn_step(c: &mut Cluster, rng: &mut SimRng) {
    let n = c.len() as u64;
    if rng.below(1000) < 200 {
        let i = NodeId(rng.below(n) + 1);
        c.disconnect(i);
    }
    if rng.below(1000) < 500 {
        let i = NodeId(rng.below(n) + 1);
        if !c.is_up(i) {
            c.restart(i);
        }
        c.connect(i);
    }
    if rng.below(1000) < 200 {
        let i = NodeId(rng.below(n) + 1);
        if c.is_up(i) {
            crash1(c, i);
        }
    }
}

/// Restarts every crashed node and reconnects everyone.
pub(crate) fn revive_all(c: &mut Cluster) {
    for id in c.ids() {
        if !c.is_up(id) {
            c.restart(id);
        }
        c.connect(id);
    }
}

/// Log matching, leader completeness (of the leader of the highest term)
/// and state machine safety on the final state. Call it on a healed cluster
/// with a leader, e.g. right after `one()`.
pub(crate) fn check_final_state(c: &mut Cluster) -> Result<(), String> {
    // Check-quorum may have deposed the leader of `one()` since (heavy
    // reordering delays its heartbeats' answers): wait for the next one.
    c.run_until(|c| !c.leaders().is_empty(), raft_core::Duration::from_secs(10));
    let c = &*c;
    let seed = c.seed();
    let ids = c.ids();
    // Log matching: for every pair, the highest index with equal terms has
    // identical logs up to it.
    for (k, &a) in ids.iter().enumerate() {
        for &b in &ids[k + 1..] {
            let (Some(na), Some(nb)) = (c.node(a), c.node(b)) else { continue };
            let top = na.last_log_index().min(nb.last_log_index());
            let Some(m) = (1..=top.0).rev().map(LogIndex).find(|&i| {
                let (ta, tb) = (na.log_term(i), nb.log_term(i));
                ta.is_some() && ta == tb
            }) else {
                continue;
            };
            let from = na.snapshot_index().max(nb.snapshot_index()).0 + 1;
            for i in (from..=m.0).map(LogIndex) {
                if na.log_entry(i) != nb.log_entry(i) {
                    return Err(format!(
                        "seed {seed}: log matching: n{a} and n{b} agree at i{m} but differ at i{i}: {:?} vs {:?}",
                        na.log_entry(i),
                        nb.log_entry(i)
                    ));
                }
            }
        }
    }
    // Leader completeness: the leader holds every committed entry.
    let Some((leader, _)) = c.leaders().into_iter().max_by_key(|&(_, term)| term) else {
        return Err(format!("seed {seed}: no leader at the end"));
    };
    let node = c.node(leader).ok_or_else(|| format!("seed {seed}: leader n{leader} is down"))?;
    for i in (node.snapshot_index().0 + 1..=c.max_applied().0).map(LogIndex) {
        let Some((term, payload)) = c.committed_entry(i) else { continue };
        let have = node.log_entry(i);
        if have.is_none_or(|e| e.term != term || &e.payload != payload) {
            return Err(format!("seed {seed}: leader n{leader} lacks committed i{i}/t{term}: it has {have:?}"));
        }
    }
    // State machine safety: every node applied the committed entry at each index.
    for i in (1..=c.max_applied().0).map(LogIndex) {
        let committed = c.committed_entry(i).map(|(t, p)| (t, p.clone()));
        for &id in &ids {
            if let Some(e) = c.applied_entry(id, i)
                && Some((e.term, e.payload.clone())) != committed
            {
                return Err(format!("seed {seed}: n{id} applied {e:?} at i{i}, but {committed:?} was committed"));
            }
        }
    }
    Ok(())
}

/// Heals everything (an adversary, if any, stays), lets the clients finish,
/// brings every node up to date, and runs the end-of-run checks: linearizable
/// history, equal replicas, the final logs.
pub(crate) fn finish_and_check(c: &mut Cluster, clients: &mut Clients) {
    *c.net_config_mut() = NetConfig::reliable();
    c.heal();
    revive_all(c);
    clients.stop();
    let finished = clients.finish(c, secs(30));
    assert!(finished, "seed {}: clients still waiting 30 s after healing", c.seed());
    // Every node applies everything committed.
    let kv = clients.kv().clone();
    let all_caught_up = c.run_until(
        |c| {
            let max = c.max_applied();
            c.ids().into_iter().all(|id| kv.last_applied(id) == max)
        },
        secs(10),
    );
    assert!(all_caught_up, "seed {}: replicas did not catch up", c.seed());
    kv.check_replicas_agree(c);
    c.one("final", c.len(), true);
    check_final_state(c).unwrap_or_else(|e| panic!("{e}"));
    clients.check_linearizable(c);
}
