//! TCP links between peers: an accept task with one reader per inbound
//! connection, and one writer per peer for the outgoing direction. Written
//! against [`Runtime`] (sockets, spawning, timers).
//!
//! Every connection is one transport v2 session ([`raft_host::secure`]):
//! the dialer sends a handshake initiation, the acceptor answers, and the
//! dialer's first data frame confirms the session; then the connection
//! carries the dialer's messages one way ([`stream`] has the bytes). The
//! acceptor bounds what an unauthenticated connection may do: fixed-size
//! reads into fixed buffers, the whole handshake within
//! `NodeConfig::handshake_timeout`, and a slot the oldest such connection
//! gives up when every slot is taken ([`slots`]). Once authenticated, a
//! connection replaces any older one of the same peer and is closed after
//! `NodeConfig::idle_timeout` without a frame. The dialer replaces its
//! connection when the session is due for rekeying.

mod slots;
mod stream;

use crate::backoff::{Backoff, RESET_AFTER};
use crate::engine::Shared;
use crate::queue::{BATCH_BYTES, PeerQueue};
use crate::runtime::Runtime;
use crate::sync::{Joinable, TaskGuard, first, spawn, timeout};
use async_channel::Sender;
use futures_lite::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use raft_core::{Message, NodeId, codec};
use raft_host::secure::{Initiator, OsEntropy, Responder, Session, peek};
use slots::{Slots, Ticket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use stream::{Assembly, CONFIRM_LEN, INITIATION_LEN, LEN_BYTES, RESPONSE_LEN};

/// `f`, or `None` once the node stops (checked first).
async fn or_stop<T>(shared: &Shared, f: impl Future<Output = T>) -> Option<T> {
    crate::sync::or_stop(&shared.stop, f).await
}

/// A read buffer grown past this is released after use.
const KEEP_BUFFER: usize = 64 << 10;

/// Accepts peer connections until the node stops, then waits for its readers.
pub(crate) async fn accept_loop<R: Runtime>(
    rt: R,
    listener: R::TcpListener,
    shared: Arc<Shared>,
    inbound: Sender<(NodeId, Message)>,
    _guard: TaskGuard,
) {
    let slots = Slots::new(shared.config.max_inbound_connections);
    let mut readers: Vec<Joinable> = Vec::new();
    loop {
        let Some(accepted) = or_stop(&shared, R::tcp_accept(&listener)).await else { break };
        match accepted {
            Ok(stream) => {
                readers.retain(|t| !t.is_finished());
                let Some(ticket) = slots.admit() else {
                    continue; // every slot authenticated: dropping the stream closes it
                };
                let guard = TaskGuard::new(&shared.tasks);
                readers.push(spawn(&rt, read_loop::<R>(stream, shared.clone(), inbound.clone(), ticket, guard)));
            }
            // Out of descriptors or similar: wait a little instead of spinning.
            Err(_) => {
                if !pause(&shared, Duration::from_millis(50)).await {
                    break;
                }
            }
        }
    }
    drop(listener);
    for r in readers {
        r.join().await;
    }
}

/// Reads a length prefix that must announce exactly `N - LEN_BYTES` bytes,
/// then those bytes, into a fixed buffer.
async fn read_fixed<S: AsyncRead + Unpin, const N: usize>(stream: &mut S) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    stream.read_exact(&mut buf[..LEN_BYTES]).await.ok()?;
    let mut prefix = [0u8; LEN_BYTES];
    prefix.copy_from_slice(&buf[..LEN_BYTES]);
    stream::fixed_len(prefix, N - LEN_BYTES).ok()?;
    stream.read_exact(&mut buf[LEN_BYTES..]).await.ok()?;
    Some(buf)
}

