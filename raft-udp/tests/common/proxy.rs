//! A fault-injecting UDP proxy between peers: one socket per directed link
//! `i -> j`, forwarding to node `j` after dropping, delaying, duplicating,
//! or blocking (partition) what node `i` sends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What happens to each datagram, per link.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Chance of dropping, in percent.
    pub drop_pct: u64,
    /// Chance of sending twice, in percent.
    pub dup_pct: u64,
    /// Each copy is delayed uniformly in `0..=max_delay_ms`.
    pub max_delay_ms: u64,
    /// `blocked[i][j]`: everything from `i` to `j` is dropped.
    pub blocked: Vec<Vec<bool>>,
}

type Delayed = Reverse<(Instant, u64, usize, Vec<u8>)>;

pub struct Proxy {
    /// `routes[i][j]`: the address node `i` must use for node `j`.
    pub routes: Vec<Vec<SocketAddr>>,
    faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy for nodes listening on `nodes`.
    pub fn start(nodes: &[SocketAddr]) -> Proxy {
        let n = nodes.len();
        let faults = Arc::new(Mutex::new(Faults { blocked: vec![vec![false; n]; n], ..Faults::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let queue: Arc<Mutex<BinaryHeap<Delayed>>> = Arc::default();
        let mut routes = vec![nodes.to_vec(); n];
        let mut links: Vec<(Arc<UdpSocket>, SocketAddr)> = Vec::new();
        let mut threads = Vec::new();
        for (i, route) in routes.iter_mut().enumerate() {
            for (j, dest) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
                let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                route[j] = socket.local_addr().unwrap();
                let link = links.len();
                links.push((socket.clone(), *dest));
                let (faults, stop, queue, dest) = (faults.clone(), stop.clone(), queue.clone(), *dest);
                let mut rng = 0x2545_F491_4F6C_DD1D_u64 ^ (link as u64 + 1).wrapping_mul(0x9E37_79B9);
                threads.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65_536];
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let Ok((len, _)) = socket.recv_from(&mut buf) else { continue };
                        let f = faults.lock().unwrap().clone();
                        let mut roll = |m: u64| {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            rng % m
                        };
                        if f.blocked[i][j] || roll(100) < f.drop_pct {
                            continue;
                        }
                        let copies = if roll(100) < f.dup_pct { 2 } else { 1 };
                        for _ in 0..copies {
                            let delay = roll(f.max_delay_ms + 1);
                            if delay == 0 {
                                let _ = socket.send_to(&buf[..len], dest);
                            } else {
                                seq += 1;
                                let due = Instant::now() + Duration::from_millis(delay);
                                queue.lock().unwrap().push(Reverse((due, seq, link, buf[..len].to_vec())));
                            }
                        }
                    }
                }));
            }
        }
        let stop2 = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let mut due = Vec::new();
                {
                    let mut q = queue.lock().unwrap();
                    while q.peek().is_some_and(|Reverse((t, ..))| *t <= Instant::now()) {
                        due.push(q.pop().unwrap().0);
                    }
                }
                for (_, _, link, bytes) in due {
                    let (socket, dest) = &links[link];
                    let _ = socket.send_to(&bytes, dest);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
        Proxy { routes, faults, stop, threads }
    }

    pub fn set(&self, drop_pct: u64, dup_pct: u64, max_delay_ms: u64) {
        let mut f = self.faults.lock().unwrap();
        f.drop_pct = drop_pct;
        f.dup_pct = dup_pct;
        f.max_delay_ms = max_delay_ms;
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: usize) {
        let mut f = self.faults.lock().unwrap();
        let n = f.blocked.len();
        for k in 0..n {
            f.blocked[node][k] = true;
            f.blocked[k][node] = true;
        }
    }

    pub fn heal(&self) {
        let mut f = self.faults.lock().unwrap();
        for row in &mut f.blocked {
            row.fill(false);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
