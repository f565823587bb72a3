//! Membership changes through the handle, over the UDP transport: a node
//! started with no configuration joins, learns every address from the
//! configuration it receives, becomes a voter that the old members reach
//! without restarting, and a removed node knows it.

use raft_core::{ChangeError, Config, NodeId};
use raft_host::{ClusterKey, KvCommand, KvOp, KvStore};
use raft_net::UdpOptions;
use raft_tokio::{Handle, MembershipError, NodeConfig, Tokio};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

type Kv = Handle<KvStore>;

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

async fn start(
    id: u64,
    members: &[u64],
    peers: BTreeMap<NodeId, SocketAddr>,
    s: UdpSocket,
    dir: &std::path::Path,
) -> Kv {
    let mut raft = Config::new(NodeId(id), members.iter().copied().map(NodeId));
    raft.heartbeat_interval = raft_core::Duration::from_millis(30);
    raft.election_timeout_min = raft_core::Duration::from_millis(150);
    raft.election_timeout_max = raft_core::Duration::from_millis(300);
    let listen = s.local_addr().unwrap();
    let key = ClusterKey::from_bytes([7; 32]);
    let mut config = NodeConfig::new(raft, dir.join(id.to_string()), listen, peers, key);
    config.propose_timeout = Duration::from_secs(5);
    let udp = UdpOptions::new(1400).with_socket(s);
    let (handle, _app) = raft_net::Node::start_udp(Tokio::current(), config, KvStore::new(), udp).await.unwrap();
    handle
}

/// Polls `f` every 20 ms until it is `Some`, for at most 10 s.
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn leader_of(nodes: &[&Kv]) -> Option<Kv> {
    nodes.iter().find(|h| h.status().role.role == raft_core::Role::Leader).map(|h| (*h).clone())
}

async fn put(nodes: &[&Kv], seq: u64) {
    let cmd = KvCommand { client: 1, seq, op: KvOp::put(format!("k{seq}"), "v") };
    eventually("a write to commit", async || leader_of(nodes)?.propose(&cmd).await.ok().map(|_| ())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_becomes_a_voter_the_others_reach_and_a_removed_node_knows_it() {
    let dir = tempfile::tempdir().unwrap();
    let sockets: Vec<UdpSocket> = (0..4).map(|_| socket()).collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut started = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let id = i as u64 + 1;
        let (members, peers): (Vec<u64>, BTreeMap<NodeId, SocketAddr>) = if id <= 3 {
            let peers = (1..=3).filter(|&p| p != id).map(|p| (NodeId(p), addrs[p as usize - 1])).collect();
            (vec![1, 2, 3], peers)
        } else {
            (Vec::new(), BTreeMap::new()) // joining: no configuration, no peers
        };
        started.push(start(id, &members, peers, s, dir.path()).await);
    }
    let all: Vec<&Kv> = started.iter().collect();
    put(&all[..3], 1).await;

    let leader = leader_of(&all).unwrap();
    let m = leader.add_learner(NodeId(4), addrs[3]).await.unwrap();
    assert!(m.learners.contains(&NodeId(4)));
    // The joining node learns every member's address from the configuration.
    let n4 = started[3].clone();
    eventually("node 4 to know every address", async || {
        let s = n4.status();
        let known: BTreeMap<NodeId, SocketAddr> = s.peers.iter().map(|p| (p.id, p.addr)).collect();
        let want: BTreeMap<NodeId, SocketAddr> = (1..=3).map(|p| (NodeId(p), addrs[p as usize - 1])).collect();
        (known == want && s.membership.learners.contains(&NodeId(4))).then_some(())
    })
    .await;
    let m = eventually("the promotion", async || match leader_of(&all)?.promote(NodeId(4)).await {
        Ok(m) => Some(m),
        Err(MembershipError::Refused(ChangeError::LearnerBehind { .. })) => None,
        Err(e) => panic!("promotion failed: {e}"),
    })
    .await;
    assert_eq!(m.voters.len(), 4);
    assert!(!m.is_joint());

    // Stop the leader: the two old followers and node 4 (3 of 4 voters)
    // must elect a leader, so the old members reach node 4 without restarting.
    let old = leader_of(&all).unwrap();
    let old_id = old.id();
    old.shutdown().await;
    let rest: Vec<&Kv> = started.iter().filter(|h| h.id() != old_id).collect();
    put(&rest, 2).await;

    // Remove a follower that is still running: it learns it was removed.
    let new_leader = leader_of(&rest).unwrap();
    let victim = rest.iter().find(|h| h.id() != new_leader.id() && h.id() != NodeId(4)).copied().unwrap().clone();
    let m = new_leader.remove(victim.id()).await.unwrap();
    assert!(!m.contains(victim.id()));
    eventually("the removed node to know it", async || victim.status().removed.then_some(())).await;
    assert_eq!(
        new_leader.remove(NodeId(99)).await.err(),
        Some(MembershipError::Refused(ChangeError::UnknownNode(NodeId(99))))
    );
    for h in started {
        h.shutdown().await;
    }
}
