//! [`Smol`]: raft-net's [`Runtime`] on smol / async-io.

use raft_net::Runtime;
use smol::Async;
use smol::Timer;
use smol::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// smol's global executor (`smol::spawn`; its thread count follows the
/// `SMOL_THREADS` environment variable), async-io's timers and sockets, and
/// smol's blocking pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    type TcpStream = TcpStream;
    type TcpListener = TcpListener;
    type UdpSocket = Async<std::net::UdpSocket>;
    type Timer = Timer;

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(task).detach();
    }

    fn timer(&self, at: Instant) -> Self::Timer {
        Timer::at(at)
    }

    fn reset_timer(timer: &mut Self::Timer, at: Instant) {
        timer.set_at(at);
    }

    fn unblock<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let task = smol::unblock(work);
        async move { Some(task.await) }
    }

    async fn tcp_bind(&self, addr: SocketAddr) -> io::Result<Self::TcpListener> {
        TcpListener::bind(addr).await
    }

    fn tcp_local_addr(listener: &Self::TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn tcp_accept(listener: &Self::TcpListener) -> io::Result<Self::TcpStream> {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> io::Result<Self::TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn udp_from_std(&self, socket: std::net::UdpSocket) -> io::Result<Self::UdpSocket> {
        Async::new(socket)
    }

    async fn udp_send_to(socket: &Self::UdpSocket, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        socket.send_to(datagram, to).await
    }

    async fn udp_recv_from(socket: &Self::UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        socket.recv_from(buf).await
    }

    fn udp_try_recv_from(socket: &Self::UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        socket.get_ref().recv_from(buf)
    }
}
