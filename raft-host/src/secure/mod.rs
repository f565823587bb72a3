//! Transport protocol v2: sessions between pairs of nodes, set up by a
//! Noise handshake under the cluster key, with replay protection. Sans-IO:
//! this module reads and writes bytes and is handed the time and the
//! randomness; it never touches a socket, a clock or a global RNG. The UDP
//! and TCP transports call it.
//!
//! # Threat model
//!
//! The network is the attacker's: it can read, drop, delay, reorder,
//! duplicate and replay every packet, send packets of its own from any
//! address, and redirect a packet captured between two nodes to a third
//! node or back to its sender. It can capture traffic of an earlier
//! cluster built with the same key, or of a node before it restarted, and
//! play it back later. It does not hold the cluster key.
//!
//! What the cluster key protects, under that model:
//!
//! * **Membership.** Only a holder of the key completes a handshake: the
//!   key is the Noise pre-shared key, mixed in before the first payload.
//! * **Binding.** The Noise prologue (hashed into every key) holds a
//!   protocol label and version, the cluster's [`Incarnation`], the
//!   initiator's node id and the responder's. A frame therefore opens only
//!   in the cluster incarnation, between the two nodes and in the
//!   direction it was sealed for: a frame A→B copied to C, or reflected
//!   back to A, fails.
//! * **Freshness.** Both sides contribute a new ephemeral X25519 key to
//!   each handshake, so every session has keys no earlier session had: a
//!   frame from an earlier session, or from before either side restarted,
//!   fails. Within a session each direction counts its frames; the counter
//!   is the AEAD nonce, and the receiver keeps a sliding window of the
//!   counters it accepted ([`REPLAY_WINDOW`] = 2048), so a frame is
//!   accepted once even when UDP reorders, and a stream transport (TCP) is
//!   the special case of a window that only moves forward.
//! * **Confidentiality and integrity** of payloads (ChaCha20-Poly1305),
//!   with tags checked in constant time by the AEAD implementation.
//! * **Forward secrecy** for past sessions: their keys came from
//!   ephemeral keys that are gone; a key leaked later decrypts nothing
//!   recorded before. Sessions are rekeyed every two minutes by default
//!   ([`SessionLimits`]).
//!
//! Out of scope:
//!
//! * **Insiders.** Every node holds the same key, so any node (or anyone
//!   who steals the key file) can claim any node id. Per-node identities
//!   would need per-node static keys and a way to distribute them.
//! * **Availability.** An attacker on the path can drop everything. An
//!   attacker who replays captured initiations makes the responder spend a
//!   key exchange on each and can push a genuine unconfirmed session out of
//!   the bounded set ([`MAX_UNCONFIRMED`]), delaying a handshake; the
//!   transports rate-limit handshakes. (WireGuard's remedy, a timestamp in
//!   the initiation, needs a clock that survives restarts.)
//! * **Traffic analysis.** Sizes, timing and the clear-text node ids in
//!   headers are visible.
//! * **Compromise of a running node's memory** exposes its current sessions.
//!
//! # Why `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`
//!
//! A Noise pattern through the `snow` crate rather than a protocol of our
//! own. The cluster has one shared key and no per-node key pairs, so static
//! keys (as in `XXpsk3`) would prove nothing beyond the shared key while
//! costing a third message and two more key exchanges. `NNpsk0` puts the
//! key at the very start: a responder checks an initiation's tag with a
//! hash and an AEAD before it does any key exchange, so a stranger's
//! packets cost it almost nothing. Two messages give both sides fresh
//! ephemeral keys; the responder's answer proves it is live, and the
//! initiator's first data frame proves the initiation was not a replay.
//!
//! # Packets
//!
//! Every packet is a handshake initiation, a handshake response or a data
//! frame; [`peek`] reads its kind and the two node ids (see the layouts in
//! the `wire` source). Handshake messages have one fixed length each, and a
//! response ([`RESPONSE_LEN`]) is never larger than the initiation that
//! caused it ([`INITIATION_LEN`], padded): a spoofed initiation cannot make
//! a node amplify traffic toward a victim. Data frames carry a payload of
//! at most [`MAX_PAYLOAD`] bytes and add [`DATA_OVERHEAD`] bytes.
//!
//! # Using it
//!
//! A transport keeps a [`Link`] per peer id. [`Link::initiate`] (when
//! [`Link::wants_handshake`]) and [`Link::handle_handshake`] exchange the
//! two handshake messages; [`Link::seal`] and [`Link::open`] carry data.
//! Incoming packets are routed by [`peek`]: a handshake kind goes to
//! `handle_handshake`, a data frame to `open`, always of the `Link` of the
//! claimed sender (nothing is trusted until it opens). Errors are typed;
//! no input panics and no packet allocates more than its own size.
//!
//! The key file ([`KeyFile`], format version 2) holds the key and the
//! incarnation; every node of a cluster gets the same file.
//!
//! The same steps with the two sides' [`Initiator`], [`Responder`] and
//! [`Session`] values, and one frame each way:
//!
//! ```
//! use raft_core::{Instant, NodeId};
//! use raft_host::secure::{Initiator, KeyFile, OsEntropy, Responder, SecureConfig};
//!
//! let keys = KeyFile::generate(&mut OsEntropy).unwrap();
//! let (a, b) = (SecureConfig::new(&keys, NodeId(1)), SecureConfig::new(&keys, NodeId(2)));
//! let now = Instant::ZERO;
//!
//! let mut initiation = Vec::new();
//! let mut initiator = Initiator::start(&a, NodeId(2), now, &mut OsEntropy, &mut initiation).unwrap();
//! let mut response = Vec::new();
//! let mut at_b = Responder::respond(&b, &initiation, now, &mut OsEntropy, &mut response).unwrap();
//! let mut at_a = initiator.handle_response(&response, now).unwrap();
//! assert!(response.len() <= initiation.len());
//!
//! let mut frame = Vec::new();
//! at_a.seal(b"append entries", &mut frame).unwrap();
//! assert_eq!(at_b.open(&frame).unwrap(), b"append entries");
//! assert!(at_b.open(&frame).is_err(), "a replay is refused");
//!
//! frame.clear();
//! at_b.seal(b"ack", &mut frame).unwrap();
//! assert_eq!(at_a.open(&frame).unwrap(), b"ack");
//! ```

mod config;
mod entropy;
mod handshake;
mod keyfile;
mod link;
mod replay;
mod session;
mod wire;

#[cfg(test)]
mod tests;

pub use config::{SecureConfig, SessionLimits};
pub use entropy::{Entropy, EntropyError, OsEntropy, SeededEntropy};
pub use handshake::{HandshakeError, Initiator, Responder};
pub use keyfile::{INCARNATION_LEN, Incarnation, KeyFile, KeyFileError, MAX_KEY_FILE_BYTES};
pub use link::{Handled, Link, MAX_UNCONFIRMED};
pub use replay::REPLAY_WINDOW;
pub use session::{OpenError, SealError, Session};
pub use wire::{
    DATA_HEADER_LEN, DATA_OVERHEAD, FrameHeader, FrameKind, HEADER_LEN, HeaderError, INITIATION_LEN, MAX_DATA_FRAME,
    MAX_PAYLOAD, RESPONSE_LEN, TAG_LEN, peek,
};
