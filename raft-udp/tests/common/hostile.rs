//! A hostile UDP proxy on the path of every node and of its clients: it
//! forwards what it is given, but also records datagrams, copies each peer
//! datagram to a third node, and replays recorded ones, old and new, to
//! their receiver and to others.
//!
//! The proxy owns one socket `P_k` per node `k` ([`HostileProxy::addrs`]).
//! Nodes listen on their real addresses and are told that each peer `j`
//! lives at `P_j`; clients are told the `P_k` too. A datagram arriving on
//! `P_i` from node `k`'s real address is peer traffic from `k` to `i`: it
//! goes on to node `i` *from `P_k`*, the address `i` has for `k`, so node
//! `i`'s answers (and its handshake replies, which go to configured
//! addresses only) come back through the proxy. A datagram arriving on
//! `P_i` from any other address is a client's: it goes on to node `i` from
//! an upstream socket of that client's own, and what nodes send to that
//! socket goes back to the client from their `P_j`. A node therefore sees
//! each client at one address, for which its address cookie holds, and a
//! replay from that socket is what an attacker spoofing the client's
//! address would send.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Datagrams kept per kind for replays; beyond this a random kept one is
/// replaced (a reservoir), so the oldest stay possible picks.
const KEEP: usize = 20_000;

/// How hostile the proxy is; changed while it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hostility {
    /// Copy each peer datagram from `k` to `i` to a third node as well.
    pub copy: bool,
    /// Recorded peer datagrams replayed per millisecond, each to its own
    /// receiver and to one other node (maybe its sender).
    pub peer_replays_per_ms: u32,
    /// One recorded client datagram is replayed every this many
    /// milliseconds (0: never), to its own node and to another one.
    pub client_replay_every_ms: u32,
}

/// What the proxy did; every count only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Peer datagrams forwarded to their receivers.
    pub peer_forwarded: u64,
    /// Copies of peer datagrams sent to a third node.
    pub peer_copied: u64,
    /// Recorded peer datagrams sent again (to any node).
    pub peer_replayed: u64,
    /// Client datagrams forwarded to nodes.
    pub client_forwarded: u64,
    /// Recorded client datagrams sent again (to any node).
    pub client_replayed: u64,
    /// Datagrams nodes sent to clients, forwarded.
    pub client_replies: u64,
}

/// A client datagram as recorded: who sent it, to which node.
#[derive(Clone, Debug)]
pub struct ClientDatagram {
    /// The client's own address.
    pub client: SocketAddr,
    /// The node it was for.
    pub node: usize,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
struct Counts {
    peer_forwarded: AtomicU64,
    peer_copied: AtomicU64,
    peer_replayed: AtomicU64,
    client_forwarded: AtomicU64,
    client_replayed: AtomicU64,
    client_replies: AtomicU64,
}

struct Shared {
    /// Real addresses of the nodes.
    nodes: Vec<SocketAddr>,
    /// `P_k` for each node `k`.
    fronts: Vec<Arc<UdpSocket>>,
    /// Client address -> the socket its datagrams reach the nodes from.
    upstream: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    /// Recorded peer datagrams: (sender, receiver, bytes).
    peer_log: Mutex<Vec<(usize, usize, Vec<u8>)>>,
    client_log: Mutex<Vec<ClientDatagram>>,
    hostility: Mutex<Hostility>,
    counts: Counts,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A xorshift generator: the proxy's choices need no quality, only speed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

fn keep<T>(log: &Mutex<Vec<T>>, item: T, rng: &mut Rng) {
    let mut log = log.lock().unwrap();
    if log.len() < KEEP {
        log.push(item);
    } else {
        let i = rng.below(KEEP);
        log[i] = item;
    }
}

fn bound_socket() -> Arc<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    Arc::new(socket)
}

pub struct HostileProxy {
    /// `addrs[k]`: the address of node `k` that peers and clients must use.
    pub addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
}

impl HostileProxy {
    /// A proxy for nodes listening on `nodes`, forwarding faithfully until
    /// told otherwise ([`HostileProxy::set`]). `seed` drives its choices.
    pub fn start(nodes: &[SocketAddr], seed: u64) -> HostileProxy {
        let fronts: Vec<Arc<UdpSocket>> = nodes.iter().map(|_| bound_socket()).collect();
        let addrs = fronts.iter().map(|s| s.local_addr().unwrap()).collect();
        let shared = Arc::new(Shared {
            nodes: nodes.to_vec(),
            fronts,
            upstream: Mutex::default(),
            peer_log: Mutex::default(),
            client_log: Mutex::default(),
            hostility: Mutex::default(),
            counts: Counts::default(),
            stop: AtomicBool::new(false),
            threads: Mutex::default(),
        });
        let mut threads = Vec::new();
        for k in 0..nodes.len() {
            let shared = shared.clone();
            let rng = Rng(seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            threads.push(std::thread::spawn(move || front_loop(&shared, k, rng)));
        }
        let replayer = shared.clone();
        threads.push(std::thread::spawn(move || replay_loop(&replayer, Rng(seed.rotate_left(17) | 1))));
        shared.threads.lock().unwrap().extend(threads);
        HostileProxy { addrs, shared }
    }

    /// `routes[i][j]`: the address node `i` is told for node `j`.
    pub fn routes(&self) -> Vec<Vec<SocketAddr>> {
        vec![self.addrs.clone(); self.addrs.len()]
    }

    pub fn set(&self, h: Hostility) {
        *self.shared.hostility.lock().unwrap() = h;
    }

    pub fn hostility(&self) -> Hostility {
        *self.shared.hostility.lock().unwrap()
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            peer_forwarded: get(&c.peer_forwarded),
            peer_copied: get(&c.peer_copied),
            peer_replayed: get(&c.peer_replayed),
            client_forwarded: get(&c.client_forwarded),
            client_replayed: get(&c.client_replayed),
            client_replies: get(&c.client_replies),
        }
    }

