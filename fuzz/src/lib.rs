//! The bodies of the fuzz targets, as plain functions over bytes.
//!
//! Each module's `run(data)` is one target: the libFuzzer binaries in
//! `fuzz_targets/` call it with libFuzzer's inputs (`cargo +nightly fuzz run
//! <target>`), and this crate's tests call it on stable with the checked-in
//! seed corpora and with seeded random and mutated inputs. A `run` panics
//! exactly when it finds a bug: a decoder that panics, a round trip that
//! changes a value, a bound that does not hold, a broken Raft invariant.
//!
//! | target | what it feeds | what it checks |
//! | --- | --- | --- |
//! | [`codec`] | bytes to `decode_message` | no panic; decode ∘ encode is the identity on what decodes |
//! | [`frame`] | bytes to `ClusterKey::open` (client frames), raw and sealed | no panic; the sealed sender and payload come back |
//! | [`udp_packet`] | bytes to `raft_udp::packet::decode` | no panic; round trip |
//! | [`fragments`] | fragments, genuine and forged, to a `Reassembler` | memory bounds; no message spliced from two |
//! | [`disk_recovery`] | a directory of fuzzed files to `DiskLog::open` | no panic; what opens is a valid log that reopens the same |
//! | [`secure`] | transport v2 handshakes, frames, replays, reflections, redirections, bit flips, restarts | each payload opens once, only at its addressee, unaltered; nothing misdirected, altered or pre-restart opens |
//! | [`core_cluster`] | deliveries, drops, timeouts, proposals, reads, crashes to 3 nodes | Raft's invariants after every step; linearizable read indexes |

pub mod codec;
pub mod core_cluster;
pub mod disk_recovery;
pub mod fragments;
pub mod frame;
pub mod rng;
pub mod secure;
pub mod udp_packet;

/// A target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as `cargo fuzz` knows them.
pub const TARGETS: &[(&str, Target)] = &[
    ("codec", codec::run),
    ("frame", frame::run),
    ("udp_packet", udp_packet::run),
    ("fragments", fragments::run),
    ("disk_recovery", disk_recovery::run),
    ("core_cluster", core_cluster::run),
    ("secure", secure::run),
];
