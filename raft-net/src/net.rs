//! TCP links between peers: an accept task with one reader per inbound
//! connection, and one writer per peer for the outgoing direction. Written
//! against [`Runtime`] (sockets, spawning, timers).

use crate::backoff::{Backoff, RESET_AFTER};
use crate::engine::Shared;
use crate::queue::{BATCH_BYTES, PeerQueue};
use crate::runtime::Runtime;
use crate::sync::{Joinable, TaskGuard, first, spawn, timeout};
use async_channel::Sender;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};
use raft_core::{Message, NodeId};
use raft_host::transport_frame::{LEN_BYTES, check_len, encode_frame_into, open_frame};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
    let mut readers: Vec<Joinable> = Vec::new();
    loop {
        let Some(accepted) = or_stop(&shared, R::tcp_accept(&listener)).await else { break };
        match accepted {
            Ok(stream) => {
                readers.retain(|t| !t.is_finished());
                if readers.len() >= shared.config.max_inbound_connections {
                    continue; // dropping the stream closes it
                }
                let guard = TaskGuard::new(&shared.tasks);
                readers.push(spawn(&rt, read_loop::<R>(stream, shared.clone(), inbound.clone(), guard)));
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

/// Reads one frame body into `buf`, refusing an over-long length before allocating.
async fn read_frame<S: futures_lite::AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<()> {
    let mut prefix = [0u8; LEN_BYTES];
    stream.read_exact(&mut prefix).await?;
    let len = check_len(prefix, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    buf.clear();
    buf.resize(len, 0);
    stream.read_exact(buf).await?;
    Ok(())
}

/// Serves one inbound connection: authenticated messages go to the owning
/// task. Any bad frame (too long, not authentic, not a message, from a
/// non-member, or from another sender than the connection's first frame)
/// closes the connection.
async fn read_loop<R: Runtime>(
    mut stream: R::TcpStream,
    shared: Arc<Shared>,
    inbound: Sender<(NodeId, Message)>,
    _guard: TaskGuard,
) {
    let mut peer: Option<NodeId> = None;
    let mut buf = Vec::new();
    loop {
        let read = read_frame(&mut stream, &mut buf, shared.max_frame);
        let limited = async {
            match peer {
                Some(_) => read.await,
                None => timeout(&*shared.sleeper, shared.config.handshake_timeout, read)
                    .await
                    .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into())),
            }
        };
        match or_stop(&shared, limited).await {
            Some(Ok(())) => {}
            _ => return,
        }
        let Ok((from, msg)) = open_frame(&shared.config.key, &buf) else { return };
        if !shared.is_peer(from) || peer.is_some_and(|p| p != from) {
            return;
        }
        peer = Some(from);
        if buf.capacity() > KEEP_BUFFER {
            buf = Vec::new();
        }
        match or_stop(&shared, inbound.send((from, msg))).await {
            Some(Ok(())) => {}
            _ => return,
        }
    }
}

struct Conn<S> {
    stream: S,
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
    let me = shared.id();
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
        if conn.is_none() {
            let connect = timeout(&*shared.sleeper, cfg.io_timeout, rt.tcp_connect(peer.addr()));
            let Some(attempt) = or_stop(&shared, connect).await else {
                return;
            };
            match attempt {
                Some(Ok(stream)) => {
                    conn = Some(Conn { stream, since: Instant::now() });
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
        buf.clear();
        let mut frames = 0u64;
        for m in batch.drain(..) {
            match encode_frame_into(&cfg.key, me, &m, shared.max_frame, &mut buf) {
                Ok(_) => frames += 1,
                Err(_) => {
                    peer.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
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
