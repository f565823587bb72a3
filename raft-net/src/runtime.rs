//! The one interface between this crate and an async runtime.
//!
//! Everything else in the crate is runtime-neutral: channels are
//! `async-channel`, byte streams are `futures-io`, select is
//! `first` (a biased two-way select in `src/sync.rs`). A runtime crate (raft-tokio, raft-smol)
//! implements [`Runtime`] in about a hundred lines; adding a runtime means
//! implementing it once more.

use futures_lite::{AsyncRead, AsyncWrite};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// Spawning, timers, blocking work and sockets of one async runtime.
///
/// Tasks given to [`spawn`](Runtime::spawn) run detached: the crate keeps
/// no runtime task handle, so dropping one can mean nothing different on
/// two runtimes. (It waits for its own tasks through its own signal.)
pub trait Runtime: Clone + Send + Sync + fmt::Debug + 'static {
    /// A connected TCP stream (`TCP_NODELAY` set).
    type TcpStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound TCP listener.
    type TcpListener: Send + Sync + 'static;
    /// A UDP socket.
    type UdpSocket: Send + Sync + 'static;
    /// A timer that can be moved to another deadline (its output is ignored).
    type Timer: Future + Unpin + Send + 'static;

    /// Runs `task` to completion on the runtime, detached.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);

    /// A timer ready at `at` (at once if `at` has passed).
    fn timer(&self, at: Instant) -> Self::Timer;

    /// Moves `timer` to `at`; it is then pending until `at` again.
    fn reset_timer(timer: &mut Self::Timer, at: Instant);

    /// Runs blocking `work` off the async threads; `None` if it could not
    /// finish (the runtime shut down, or `work` panicked).
    fn unblock<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static;

    /// Binds a TCP listener.
    fn tcp_bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::TcpListener>> + Send;

    /// The address a listener is bound to.
    fn tcp_local_addr(listener: &Self::TcpListener) -> io::Result<SocketAddr>;

    /// The next inbound connection.
    fn tcp_accept(listener: &Self::TcpListener) -> impl Future<Output = io::Result<Self::TcpStream>> + Send;

    /// Connects to `addr`.
    fn tcp_connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::TcpStream>> + Send;

    /// Takes over a bound, non-blocking std UDP socket.
    fn udp_from_std(&self, socket: std::net::UdpSocket) -> io::Result<Self::UdpSocket>;

    /// Sends one datagram.
    fn udp_send_to(
        socket: &Self::UdpSocket,
        datagram: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Receives one datagram.
    fn udp_recv_from(
        socket: &Self::UdpSocket,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;

    /// Receives one datagram if one is waiting (`WouldBlock` if none).
    fn udp_try_recv_from(socket: &Self::UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
}

/// Sleeps through a runtime that the caller knows only as `dyn Sleeper`
/// (so that [`crate::Handle`] does not name the runtime).
pub(crate) trait Sleeper: Send + Sync + fmt::Debug {
    fn sleep_until(&self, at: Instant) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<R: Runtime> Sleeper for R {
    fn sleep_until(&self, at: Instant) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        let timer = self.timer(at);
        Box::pin(async move {
            timer.await;
        })
    }
}
