//! The UDP transport's tasks: one receiver for the socket, one writer per
//! peer (draining the same two-lane queue as TCP), and one sender for the
//! application's datagrams.

use super::AppDatagram;
use super::counters::Counters;
use super::fragment::{Fragmenter, Limits, Reassembler};
use super::packet::{self, MAX_DATAGRAM, PeerPacket};
use crate::engine::Shared;
use crate::queue::{BATCH_BYTES, PeerQueue};
use crate::runtime::Runtime;
use crate::sync::{Joinable, TaskGuard, first, or_stop, spawn};
use async_channel::{Receiver, Sender};
use raft_core::{Message, NodeId, codec};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Datagrams taken per wake-up of the receiver.
const RECV_BATCH: usize = 256;
/// How often partial messages are swept.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// Spawns the transport's tasks for one node.
pub(crate) fn spawn_links<R: Runtime>(
    rt: &R,
    socket: Arc<R::UdpSocket>,
    shared: &Arc<Shared>,
    inbound: Sender<(NodeId, Message)>,
    app: Sender<AppDatagram>,
    app_out: Receiver<(SocketAddr, Vec<u8>)>,
    max_datagram: usize,
) -> Vec<Joinable> {
    let counters = shared.datagrams.clone().unwrap_or_default();
    let mut children = Vec::new();
    // Message ids start at random (clock and seed) so that a restarted node
    // does not reuse ids its peers may still hold fragments of.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let first_msg = (nanos as u64) ^ shared.config.raft.seed.rotate_left(17);
    let writers = std::sync::atomic::AtomicU64::new(0);
    let writer = {
        let (rt, socket) = (rt.clone(), socket.clone());
        move |shared: &Arc<Shared>, peer: Arc<PeerQueue>| {
            peer.stats.connected.store(true, Ordering::Relaxed);
            let guard = TaskGuard::new(&shared.tasks);
            let i = writers.fetch_add(1, Ordering::Relaxed);
            let frag = Fragmenter::new(max_datagram, first_msg.wrapping_add(i << 48));
            spawn(&rt, write_loop::<R>(socket.clone(), peer, shared.clone(), frag, guard))
        }
    };
    for peer in shared.peers() {
        children.push(writer(shared, peer));
    }
    shared.set_spawn_peer(Box::new(writer));
    let guard = TaskGuard::new(&shared.tasks);
    children.push(spawn(rt, send_loop::<R>(socket.clone(), app_out, shared.clone(), guard)));
    let guard = TaskGuard::new(&shared.tasks);
    children.push(spawn(rt, recv_loop::<R>(socket, shared.clone(), inbound, app, counters, guard)));
    children
}

