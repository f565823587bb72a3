//! The API tests' bodies, on any runtime: each runtime crate's
//! `tests/api.rs` runs every one of them on its [`Runtime`].
//! They check the handle's promises on one process: errors that promise
//! "not applied", link counters, start-up errors, and what a shutdown
//! leaves behind.

use futures_lite::FutureExt;
use raft_core::{Config, NodeId, ReadMode, Role};
use raft_host::kv::{KvCommand, KvOp, encode_command};
use raft_host::secure::{Incarnation, KeyFile};
use raft_host::{ClusterKey, KvStore};
use raft_net::{Node, NodeConfig, ProposeError, Runtime, StartError, TransferError};
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

fn key() -> KeyFile {
    KeyFile::new(ClusterKey::from_bytes([1; 32]), Incarnation::from_bytes([2; 16]))
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
    assert_eq!((status.read_mode, status.transfer_target), (ReadMode::Safe, None));
    assert_eq!(node.transfer_leadership(NodeId(2)).await, Err(TransferError::NotLeader { leader_hint: None }));
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
    assert_eq!(other.transfer_leadership(NodeId(2)).await, Err(TransferError::Shutdown));
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

/// `propose_unless` answers from the state machine when the check does
/// (nothing reaches the log), and proposes otherwise.
pub async fn propose_unless_proposes_only_what_the_check_leaves<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let raft = Config::new(NodeId(1), [NodeId(1)]);
    let config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key());
    let node = Node::start(rt.clone(), config, KvStore::new()).await.unwrap();
    node.role_watch().wait_for(|r| r.role == Role::Leader).await.unwrap();
    // Answered when the key is there already.
    let check = |kv: &KvStore| kv.get_local("k").map(|v| Ok(raft_host::KvOutput::get(Some(v))));
    // The key is not there: proposed and applied (the output is apply's).
    assert_eq!(node.propose_unless(check, put(1)).await.unwrap(), Ok(raft_host::KvOutput::Put));
    let last = node.status().last_log_index;
    let answer = node.propose_unless(check, put(2)).await.unwrap();
    assert_eq!(answer, Ok(raft_host::KvOutput::get(Some("v"))));
    assert_eq!(node.status().last_log_index, last, "answered by the check: nothing proposed");
    node.shutdown().await;
}

/// `GET path` over HTTP/1.0 (blocking; the metrics server has a thread of
/// its own): the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    Ok((head.lines().next().unwrap_or_default().to_string(), body.to_string()))
}

/// The value of sample `name` (labels included, as printed).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `NodeConfig::metrics_listen` serves the node's metrics over HTTP, they
/// follow what the node does, and a shutdown stops the server too.
pub async fn metrics_are_served_over_http<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let raft = Config::new(NodeId(1), [NodeId(1)]);
    let mut config = NodeConfig::new(raft, dir.path(), "127.0.0.1:0".parse().unwrap(), [], key());
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let node = Node::start(rt.clone(), config, KvStore::new()).await.unwrap();
    let addr = node.metrics_addr().expect("serving metrics");
    assert_ne!(addr.port(), 0);
    node.role_watch().wait_for(|r| r.role == Role::Leader).await.unwrap();
    for seq in 1..=3 {
        assert_eq!(node.propose_bytes(put(seq)).await.unwrap(), Ok(raft_host::KvOutput::Put));
    }
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert!(status.contains("200"), "{status}");
    assert_eq!(sample(&body, "raft_role{role=\"leader\"}"), Some(1.0), "{body}");
    assert_eq!(sample(&body, "raft_proposals_total{outcome=\"applied\"}"), Some(3.0), "{body}");
    assert!(sample(&body, "raft_commit_index").unwrap() >= 3.0, "{body}");
    assert!(sample(&body, "raft_disk_sync_seconds_count").unwrap() >= 3.0, "{body}");
    assert!(node.metrics_text().contains("raft_term "));
    let tasks = node.task_monitor();
    node.shutdown().await;
    assert_eq!(tasks.running(), 0, "the metrics thread is counted and ends with the node");
    assert!(http_get(addr, "/metrics").is_err(), "still serving after shutdown");
}
