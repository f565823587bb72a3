//! The UDP transport's tasks: one receiver for the socket (which also
//! answers handshakes), one writer per peer (draining the same two-lane
//! queue as TCP, sealing under the peer's session), and one sender for the
//! application's datagrams.

use super::AppDatagram;
use super::counters::Counters;
use super::fragment::{Fragmenter, Limits, Reassembler};
use super::packet::{self, MAX_DATAGRAM, PeerPacket};
use super::sessions::{HANDSHAKE_RETRY, Reply, Sessions};
use crate::engine::Shared;
use crate::queue::{BATCH_BYTES, PeerQueue};
use crate::runtime::Runtime;
use crate::sync::{Joinable, TaskGuard, first, or_stop, spawn, timeout};
use async_channel::{Receiver, Sender};
use raft_core::{Message, NodeId, codec};
use raft_host::auth::FRAME_VERSION;
use raft_host::secure::{FrameKind, OpenError, OsEntropy, SealError, peek};
use std::future::poll_fn;
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
    let sessions = Arc::new(Sessions::new(&shared.secure, shared.peers().iter().map(|p| p.id), shared.clock));
    let mut children = Vec::new();
    // Message ids start at random (clock and seed) so that a restarted node
    // does not reuse ids its peers may still hold fragments of.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let first_msg = (nanos as u64) ^ shared.config.raft.seed.rotate_left(17);
    let writers = std::sync::atomic::AtomicU64::new(0);
    let writer = {
        let (rt, socket, sessions) = (rt.clone(), socket.clone(), sessions.clone());
        move |shared: &Arc<Shared>, peer: Arc<PeerQueue>| {
            peer.stats.connected.store(true, Ordering::Relaxed);
            sessions.add_peer(peer.id);
            let guard = TaskGuard::new(&shared.tasks);
            let i = writers.fetch_add(1, Ordering::Relaxed);
            let frag = Fragmenter::new(max_datagram, first_msg.wrapping_add(i << 48));
            spawn(&rt, write_loop::<R>(socket.clone(), peer, shared.clone(), sessions.clone(), frag, guard))
        }
    };
    for peer in shared.peers() {
        children.push(writer(shared, peer));
    }
    shared.set_spawn_peer(Box::new(writer));
    let guard = TaskGuard::new(&shared.tasks);
    children.push(spawn(rt, send_loop::<R>(socket.clone(), app_out, shared.clone(), guard)));
    let guard = TaskGuard::new(&shared.tasks);
    children.push(spawn(rt, recv_loop::<R>(socket, shared.clone(), inbound, app, counters, sessions, guard)));
    children
}

