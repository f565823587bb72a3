//! Identifiers and log entries.

use alloc::sync::Arc;
use core::fmt;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// A cluster member's identity. Any `u64`; unique within a cluster.
    NodeId,
    "n"
);
id_type!(
    /// A Raft term (paper §5.1). Term 0 is the initial term; no leader is elected in it.
    Term,
    "t"
);
id_type!(
    /// A position in the replicated log. The first entry has index 1; index 0 means "none".
    LogIndex,
    "i"
);

impl Term {
    pub(crate) fn next(self) -> Term {
        Term(self.0.saturating_add(1))
    }
}

impl LogIndex {
    pub(crate) fn next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }
    pub(crate) fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// An immutable, cheaply cloned byte string (a command or a snapshot chunk).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Bytes(Arc<alloc::vec::Vec<u8>>);

impl Bytes {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl core::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<alloc::vec::Vec<u8>> for Bytes {
    fn from(v: alloc::vec::Vec<u8>) -> Bytes {
        Bytes(Arc::new(v))
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Bytes {
        Bytes(Arc::new(v.to_vec()))
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(v: &[u8; N]) -> Bytes {
        Bytes(Arc::new(v.to_vec()))
    }
}

impl From<&str> for Bytes {
    fn from(v: &str) -> Bytes {
        Bytes(Arc::new(v.as_bytes().to_vec()))
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(&self.0) {
            Ok(s) if s.len() <= 32 => write!(f, "{s:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: alloc::vec::Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Payload {
    /// Appended by every new leader at the start of its term (paper §8); the host skips it.
    Noop,
    /// A command proposed by a client, opaque to the core.
    Command(Bytes),
    /// A new cluster configuration, in effect from the moment it is
    /// appended (see [`crate::membership`]); the host skips it when applying.
    /// Behind a pointer: configurations are rare and large (four sets), and
    /// inline they would more than double the size of every entry, which
    /// slowed the log's hot paths (core-bench: 2.4x raft-rs's throughput
    /// before the variant existed, 0.9x with it inline). An `Arc` rather than
    /// a `Box`, so that cloning an entry (the log, each AppendEntries, each
    /// apply) bumps a reference count whichever its payload, with no deep
    /// copy to branch around (core-bench, 2026-12-01: 113 instructions less
    /// per proposal one at a time). The encoding is that of the configuration.
    Membership(Arc<crate::Membership>),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created it.
    pub term: Term,
    /// Its position in the log.
    pub index: LogIndex,
    /// What it carries.
    pub payload: Payload,
}

/// Encoded size bound of an entry without its payload bytes (bincode varints:
/// term, index and length prefix at most 9 bytes each, plus the variant tag).
pub const ENTRY_OVERHEAD_BYTES: usize = 32;

impl Entry {
    /// An upper bound on this entry's encoded size, computed without encoding.
    #[inline]
    pub fn size_bound(&self) -> usize {
        ENTRY_OVERHEAD_BYTES
            + match &self.payload {
                Payload::Noop => 0,
                Payload::Command(b) => b.len(),
                Payload::Membership(m) => m.size_bound(),
            }
    }
}

/// The part of a node's state that must survive a crash besides the log (paper Figure 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// The node lost log entries it may have acknowledged (its disk was
    /// repaired after corruption, see raft-host's storage docs). Until it
    /// holds an entry that the current leader committed in its own term, it
    /// neither votes nor campaigns: its vote could otherwise elect a leader
    /// that lacks a committed entry.
    pub catching_up: bool,
}

/// Where a snapshot ends: the last log entry it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The index of the last entry the snapshot covers.
    pub index: LogIndex,
    /// The term of that entry.
    pub term: Term,
}

/// The size and CRC-32 of a snapshot's state-machine bytes when the host,
/// not the core, holds them (see [`Node::compact_stored`](crate::Node::compact_stored)
/// and `Config::host_stores_snapshots`). The snapshot's `data` is then empty.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotDigest {
    /// The length of the bytes.
    pub len: u64,
    /// Their CRC-32 (as in `InstallSnapshot::checksum`).
    pub checksum: u32,
}

/// A state-machine snapshot: everything up to `meta.index`, as opaque bytes
/// produced by the host's state machine, and the cluster configuration in
/// effect at `meta.index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The configuration in effect at `meta.index` (empty: none recorded, as
    /// in snapshots of nodes that never logged one; `Config::members` then
    /// applies). Boxed: inline, it would make every [`crate::Write`] and
    /// [`crate::Output`] twice as large.
    pub membership: alloc::boxed::Box<crate::Membership>,
    /// The state machine's serialized state.
    pub data: Bytes,
}

#[cfg(test)]
mod bytes_tests {
    use super::Bytes;
    use serde::Deserialize;

    #[test]
    fn bytes_report_their_length_and_contents() {
        let b = Bytes::from("abc");
        assert_eq!((b.len(), b.is_empty(), b.as_slice()), (3, false, &b"abc"[..]));
        assert!(Bytes::default().is_empty());
        assert!(Bytes::from(alloc::vec::Vec::new()).is_empty());
    }

    #[test]
    fn bytes_decode_alike_from_a_borrowed_and_an_owned_buffer() {
        // bincode's borrowing decoder hands the visitor a slice; its owning
        // decoder (a host reading from a stream) hands it a `Vec`.
        let config = bincode::config::standard();
        let encoded = bincode::serde::encode_to_vec(Bytes::from("state"), config).unwrap();
        let (borrowed, _): (Bytes, usize) = bincode::serde::borrow_decode_from_slice(&encoded, config).unwrap();
        let reader = bincode::de::read::SliceReader::new(&encoded);
        let owned: Bytes = bincode::serde::decode_from_reader(reader, config).unwrap();
        assert_eq!((borrowed.as_slice(), owned.as_slice()), (&b"state"[..], &b"state"[..]));
    }

    #[test]
    fn a_value_that_is_no_byte_string_is_refused_saying_what_was_expected() {
        let d = serde::de::value::U32Deserializer::<serde::de::value::Error>::new(5);
        let e = Bytes::deserialize(d).unwrap_err();
        assert!(alloc::format!("{e}").contains("expected a byte string"), "{e}");
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Every log entry is moved and cloned on the hot paths: a large rare
    /// variant inline in `Payload` (a configuration, four sets) once made
    /// entries 2.5 times larger and the core 2.5 times slower in
    /// core-bench. Box such variants.
    #[test]
    fn an_entry_stays_small() {
        let size = core::mem::size_of::<Entry>();
        // Term, index, and a payload of one tag and one pointer.
        assert!(size <= 32, "Entry is {size} bytes");
        assert!(core::mem::size_of::<Payload>() <= 16, "Payload is {} bytes", core::mem::size_of::<Payload>());
    }
}
