//! The API tests' bodies, on any runtime: each runtime crate's
//! `tests/api.rs` runs every one of them on its [`Runtime`].
//! They check the handle's promises on one process: errors that promise
//! "not applied", link counters, start-up errors, and what a shutdown
//! leaves behind.

use futures_lite::FutureExt;
use raft_core::{Config, NodeId, Role};
use raft_host::kv::{KvCommand, KvOp, encode_command};
use raft_host::{ClusterKey, KvStore};
use raft_net::{Node, NodeConfig, ProposeError, Runtime, StartError};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    rt.timer(Instant::now() + d).await;
}

/// `f`, or `None` after `d`.
async fn within<R: Runtime, T>(rt: &R, d: Duration, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            rt.timer(Instant::now() + d).await;
            None
        })
        .await
}

fn key() -> ClusterKey {
    ClusterKey::from_bytes([1; 32])
}

/// An address nothing listens on.
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn put(seq: u64) -> Vec<u8> {
    encode_command(&KvCommand { client: 1, seq, op: KvOp::put("k", "v") })
}

/// A node whose peers never answer: refusals that promise "not applied",
/// pre-votes dropped and counted, no term raised alone, a clean shutdown.
pub async fn a_node_without_peers_refuses_and_counts_dropped_messages<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let raft = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
    let peers = [(NodeId(2), dead_addr()), (NodeId(3), dead_addr())];
    let mut config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), peers, key());
    config.reconnect_max = Duration::from_millis(100);
    let node = Node::start(rt.clone(), config, KvStore::new()).await.unwrap();

    // Never a leader alone: definitely-not-applied answers.
    assert_eq!(node.propose_bytes(put(1)).await, Err(ProposeError::NotLeader { leader_hint: None }));
    let huge = vec![0u8; (512 << 10) + 1];
    assert!(matches!(node.propose_bytes(huge).await, Err(ProposeError::TooLarge { .. })));

    // It asks for pre-votes (sent, and dropped for want of a connection),
    // and never raises its term alone.
    let mut watch = node.role_watch();
    watch.wait_for(|r| r.role == Role::PreCandidate).await.unwrap();
    sleep(&rt, Duration::from_millis(800)).await;
    let status = node.status();
    assert_eq!(status.role.term, raft_core::Term(0));
    assert_eq!(status.peers.len(), 2);
    for p in &status.peers {
        assert!(!p.connected && p.connects == 0 && p.dropped > 0, "{p:?}");
    }

    // Shutdown through one clone: the other sees `Shutdown`, the watch ends.
    let other = node.clone();
    let tasks = node.task_monitor();
    node.shutdown().await;
    assert_eq!(tasks.running(), 0);
    assert_eq!(other.propose_bytes(put(2)).await, Err(ProposeError::Shutdown));
    assert!(other.status().stopped);
    // The watch reports what changed before the stop, then ends.
    let mut changes = 0;
    while watch.changed().await.is_some() {
        changes += 1;
        assert!(changes < 100);
    }
}

/// Start-up errors (a member without an address, a data directory in use,
/// an address in use) are typed and leave nothing running.
pub async fn start_up_errors_leave_nothing_running<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let raft = Config::new(NodeId(1), [NodeId(1), NodeId(2)]);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();

    // Peers must be exactly the other members.
    let bad = NodeConfig::new(raft.clone(), dir.path(), listen, [], key());
    assert!(matches!(
        Node::start(rt.clone(), bad, KvStore::new()).await,
        Err(StartError::NoAddress { member: NodeId(2) })
    ));

    // One data directory, one node.
    let config = NodeConfig::new(raft, dir.path(), listen, [(NodeId(2), dead_addr())], key());
    let first = Node::start(rt.clone(), config.clone(), KvStore::new()).await.unwrap();
    assert!(matches!(Node::start(rt.clone(), config, KvStore::new()).await, Err(StartError::Storage(_))));

    // Listening where another node listens.
    let raft = Config::new(NodeId(1), [NodeId(1)]);
    let dir2 = tempfile::tempdir().unwrap();
    let taken = NodeConfig::new(raft, dir2.path(), first.local_addr(), [], key());
    assert!(matches!(Node::start(rt.clone(), taken, KvStore::new()).await, Err(StartError::Bind { .. })));
    first.shutdown().await;
}

/// Dropping the last handle stops the node's tasks.
pub async fn dropping_every_handle_stops_the_node<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let raft = Config::new(NodeId(1), [NodeId(1)]);
    let config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key());
    let node = Node::start(rt.clone(), config, KvStore::new()).await.unwrap();
    node.role_watch().wait_for(|r| r.role == Role::Leader).await.unwrap();
    assert_eq!(node.propose_bytes(put(1)).await.unwrap(), Ok(raft_host::KvOutput::Put));
    let tasks = node.task_monitor();
    drop(node);
    within(&rt, Duration::from_secs(5), tasks.stopped()).await.expect("the node stopped");
}
