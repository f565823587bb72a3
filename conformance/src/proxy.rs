//! An in-process, fault-injecting TCP and UDP proxy between the members of
//! a cluster, on plain threads so that it serves any adapter (async or
//! process-based) alike.
//!
//! There is one address per ordered pair of members: node `a` reaches node
//! `b` at [`FaultProxy::addr`]`(a, b)`, and the proxy forwards each
//! connection, and each datagram, to `b`'s current address (see
//! [`FaultProxy::set_target`]; a restarted node may listen somewhere new).
//! Cutting a link closes its open connections at once, refuses new ones and
//! drops its datagrams until it is restored, so a partition is seen by both
//! sides as connections that fail, or silence.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

type Link = (u64, u64);

#[derive(Debug, Default)]
struct State {
    targets: BTreeMap<u64, SocketAddr>,
    down: BTreeSet<Link>,
    /// Both sockets of every forwarded connection, to cut them, with a
    /// flag its pumps set once it is over.
    conns: Vec<(Link, TcpStream, Arc<AtomicBool>)>,
    threads: Vec<JoinHandle<()>>,
    /// Copies of forwarded datagrams, while recording (at most
    /// [`MAX_RECORDED`]).
    recorded: Option<Vec<(Link, Vec<u8>)>>,
}

/// Datagrams kept by one recording.
pub const MAX_RECORDED: usize = 4096;

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// See the [module documentation](self).
#[derive(Debug)]
pub struct FaultProxy {
    inner: Arc<Inner>,
    addrs: BTreeMap<Link, SocketAddr>,
    acceptors: Vec<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy for every ordered pair of `ids`, listening on loopback ports.
    pub fn new(ids: &[u64]) -> FaultProxy {
        let inner = Arc::new(Inner::default());
        let mut addrs = BTreeMap::new();
        let mut acceptors = Vec::new();
        for &from in ids {
            for &to in ids {
                if from == to {
                    continue;
                }
                let (listener, udp) = bind_both();
                addrs.insert((from, to), listener.local_addr().expect("proxy addr"));
                let i = inner.clone();
                acceptors.push(std::thread::spawn(move || accept(listener, (from, to), &i)));
                let i = inner.clone();
                acceptors.push(std::thread::spawn(move || forward_datagrams(udp, (from, to), &i)));
            }
        }
        FaultProxy { inner, addrs, acceptors }
    }

    /// Where `from` connects to reach `to`.
    pub fn addr(&self, from: u64, to: u64) -> SocketAddr {
        self.addrs[&(from, to)]
    }

    /// Where node `id` currently listens.
    pub fn set_target(&self, id: u64, addr: SocketAddr) {
        self.inner.lock().targets.insert(id, addr);
    }

    /// Cuts (`up = false`) or restores the link carrying `from`'s frames to `to`.
    pub fn set_link(&self, from: u64, to: u64, up: bool) {
        let mut s = self.inner.lock();
        if up {
            s.down.remove(&(from, to));
        } else {
            s.down.insert((from, to));
            for (link, stream, _) in &s.conns {
                if *link == (from, to) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
            s.conns.retain(|(link, _, _)| *link != (from, to));
        }
    }

    /// Starts keeping a copy of every datagram forwarded (as an on-path
    /// attacker would capture them), forgetting earlier ones.
    pub fn start_recording(&self) {
        self.inner.lock().recorded = Some(Vec::new());
    }

    /// Stops recording and returns what was captured, by link, in order.
    pub fn take_recorded(&self) -> Vec<((u64, u64), Vec<u8>)> {
        self.inner.lock().recorded.take().unwrap_or_default()
    }

    /// Whether the link from `from` to `to` is up.
    pub fn is_up(&self, from: u64, to: u64) -> bool {
        !self.inner.lock().down.contains(&(from, to))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        for addr in self.addrs.values() {
            let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1)); // wakes its acceptor
        }
        for a in self.acceptors.drain(..) {
            let _ = a.join();
        }
        let threads = {
            let mut s = self.inner.lock();
            for (_, stream, _) in &s.conns {
                let _ = stream.shutdown(Shutdown::Both);
            }
            s.conns.clear();
            std::mem::take(&mut s.threads)
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A TCP listener and a UDP socket on the same loopback port.
fn bind_both() -> (TcpListener, UdpSocket) {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        if let Ok(udp) = UdpSocket::bind(addr) {
            udp.set_read_timeout(Some(Duration::from_millis(50))).expect("udp timeout");
            return (listener, udp);
        }
    }
    panic!("no loopback port free for both TCP and UDP");
}

/// Forwards the link's datagrams to its target while the link is up.
fn forward_datagrams(socket: UdpSocket, link: Link, inner: &Inner) {
    let mut buf = vec![0u8; 65_536];
    while !inner.stop.load(Ordering::SeqCst) {
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        let target = {
            let mut s = inner.lock();
            if s.down.contains(&link) {
                continue;
            }
            if let Some(r) = s.recorded.as_mut().filter(|r| r.len() < MAX_RECORDED) {
                r.push((link, buf[..n].to_vec()));
            }
            s.targets.get(&link.1).copied()
        };
        if let Some(target) = target {
            let _ = socket.send_to(&buf[..n], target);
        }
    }
}

fn accept(listener: TcpListener, link: Link, inner: &Arc<Inner>) {
    for client in listener.incoming() {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let target = {
            let s = inner.lock();
            if s.down.contains(&link) {
                continue; // refused: dropping closes it
            }
            s.targets.get(&link.1).copied()
        };
        let Some(target) = target else { continue };
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else { continue };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) =
            (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
        else {
            continue;
        };
        let mut s = inner.lock();
        if s.down.contains(&link) {
            continue; // cut while connecting
        }
        s.conns.retain(|(_, _, over)| !over.load(Ordering::SeqCst));
        let over = Arc::new(AtomicBool::new(false));
        s.conns.push((link, c3, over.clone()));
        s.conns.push((link, s3, over.clone()));
        s.threads.retain(|t| !t.is_finished());
        let (i1, i2, o2) = (inner.clone(), inner.clone(), over.clone());
        s.threads.push(std::thread::spawn(move || pump(client, server, link, &i1, &over)));
        s.threads.push(std::thread::spawn(move || pump(s2, c2, link, &i2, &o2)));
    }
}

/// Copies `from` to `to` until either closes or the link is cut.
fn pump(mut from: TcpStream, mut to: TcpStream, link: Link, inner: &Inner, over: &AtomicBool) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if inner.stop.load(Ordering::SeqCst) || inner.lock().down.contains(&link) {
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    over.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_and_cuts() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in echo.incoming().take(2) {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut b = [0u8; 5];
                    while s.read_exact(&mut b).is_ok() {
                        let _ = s.write_all(&b);
                    }
                });
            }
        });
        let proxy = FaultProxy::new(&[1, 2]);
        proxy.set_target(2, echo_addr);
        let mut c = TcpStream::connect(proxy.addr(1, 2)).unwrap();
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        proxy.set_link(1, 2, false);
        assert!(!proxy.is_up(1, 2));
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = c.write_all(b"again");
        assert!(matches!(c.read(&mut b), Ok(0) | Err(_)), "a cut link closes its connections");
        // A new connection is refused while the link is down.
        let mut d = TcpStream::connect(proxy.addr(1, 2)).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = d.write_all(b"hello");
        assert!(matches!(d.read(&mut b), Ok(0) | Err(_)));
        proxy.set_link(1, 2, true);
        let mut e = TcpStream::connect(proxy.addr(1, 2)).unwrap();
        e.write_all(b"world").unwrap();
        e.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"world");
    }
}
