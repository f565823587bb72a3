//! [`Tokio`]: raft-net's [`Runtime`] on tokio.

use raft_net::Runtime;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;
use tokio::net::TcpSocket;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// The current tokio runtime (the one [`Tokio::current`] was called in).
#[derive(Debug, Clone)]
pub struct Tokio(tokio::runtime::Handle);

impl Tokio {
    /// The runtime the caller runs in. Panics outside a tokio runtime.
    pub fn current() -> Tokio {
        Tokio(tokio::runtime::Handle::current())
    }

    /// A given runtime.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Tokio {
        Tokio(handle)
    }
}

impl Runtime for Tokio {
    type TcpStream = Compat<tokio::net::TcpStream>;
    type TcpListener = tokio::net::TcpListener;
    type UdpSocket = tokio::net::UdpSocket;
    type Timer = Pin<Box<tokio::time::Sleep>>;

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        drop(self.0.spawn(task)); // detached
    }

    fn timer(&self, at: Instant) -> Self::Timer {
        let _in = self.0.enter(); // the timer registers with this runtime
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn reset_timer(timer: &mut Self::Timer, at: Instant) {
        timer.as_mut().reset(at.into());
    }

    fn unblock<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let task = self.0.spawn_blocking(work);
        async move { task.await.ok() }
    }

    fn tcp_bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::TcpListener>> + Send {
        // As tokio's own `TcpListener::bind`: address reuse on, backlog 1024.
        let bind = || {
            let _in = self.0.enter();
            let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        };
        let result = bind();
        async move { result }
    }

    fn tcp_local_addr(listener: &Self::TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn tcp_accept(listener: &Self::TcpListener) -> io::Result<Self::TcpStream> {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok(stream.compat())
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> io::Result<Self::TcpStream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream.compat())
    }

    fn udp_from_std(&self, socket: std::net::UdpSocket) -> io::Result<Self::UdpSocket> {
        let _in = self.0.enter();
        tokio::net::UdpSocket::from_std(socket)
    }

    async fn udp_send_to(socket: &Self::UdpSocket, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        socket.send_to(datagram, to).await
    }

    async fn udp_recv_from(socket: &Self::UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        socket.recv_from(buf).await
    }

    fn udp_try_recv_from(socket: &Self::UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        socket.try_recv_from(buf)
    }
}
