//! What a node brings to every handshake, and how long a session lives.

use super::keyfile::{Incarnation, KeyFile};
use crate::auth::ClusterKey;
use raft_core::{Duration, NodeId};

/// One node's side of transport v2: the cluster key (the Noise pre-shared
/// key), the cluster incarnation and the node's own id.
#[derive(Debug, Clone)]
pub struct SecureConfig {
    /// The cluster's shared secret.
    pub key: ClusterKey,
    /// The cluster's incarnation (from the key file).
    pub incarnation: Incarnation,
    /// This node.
    pub me: NodeId,
    /// When sessions must be replaced.
    pub limits: SessionLimits,
}

impl SecureConfig {
    /// The configuration of node `me` of the cluster in `key_file`, with
    /// the default limits.
    pub fn new(key_file: &KeyFile, me: NodeId) -> SecureConfig {
        SecureConfig {
            key: key_file.key.clone(),
            incarnation: key_file.incarnation,
            me,
            limits: SessionLimits::default(),
        }
    }
}

/// When a session is replaced by a new handshake (rekey) and when it is no
/// longer used at all (reject). Counts are of frames sealed in one
/// direction (for the `reject` count, also of counters received); ages run
/// from the handshake.
///
/// The defaults follow WireGuard's: a new handshake after 2 minutes or 2^60
/// frames, and a session refused after 3 minutes or 2^64 - 2^13 frames. The
/// counts are far beyond what a Raft cluster sends; the ages make every
/// session, and so every key, short-lived: a key that leaks from memory
/// unlocks at most three minutes of one pair's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Frames sealed after which the link asks for a new handshake.
    pub rekey_after_messages: u64,
    /// Counters at or above this are never sealed nor accepted.
    pub reject_after_messages: u64,
    /// Age after which the link asks for a new handshake.
    pub rekey_after: Duration,
    /// Age after which the session seals and opens nothing.
    pub reject_after: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            rekey_after_messages: 1 << 60,
            reject_after_messages: u64::MAX - (1 << 13),
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
        }
    }
}