/// The acceptor's side of the handshake: returns the authenticated peer
/// and the session, or `None` (then the connection is closed).
async fn accept_session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    shared: &Shared,
) -> Option<(NodeId, Session)> {
    let initiation: [u8; LEN_BYTES + INITIATION_LEN] = read_fixed(stream).await?;
    let header = peek(&initiation[LEN_BYTES..]).ok()?;
    if !shared.is_peer(header.sender) {
        return None;
    }
    let mut response = Vec::with_capacity(LEN_BYTES + RESPONSE_LEN);
    let mut packet = Vec::with_capacity(RESPONSE_LEN);
    let now = shared.clock.now();
    let mut session =
        Responder::respond(&shared.secure, &initiation[LEN_BYTES..], now, &mut OsEntropy, &mut packet).ok()?;
    stream::put_packet(&mut response, &packet);
    stream.write_all(&response).await.ok()?;
    let confirm: [u8; LEN_BYTES + CONFIRM_LEN] = read_fixed(stream).await?;
    let payload = session.open(&confirm[LEN_BYTES..]).ok()?;
    payload.is_empty().then_some((header.sender, session))
}

/// Serves one inbound connection: the handshake, then authenticated
/// messages to the owning task. Any bad frame (not the expected length, not
/// authentic, replayed, not a message), a handshake that takes too long, an
/// authenticated connection idle too long, or a newer connection of the
/// same peer closes it.
async fn read_loop<R: Runtime>(
    mut stream: R::TcpStream,
    shared: Arc<Shared>,
    inbound: Sender<(NodeId, Message)>,
    ticket: Ticket,
    _guard: TaskGuard,
) {
    let serve = async {
        let handshake = accept_session(&mut stream, &shared);
        let Some(Some((peer, mut session))) =
            timeout(&*shared.sleeper, shared.config.handshake_timeout, handshake).await
        else {
            return;
        };
        ticket.authenticated(peer);
        let max = shared.config.raft.max_message_bytes;
        let mut assembly = Assembly::default();
        let mut buf = Vec::new();
        loop {
            let read = read_data(&mut stream, &mut buf);
            let Some(Some(())) = timeout(&*shared.sleeper, shared.config.idle_timeout, read).await else { return };
            if session.is_expired(shared.clock.now()) {
                return;
            }
            let Ok(payload) = session.open(&buf) else { return };
            if buf.capacity() > KEEP_BUFFER {
                buf = Vec::new();
            }
            let Ok(done) = assembly.add(&payload, max) else { return };
            let Some(bytes) = done else { continue };
            let Ok(msg) = codec::decode_message(&bytes) else { return };
            if inbound.send((peer, msg)).await.is_err() {
                return;
            }
        }
    };
    let killed = async {
        ticket.killed().await;
    };
    or_stop(&shared, first(killed, serve)).await;
}

/// Reads one data frame (after authentication) into `buf`, refusing a
/// length out of bounds before allocating.
async fn read_data<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<()> {
    let mut prefix = [0u8; LEN_BYTES];
    stream.read_exact(&mut prefix).await.ok()?;
    let len = stream::data_len(prefix).ok()?;
    buf.clear();
    buf.resize(len, 0);
    stream.read_exact(buf).await.ok()
}

/// The dialer's side of the handshake on a fresh connection.
async fn dial_session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    shared: &Shared,
    peer: NodeId,
) -> Option<Session> {
    let mut packet = Vec::with_capacity(INITIATION_LEN);
    let mut initiator = Initiator::start(&shared.secure, peer, shared.clock.now(), &mut OsEntropy, &mut packet).ok()?;
    let mut out = Vec::with_capacity(LEN_BYTES + INITIATION_LEN);
    stream::put_packet(&mut out, &packet);
    stream.write_all(&out).await.ok()?;
    let response: [u8; LEN_BYTES + RESPONSE_LEN] = read_fixed(stream).await?;
    let mut session = initiator.handle_response(&response[LEN_BYTES..], shared.clock.now()).ok()?;
    out.clear();
    stream::put_confirm(&mut session, &mut out).ok()?;
    stream.write_all(&out).await.ok()?;
    Some(session)
}

struct Conn<S> {
    stream: S,
    session: Session,
    since: Instant,
}