    /// The client datagrams recorded so far (a sample once there are many).
    pub fn client_datagrams(&self) -> Vec<ClientDatagram> {
        self.shared.client_log.lock().unwrap().clone()
    }

    /// Sends `d` again to node `to`, from the address its client's
    /// datagrams reach the nodes from.
    pub fn replay_client(&self, d: &ClientDatagram, to: usize) {
        let Some(up) = self.shared.upstream.lock().unwrap().get(&d.client).cloned() else { return };
        if up.send_to(&d.bytes, self.shared.nodes[to]).is_ok() {
            self.shared.counts.client_replayed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for HostileProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Upstream threads may be added while the first ones end.
        loop {
            let Some(t) = self.shared.threads.lock().unwrap().pop() else { break };
            let _ = t.join();
        }
    }
}

/// Receives on `P_k`: peer traffic for node `k`, and clients' datagrams.
fn front_loop(shared: &Arc<Shared>, k: usize, mut rng: Rng) {
    let socket = &shared.fronts[k];
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
        let bytes = &buf[..len];
        if let Some(j) = shared.nodes.iter().position(|a| *a == from) {
            // From node j to node k: on to k, from P_j.
            if j == k {
                continue;
            }
            let from_j = &shared.fronts[j];
            if from_j.send_to(bytes, shared.nodes[k]).is_ok() {
                shared.counts.peer_forwarded.fetch_add(1, Ordering::Relaxed);
            }
            if shared.hostility.lock().unwrap().copy {
                let others: Vec<usize> = (0..shared.nodes.len()).filter(|m| *m != j && *m != k).collect();
                if !others.is_empty() {
                    let m = others[rng.below(others.len())];
                    if from_j.send_to(bytes, shared.nodes[m]).is_ok() {
                        shared.counts.peer_copied.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            keep(&shared.peer_log, (j, k, bytes.to_vec()), &mut rng);
        } else {
            let up = upstream(shared, from);
            if up.send_to(bytes, shared.nodes[k]).is_ok() {
                shared.counts.client_forwarded.fetch_add(1, Ordering::Relaxed);
            }
            keep(&shared.client_log, ClientDatagram { client: from, node: k, bytes: bytes.to_vec() }, &mut rng);
        }
    }
}

/// The upstream socket of `client`, made (with its receiving thread) on
/// first use.
fn upstream(shared: &Arc<Shared>, client: SocketAddr) -> Arc<UdpSocket> {
    let mut map = shared.upstream.lock().unwrap();
    if let Some(s) = map.get(&client) {
        return s.clone();
    }
    let socket = bound_socket();
    map.insert(client, socket.clone());
    let (s, sh) = (socket.clone(), shared.clone());
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !sh.stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = s.recv_from(&mut buf) else { continue };
            // From node j: back to the client, from P_j.
            let Some(j) = sh.nodes.iter().position(|a| *a == from) else { continue };
            if sh.fronts[j].send_to(&buf[..len], client).is_ok() {
                sh.counts.client_replies.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    shared.threads.lock().unwrap().push(t);
    socket
}

/// Replays recorded datagrams at the rates [`Hostility`] sets.
fn replay_loop(shared: &Arc<Shared>, mut rng: Rng) {
    let n = shared.nodes.len();
    let mut tick = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
        tick += 1;
        let h = *shared.hostility.lock().unwrap();
        for _ in 0..h.peer_replays_per_ms {
            let picked = {
                let log = shared.peer_log.lock().unwrap();
                (!log.is_empty()).then(|| log[rng.below(log.len())].clone())
            };
            let Some((j, k, bytes)) = picked else { break };
            // To its own receiver, and to anyone else (its sender included).
            let other = (k + 1 + rng.below(n - 1)) % n;
            for to in [k, other] {
                if shared.fronts[j].send_to(&bytes, shared.nodes[to]).is_ok() {
                    shared.counts.peer_replayed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if h.client_replay_every_ms > 0 && tick.is_multiple_of(u64::from(h.client_replay_every_ms)) {
            let picked = {
                let log = shared.client_log.lock().unwrap();
                (!log.is_empty()).then(|| log[rng.below(log.len())].clone())
            };
            let Some(d) = picked else { continue };
            let Some(up) = shared.upstream.lock().unwrap().get(&d.client).cloned() else { continue };
            let other = (d.node + 1 + rng.below(n - 1)) % n;
            for to in [d.node, other] {
                if up.send_to(&d.bytes, shared.nodes[to]).is_ok() {
                    shared.counts.client_replayed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
