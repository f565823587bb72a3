//! Peers over UDP: the second transport of the node task
//! ([`Node::start_udp`](crate::Node::start_udp)).
//!
//! Every datagram is a frame sealed with HMAC-SHA256 under the cluster key
//! ([`raft_host::ClusterKey::seal`]): `version | sender: u64 | payload | tag`.
//! Peer traffic is a [`PeerPacket`]: one [`Fragment`] of a codec-encoded
//! Raft message. Messages larger than the datagram limit are split
//! ([`fragment`]) and reassembled in bounded buffers; a lost fragment loses
//! only its message, which Raft retransmits. A peer is the authenticated
//! sender id; messages to a peer go to the address configured for it (at
//! start, or by the newest configuration entry), never to a datagram's
//! source address — with one exception: a joining node, which knows no
//! configuration yet, answers a peer that contacts it at the source
//! address until the configuration it receives names every address.
//!
//! The socket may be shared with the application: an authenticated
//! datagram that is not peer traffic goes to [`UdpApp`], which can send
//! sealed datagrams of its own. Datagrams that fail authentication, do not
//! decode, claim an unknown peer, or break the reassembly limits are dropped
//! and counted ([`Counters`], in `Status::datagrams`); none can panic the
//! node or make it allocate more than its limits.

pub mod counters;
pub mod fragment;
mod link;
pub mod packet;

pub use counters::Counters;
pub use packet::{Chunk, Fragment, MAX_DATAGRAM, PeerPacket};

pub(crate) use link::spawn_links;

use async_channel::{Receiver, Sender};
use raft_core::NodeId;
use raft_host::ClusterKey;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Datagrams queued to or from the application before more are dropped.
pub(crate) const APP_QUEUE: usize = 4096;

/// The UDP transport's settings.
#[derive(Debug)]
#[non_exhaustive]
pub struct UdpOptions {
    /// A bound, non-blocking socket to use (tuned as the caller likes); `None`:
    /// bind `NodeConfig::listen`.
    pub socket: Option<std::net::UdpSocket>,
    /// Largest datagram sent to a peer, seal included (clamped to
    /// [`fragment::MIN_DATAGRAM`]..=[`MAX_DATAGRAM`]).
    pub max_datagram: usize,
}

impl UdpOptions {
    /// Bind `NodeConfig::listen`; datagrams of at most `max_datagram` bytes.
    pub fn new(max_datagram: usize) -> UdpOptions {
        UdpOptions { socket: None, max_datagram }
    }

    /// Use `socket` (bound and non-blocking) instead.
    pub fn with_socket(mut self, socket: std::net::UdpSocket) -> UdpOptions {
        self.socket = Some(socket);
        self
    }
}

/// An authenticated datagram that is not peer traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDatagram {
    /// The id it was sealed with.
    pub sender: u64,
    /// The payload (the application's own encoding).
    pub payload: Vec<u8>,
    /// Where it came from.
    pub from: SocketAddr,
}

/// The application's side of a node's UDP socket. Cheap to clone.
#[derive(Clone)]
pub struct UdpApp {
    incoming: Receiver<AppDatagram>,
    outgoing: Sender<(SocketAddr, Vec<u8>)>,
    key: ClusterKey,
    id: NodeId,
    counters: Arc<Mutex<Counters>>,
}

impl fmt::Debug for UdpApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpApp").field("id", &self.id).finish_non_exhaustive()
    }
}

impl UdpApp {
    pub(crate) fn new(
        incoming: Receiver<AppDatagram>,
        outgoing: Sender<(SocketAddr, Vec<u8>)>,
        key: ClusterKey,
        id: NodeId,
        counters: Arc<Mutex<Counters>>,
    ) -> UdpApp {
        UdpApp { incoming, outgoing, key, id, counters }
    }

    /// The next application datagram; `None` once the node has stopped.
    pub async fn recv(&self) -> Option<AppDatagram> {
        self.incoming.recv().await.ok()
    }

    /// Seals `payload` under the cluster key as this node and sends it to
    /// `to` (dropped if the send queue is full or the node has stopped).
    pub fn send(&self, to: SocketAddr, payload: &[u8]) {
        let _ = self.outgoing.try_send((to, self.key.seal(self.id.0, payload)));
    }

    /// Counts something the application dropped, beside the transport's counts.
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