/// Sleeps, unless the node stops first (then false).
async fn pause(shared: &Shared, d: Duration) -> bool {
    or_stop(shared, shared.sleeper.sleep_until(Instant::now() + d)).await.is_some()
}

/// Forgets the connection; a long-lived one resets the backoff.
fn disconnect<S>(conn: &mut Option<Conn<S>>, peer: &PeerQueue, backoff: &mut Backoff) {
    if let Some(c) = conn.take()
        && c.since.elapsed() >= RESET_AFTER
    {
        backoff.reset();
    }
    peer.stats.connected.store(false, Ordering::Relaxed);
}

enum Wake {
    Stop,
    Batch(bool),
    Closed,
}

/// Sends the peer's queue over one outgoing connection, (re)connecting
/// lazily with backoff. Messages in a batch that cannot be delivered are
/// dropped and counted: Raft retransmits what matters.
pub(crate) async fn write_loop<R: Runtime>(rt: R, peer: Arc<PeerQueue>, shared: Arc<Shared>, _guard: TaskGuard) {
    let cfg = &shared.config;
    let seed = cfg.raft.seed ^ peer.id.0.rotate_left(32) ^ 0xC0FF_EE00;
    let mut backoff = Backoff::new(seed, cfg.reconnect_min, cfg.reconnect_max);
    let mut batch: Vec<Message> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut conn: Option<Conn<R::TcpStream>> = None;
    loop {
        // Wait for messages; meanwhile notice if the peer closes the connection
        // (it never writes on it, so any read completing means it is over).
        let stop = async {
            shared.stop.closed().await;
            Wake::Stop
        };
        let next = async { Wake::Batch(peer.next_batch(&mut batch, BATCH_BYTES).await) };
        let wake = match conn.as_mut() {
            None => first(stop, next).await,
            Some(c) => {
                let mut probe = [0u8; 1];
                let closed = async {
                    let _ = c.stream.read(&mut probe).await;
                    Wake::Closed
                };
                first(first(stop, next), closed).await
            }
        };
        match wake {
            Wake::Stop | Wake::Batch(false) => return,
            Wake::Batch(true) => {}
            Wake::Closed => {
                disconnect(&mut conn, &peer, &mut backoff);
                if !pause(&shared, backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        }
        if conn.as_ref().is_some_and(|c| c.session.needs_rekey(shared.clock.now())) {
            // A new connection, a new session; the peer drops the old one.
            conn = None;
        }
        if conn.is_none() {
            let connect = async {
                let mut stream = rt.tcp_connect(peer.addr()).await.ok()?;
                let session = dial_session(&mut stream, &shared, peer.id).await?;
                Some((stream, session))
            };
            let Some(attempt) = or_stop(&shared, timeout(&*shared.sleeper, cfg.io_timeout, connect)).await else {
                return;
            };
            match attempt {
                Some(Some((stream, session))) => {
                    conn = Some(Conn { stream, session, since: Instant::now() });
                    peer.stats.connects.fetch_add(1, Ordering::Relaxed);
                    peer.stats.connected.store(true, Ordering::Relaxed);
                }
                _ => {
                    peer.stats.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    if !pause(&shared, backoff.next_delay()).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        buf.clear();
        let mut frames = 0u64;
        for m in batch.drain(..) {
            let bytes = codec::encode_message(&m);
            let fits = bytes.len() <= cfg.raft.max_message_bytes;
            if fits && stream::put_message(&mut c.session, &bytes, &mut buf).is_ok() {
                frames += 1;
            } else {
                peer.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let write = timeout(&*shared.sleeper, cfg.io_timeout, c.stream.write_all(&buf));
        let Some(written) = or_stop(&shared, write).await else {
            return;
        };
        if matches!(written, Some(Ok(()))) {
            peer.stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
        } else {
            peer.stats.dropped.fetch_add(frames, Ordering::Relaxed);
            disconnect(&mut conn, &peer, &mut backoff);
            if !pause(&shared, backoff.next_delay()).await {
                return;
            }
        }
        if buf.capacity() > 4 * BATCH_BYTES {
            buf = Vec::new();
        }
    }
}
