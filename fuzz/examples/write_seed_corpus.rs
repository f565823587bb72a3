//! Rewrites the seed corpora in `fuzz/corpus/` (the files are checked in):
//! `cargo run --example write_seed_corpus` from `fuzz/`.

use raft_fuzz::rng::Rng;
use std::path::PathBuf;

fn main() {
    use raft_fuzz::core_cluster::{explore, messages_sent};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    // core_cluster: the random inputs that got furthest.
    let mut rng = Rng::new(0xC0DE);
    let mut picks: Vec<(u64, Vec<u8>)> = Vec::new();
    for _ in 0..400 {
        let len = 256 + rng.below(1024);
        let input = rng.bytes(len);
        let r = explore(&input);
        picks.push((r.applied * 4 + r.restored * 16 + r.restarts, input));
    }
    picks.sort_by_key(|p| std::cmp::Reverse(p.0));
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for (k, (_, input)) in picks.iter().take(4).enumerate() {
        write("core_cluster", &format!("seed-{k}"), input);
        for m in messages_sent(input) {
            if !messages.iter().any(|x| x.get(1) == m.get(1)) {
                messages.push(m);
            }
        }
    }
    // codec and frame: real messages, and a message behind an 8-byte sender.
    for (k, m) in messages.iter().enumerate() {
        write("codec", &format!("seed-{k}"), m);
        let mut framed = (k as u64 + 1).to_le_bytes().to_vec();
        framed.extend_from_slice(m);
        write("frame", &format!("seed-{k}"), &framed);
    }
    // udp_packet: one packet of each kind the peers and clients send.
    use raft_udp::packet::{Chunk, Fragment, Packet, encode};
    let packets = [
        Packet::Peer(Fragment { msg: 7, index: 1, count: 3, data: Chunk(&messages[0]) }),
        Packet::StatusRequest { nonce: 9 },
    ];
    for (k, p) in packets.iter().enumerate() {
        write("udp_packet", &format!("seed-{k}"), &encode(p).unwrap());
    }
    // fragments and disk_recovery: random programs.
    for (k, len) in [64, 256, 1024].into_iter().enumerate() {
        write("fragments", &format!("seed-{k}"), &rng.bytes(len));
        write("disk_recovery", &format!("seed-{k}"), &rng.bytes(len / 4));
    }
}
