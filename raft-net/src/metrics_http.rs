//! Serves a node's metrics over HTTP (`GET /metrics`) with `tiny_http`, on a
//! thread of its own: no async runtime is involved, so every adapter gets
//! it the same way and raft-smol's graph stays free of tokio.

use crate::engine::Shared;
use crate::sync::TaskGuard;
use std::net::SocketAddr;
use std::sync::Arc;

/// A bound metrics server, not yet serving.
pub(crate) struct MetricsServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish()
    }
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port).
    pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let addr = server.server_addr().to_ip().ok_or_else(|| std::io::Error::other("not an IP listener"))?;
        Ok(MetricsServer { server: Arc::new(server), addr })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the node's stop signal closes; `guard` counts the
    /// serving thread among the node's tasks. Returns a future that unblocks
    /// the thread once the node stops (spawn it on the runtime).
    pub(crate) fn serve(
        self,
        shared: Arc<Shared>,
        guard: TaskGuard,
    ) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        let server = self.server.clone();
        let serving = shared.clone();
        std::thread::Builder::new().name("raft-metrics".into()).spawn(move || {
            // `recv` fails once `unblock` was called: the node is stopping.
            while let Ok(request) = server.recv() {
                let response = if request.url() == "/metrics" || request.url().starts_with("/metrics?") {
                    let text = serving.metrics_text();
                    let content_type = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                    )
                    .expect("a valid header");
                    tiny_http::Response::from_string(text).with_header(content_type)
                } else {
                    tiny_http::Response::from_string("not found: metrics are at /metrics\n").with_status_code(404)
                };
                let _ = request.respond(response); // the scraper hung up: nothing to do
            }
            // The server and the node's state go before the thread stops counting.
            drop(server);
            drop(serving);
            drop(guard);
        })?;
        let server = self.server;
        Ok(async move {
            shared.stop.closed().await;
            server.unblock();
        })
    }
}
