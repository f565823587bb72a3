//! The physical floor of one durable 3-node write, measured on this machine
//! before a benchmark: `client↔leader round trip + max(leader fdatasync,
//! leader↔follower round trip + follower fdatasync)`.
//!
//! * Round trips are status requests answered by the running nodes, over
//!   the same UDP sockets the clients and peers use (so they include one
//!   seal, one open and the node's event loop, as any write does). The
//!   leader↔follower trip is taken to be the client↔follower one: on one
//!   machine both are loopback trips to the same sockets.
//! * fdatasync is timed on a file in `--floor-dir` (put it on the nodes'
//!   file system) by [`raft_host::storage::probe`], which writes it the way
//!   the log writes a segment, with records of the bench's entry size.

use crate::client::bind_for;
use crate::packet::{self, MAX_DATAGRAM, NodeStatus, Packet};
use crate::random_u64;
use raft_host::ClusterKey;
use raft_host::storage::probe::{self, median};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Samples of each measurement.
const SAMPLES: usize = 300;

/// The floor's parts, each the median of its samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Floor {
    pub(crate) client_leader_rtt: Duration,
    pub(crate) leader_follower_rtt: Duration,
    pub(crate) fdatasync: Duration,
}

impl Floor {
    /// The floor of one durable write from one client.
    pub(crate) fn total(&self) -> Duration {
        self.client_leader_rtt + self.fdatasync.max(self.leader_follower_rtt + self.fdatasync)
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "floor_ms": ms(self.total()),
            "floor_client_leader_rtt_ms": ms(self.client_leader_rtt),
            "floor_leader_follower_rtt_ms": ms(self.leader_follower_rtt),
            "floor_fdatasync_ms": ms(self.fdatasync),
        })
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Measures the floor against the cluster at `servers`, syncing in `dir`
/// records of `record_bytes`.
pub(crate) async fn measure(
    servers: &[SocketAddr],
    key: &ClusterKey,
    dir: &Path,
    record_bytes: usize,
) -> Result<Floor, String> {
    let (leader, follower) = find_leader(servers, key).await?;
    let client_leader_rtt = median(round_trips(leader, key).await?);
    let leader_follower_rtt = match follower {
        Some(f) => median(round_trips(f, key).await?),
        None => client_leader_rtt,
    };
    let dir = dir.to_path_buf();
    let fdatasync = tokio::task::spawn_blocking(move || probe::fdatasync_samples(&dir, record_bytes, SAMPLES))
        .await
        .map_err(|e| format!("floor probe: {e}"))?
        .map_err(|e| format!("floor probe: {e}"))?;
    Ok(Floor { client_leader_rtt, leader_follower_rtt, fdatasync: median(fdatasync) })
}

/// The leader's address and one follower's, from their status.
async fn find_leader(servers: &[SocketAddr], key: &ClusterKey) -> Result<(SocketAddr, Option<SocketAddr>), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let answers = crate::client::query_status(servers, key, Duration::from_millis(500))
            .await
            .map_err(|e| format!("cannot open a client socket: {e}"))?;
        let role = |s: &Option<NodeStatus>, r: &str| s.as_ref().is_some_and(|s| s.role == r);
        if let Some(i) = answers.iter().position(|s| role(s, "leader")) {
            let follower = answers.iter().position(|s| role(s, "follower")).map(|j| servers[j]);
            return Ok((servers[i], follower));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("floor probe: no leader within 10 s".into())
}

/// Round trips of status queries to `addr`, one at a time on one socket.
async fn round_trips(addr: SocketAddr, key: &ClusterKey) -> Result<Vec<Duration>, String> {
    let socket = bind_for(addr).await.map_err(|e| format!("cannot open a client socket: {e}"))?;
    let me = random_u64();
    let until = Instant::now() + Duration::from_secs(3);
    let cookie = crate::client::fetch_cookie(&socket, addr, key, me, until)
        .await
        .ok_or_else(|| format!("floor probe: {addr} does not answer"))?;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut nonce = random_u64();
    for _ in 0..SAMPLES * 2 {
        if samples.len() == SAMPLES {
            break;
        }
        nonce = nonce.wrapping_add(1);
        let Some(p) = packet::encode(&Packet::StatusQuery { nonce, cookie }) else { continue };
        let frame = key.seal(me, &p);
        let started = Instant::now();
        if socket.send_to(&frame, addr).await.is_err() {
            continue;
        }
        let until = started + Duration::from_millis(200);
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(until.into(), socket.recv_from(&mut buf)).await {
            let Ok((_, payload)) = key.open(&buf[..n]) else { continue };
            if let Ok(Packet::StatusReply { nonce: got, .. }) = packet::decode(payload)
                && got == nonce
            {
                samples.push(started.elapsed());
                break;
            }
        }
    }
    if samples.is_empty() {
        return Err(format!("floor probe: {addr} does not answer"));
    }
    Ok(samples)
}