/// Sends one peer's queue as sealed, fragmented datagrams, setting up the
/// session first when there is none.
async fn write_loop<R: Runtime>(
    socket: Arc<R::UdpSocket>,
    peer: Arc<PeerQueue>,
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
    mut frag: Fragmenter,
    _guard: TaskGuard,
) {
    let mut batch = Vec::new();
    let Some(established) = sessions.established(peer.id) else { return };
    // Set up the session as the writer starts, not with the first message:
    // a peer that still holds a session of this node's previous incarnation
    // drops a frame sealed under neither (and only then offers a new
    // session). Followers send each other nothing until an election, so the
    // first message after a restart was often a vote request, and Raft
    // sends that again only an election timeout later. (No session is
    // needed to seal nothing: this only starts the handshake.)
    let mut initiation = Vec::new();
    if sessions.seal(peer.id, &[], &mut OsEntropy, &mut initiation).is_ok() && !initiation.is_empty() {
        let _ = R::udp_send_to(&socket, &initiation, peer.addr()).await;
    }
    loop {
        match or_stop(&shared.stop, peer.next_batch(&mut batch, BATCH_BYTES)).await {
            Some(true) => {}
            _ => return,
        }
        let messages: Vec<Vec<Vec<u8>>> = batch.drain(..).map(|m| frag.split(&codec::encode_message(&m))).collect();
        let mut sealed = None;
        for attempt in 0..2 {
            let version = established.version();
            let mut initiation = Vec::new();
            let mut out = Vec::with_capacity(messages.len());
            let mut result = Ok(());
            for payloads in &messages {
                match sessions.seal(peer.id, payloads, &mut OsEntropy, &mut initiation) {
                    Ok(ds) => out.push(ds),
                    Err(SealError::TooLarge { .. }) => out.push(Vec::new()),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if !initiation.is_empty() {
                let _ = R::udp_send_to(&socket, &initiation, peer.addr()).await;
            }
            if result.is_ok() {
                sealed = Some(out);
                break;
            }
            if attempt == 0 {
                // Wait for the session (or give up on this batch: Raft
                // retransmits what matters).
                let mut waiting = established.waiting();
                let changed =
                    poll_fn(|cx| waiting.poll_check(cx, |_, v, closed| (v != version || closed).then_some(())));
                if or_stop(&shared.stop, timeout(&*shared.sleeper, HANDSHAKE_RETRY, changed)).await.is_none() {
                    return;
                }
            }
        }
        let Some(sealed) = sealed else {
            peer.stats.dropped.fetch_add(messages.len() as u64, Ordering::Relaxed);
            continue;
        };
        for datagrams in sealed {
            let mut sent = !datagrams.is_empty();
            for d in &datagrams {
                sent &= R::udp_send_to(&socket, d, peer.addr()).await.is_ok();
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
    /// A handshake answer (or a session's first frame) for a peer, to its
    /// configured address.
    Reply(SocketAddr, Vec<u8>),
}

/// The receiving side: state kept across datagrams.
struct Inbox {
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
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
        if datagram.first() == Some(&FRAME_VERSION) {
            // The application's (clients') datagrams, sealed under the key
            // alone. Peer traffic is never accepted in this format.
            let Ok((sender, payload)) = self.shared.config.keys.key.open(datagram) else {
                c.bad_frame += 1;
                return Received::Nothing;
            };
            if packet::is_peer_tagged(payload) {
                c.bad_frame += 1;
                return Received::Nothing;
            }
            return Received::App(AppDatagram { sender, payload: payload.to_vec(), from });
        }
        let header = match peek(datagram) {
            Ok(h) if h.receiver == self.shared.id() => h,
            _ => {
                c.bad_frame += 1;
                return Received::Nothing;
            }
        };
        let sender = header.sender;
        if !self.shared.is_peer(sender) {
            // A joining node knows no one yet: the first to contact it (the
            // leader that added it) is taken at the datagram's source
            // until the configuration it sends names every address.
            if self.shared.joining() && sender != self.shared.id() {
                self.shared.add_peer(sender, from);
            } else {
                c.unknown_peer += 1;
                return Received::Nothing;
            }
        }
        let Some(addr) = self.shared.peer(sender).map(|p| p.addr()) else {
            c.unknown_peer += 1;
            return Received::Nothing;
        };
        let payload = match header.kind {
            FrameKind::Initiation | FrameKind::Response => {
                return match self.sessions.handshake(sender, datagram, &mut OsEntropy) {
                    Ok(Reply::Send(bytes)) => Received::Reply(addr, bytes),
                    Ok(Reply::Nothing) => Received::Nothing,
                    Err(_) => {
                        c.bad_frame += 1;
                        Received::Nothing
                    }
                };
            }
            FrameKind::Data => match self.sessions.open(sender, datagram) {
                Ok(payload) => payload,
                Err(OpenError::Replayed | OpenError::TooOld) => {
                    c.replayed += 1;
                    return Received::Nothing;
                }
                Err(OpenError::UnknownSession | OpenError::Expired) => {
                    c.stale_session += 1;
                    // The peer restarted, or lost the session: offer a new one.
                    return match self.sessions.restart_handshake(sender, &mut OsEntropy) {
                        Some(initiation) => Received::Reply(addr, initiation),
                        None => Received::Nothing,
                    };
                }
                Err(_) => {
                    c.bad_frame += 1;
                    return Received::Nothing;
                }
            },
        };
        if payload.is_empty() {
            return Received::Nothing; // a session's confirmation
        }
        let Ok(PeerPacket::Peer(fragment)) = packet::decode(&payload) else {
            c.malformed += 1;
            return Received::Nothing;
        };
        let Some(bytes) = self.reasm.accept(sender.0, fragment, Instant::now(), &mut c) else {
            return Received::Nothing;
        };
        match codec::decode_message(&bytes) {
            Ok(msg) => Received::Message(sender, msg),
            Err(_) => {
                c.malformed += 1;
                Received::Nothing
            }
        }
    }

    async fn deliver<R: Runtime>(
        &mut self,
        got: Received,
        socket: &R::UdpSocket,
        inbound: &Sender<(NodeId, Message)>,
        app: &Sender<AppDatagram>,
    ) -> bool {
        match got {
            Received::Nothing => true,
            Received::Reply(to, bytes) => {
                let _ = R::udp_send_to(socket, &bytes, to).await;
                true
            }
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
    sessions: Arc<Sessions>,
    _guard: TaskGuard,
) {
    let limits = Limits::for_messages(shared.config.raft.max_message_bytes);
    let mut rx = Inbox { shared: shared.clone(), sessions, reasm: Reassembler::new(limits), counters };
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
            if !rx.deliver::<R>(first, &socket, &inbound, &app).await {
                return;
            }
            for _ in 0..RECV_BATCH {
                let Ok((n, from)) = R::udp_try_recv_from(&socket, &mut buf) else { break };
                let next = rx.datagram(&buf[..n], from);
                if !rx.deliver::<R>(next, &socket, &inbound, &app).await {
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