/// Sends one peer's queue as sealed, fragmented datagrams.
async fn write_loop<R: Runtime>(
    socket: Arc<R::UdpSocket>,
    peer: Arc<PeerQueue>,
    shared: Arc<Shared>,
    mut frag: Fragmenter,
    _guard: TaskGuard,
) {
    let cfg = &shared.config;
    let mut batch = Vec::new();
    loop {
        match or_stop(&shared.stop, peer.next_batch(&mut batch, BATCH_BYTES)).await {
            Some(true) => {}
            _ => return,
        }
        for m in batch.drain(..) {
            let bytes = codec::encode_message(&m);
            let mut sent = true;
            for d in frag.split(&cfg.key, cfg.raft.id.0, &bytes) {
                sent &= R::udp_send_to(&socket, &d, peer.addr()).await.is_ok();
            }
            let stat = if sent { &peer.stats.frames_sent } else { &peer.stats.dropped };
            stat.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends the application's datagrams.
async fn send_loop<R: Runtime>(
    socket: Arc<R::UdpSocket>,
    out: Receiver<(SocketAddr, Vec<u8>)>,
    shared: Arc<Shared>,
    _guard: TaskGuard,
) {
    while let Some(Ok((to, d))) = or_stop(&shared.stop, out.recv()).await {
        let _ = R::udp_send_to(&socket, &d, to).await;
    }
}

/// What one datagram turned out to be.
enum Received {
    Nothing,
    Message(NodeId, Message),
    App(AppDatagram),
}

/// The receiving side: state kept across datagrams.
struct Inbox {
    shared: Arc<Shared>,
    reasm: Reassembler,
    counters: Arc<Mutex<Counters>>,
}

impl Inbox {
    /// Checks and decodes one datagram. Never panics; drops and counts what
    /// is not valid.
    fn datagram(&mut self, datagram: &[u8], from: SocketAddr) -> Received {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if datagram.len() > MAX_DATAGRAM {
            c.oversize += 1;
            return Received::Nothing;
        }
        let Ok((sender, payload)) = self.shared.config.key.open(datagram) else {
            c.bad_frame += 1;
            return Received::Nothing;
        };
        let Ok(PeerPacket::Peer(fragment)) = packet::decode(payload) else {
            return Received::App(AppDatagram { sender, payload: payload.to_vec(), from });
        };
        if !self.shared.is_peer(NodeId(sender)) {
            // A joining node knows no one yet: the first to contact it (the
            // leader that added it) is answered at the datagram's source
            // until the configuration it sends names every address.
            if self.shared.joining() && sender != self.shared.id().0 {
                self.shared.add_peer(NodeId(sender), from);
            } else {
                c.unknown_peer += 1;
                return Received::Nothing;
            }
        }
        let Some(bytes) = self.reasm.accept(sender, fragment, Instant::now(), &mut c) else {
            return Received::Nothing;
        };
        match codec::decode_message(&bytes) {
            Ok(msg) => Received::Message(NodeId(sender), msg),
            Err(_) => {
                c.malformed += 1;
                Received::Nothing
            }
        }
    }

    async fn deliver(&mut self, got: Received, inbound: &Sender<(NodeId, Message)>, app: &Sender<AppDatagram>) -> bool {
        match got {
            Received::Nothing => true,
            Received::Message(from, msg) => inbound.send((from, msg)).await.is_ok(),
            Received::App(d) => {
                // A full application queue drops the datagram: its client
                // retries. Without an application, nothing else is expected.
                if app.try_send(d).is_err() && app.is_closed() {
                    self.counters.lock().unwrap_or_else(|e| e.into_inner()).unexpected += 1;
                }
                true
            }
        }
    }
}

/// Receives datagrams until the node stops: peer messages go to the owning
/// task, the rest to the application.
async fn recv_loop<R: Runtime>(
    socket: Arc<R::UdpSocket>,
    shared: Arc<Shared>,
    inbound: Sender<(NodeId, Message)>,
    app: Sender<AppDatagram>,
    counters: Arc<Mutex<Counters>>,
    _guard: TaskGuard,
) {
    let limits = Limits::for_messages(shared.config.raft.max_message_bytes);
    let mut rx = Inbox { shared: shared.clone(), reasm: Reassembler::new(limits), counters };
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut sweep = Instant::now() + HOUSEKEEPING;
    loop {
        let got = {
            let recv = async { Some(R::udp_recv_from(&socket, &mut buf).await) };
            let tick = async {
                shared.sleeper.sleep_until(sweep).await;
                None
            };
            or_stop(&shared.stop, first(recv, tick)).await
        };
        let Some(got) = got else { return };
        if let Some(Ok((n, from))) = got {
            let first = rx.datagram(&buf[..n], from);
            if !rx.deliver(first, &inbound, &app).await {
                return;
            }
            for _ in 0..RECV_BATCH {
                let Ok((n, from)) = R::udp_try_recv_from(&socket, &mut buf) else { break };
                let next = rx.datagram(&buf[..n], from);
                if !rx.deliver(next, &inbound, &app).await {
                    return;
                }
            }
        }
        let now = Instant::now();
        if now >= sweep {
            let mut c = rx.counters.lock().unwrap_or_else(|e| e.into_inner());
            rx.reasm.expire(now, &mut c);
            sweep = now + HOUSEKEEPING;
        }
    }
}
