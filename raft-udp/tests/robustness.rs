//! Hostile datagrams at a live node: garbage, truncated, oversize and
//! unauthenticated frames, authenticated nonsense, fragments with impossible
//! shapes, packets from ids that are not peers. The node drops and counts
//! each kind, and keeps serving.

mod common;

use common::Cluster;
use raft_host::ClusterKey;
use raft_host::secure::KeyFile;
use raft_tests::wait::poll_until;
use raft_udp::packet::{self, Chunk, ClientReply, ClientResult, Fragment, MAX_DATAGRAM, Packet};
use serde_json::json;
use std::net::UdpSocket;
use std::time::Duration;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn peer(key: &ClusterKey, from: u64, msg: u64, index: u32, count: u32, data: &[u8]) -> Vec<u8> {
    let p = Packet::Peer(Fragment { msg, index, count, data: Chunk(data) });
    key.seal(from, &packet::encode(&p).unwrap())
}

#[test]
fn hostile_datagrams_are_dropped_counted_and_harmless() {
    let mut c = Cluster::new(3);
    c.start_all();
    c.wait_leader(Duration::from_secs(15));
    let key = KeyFile::parse(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap().key;
    let other_key = ClusterKey::from_bytes([9; 32]);
    let target = c.addrs[0];
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |d: &[u8]| {
        s.send_to(d, target).unwrap();
        std::thread::sleep(Duration::from_micros(200)); // stay within the socket buffer
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // Not frames of this cluster: 300 garbage datagrams (empty ones too), one
    // of the largest size, frames under another key, truncated frames.
    let mut bad_frame = 0;
    for i in 0..300 {
        let len = (rng.next() % 1500) as usize * (i % 2);
        send(&rng.bytes(len));
        bad_frame += 1;
    }
    send(&rng.bytes(MAX_DATAGRAM));
    bad_frame += 1;
    let status_req = packet::encode(&Packet::StatusRequest { nonce: 1 }).unwrap();
    for _ in 0..20 {
        send(&other_key.seal(2, &status_req));
        let good = key.seal(2, &status_req);
        send(&good[..good.len() - 1 - (rng.next() % 40) as usize]);
        bad_frame += 2;
    }

    // Authenticated client datagrams that are malformed: unknown packet
    // kinds, trailing bytes.
    let mut malformed = 0;
    for _ in 0..20 {
        let mut junk = rng.bytes(50);
        junk[0] = 200;
        send(&key.seal(2, &junk));
        let mut trailing = status_req.clone();
        trailing.push(0);
        send(&key.seal(2, &trailing));
        malformed += 2;
    }

    // Peer traffic in the client format (the old version 1 peer frames),
    // even under the right key and whatever its shape: fragments with a
    // count of zero, an index past it, a count no limit allows, from ids
    // that are not peers or from the node itself. Peers speak transport v2
    // only, so every one is refused as a bad frame.
    for _ in 0..10 {
        send(&peer(&key, 2, rng.next(), 0, 0, b"x"));
        send(&peer(&key, 2, rng.next(), 7, 3, b"x"));
        send(&peer(&key, 2, rng.next(), 0, 1, &rng.bytes(30)));
        send(&peer(&key, 3, rng.next(), 0, u32::MAX, b"x"));
        send(&peer(&key, 99, rng.next(), 0, 1, b"x"));
        send(&peer(&key, 1, rng.next(), 0, 1, b"x"));
        send(&peer(&key, 2, 1_000_000 + rng.next(), 0, 3, &[0; 100]));
        bad_frame += 7;
    }
    // Replies are never sent to a node.
    let reply = Packet::ClientReply(ClientReply { nonce: 1, seq: 1, result: ClientResult::Rejected("x".into()) });
    for _ in 0..10 {
        send(&key.seal(5, &packet::encode(&reply).unwrap()));
    }

    let want = json!({
        "bad_frame": bad_frame,
        "replayed": 0,
        "stale_session": 0,
        "malformed": malformed,
        "oversize": 0,
        "unknown_peer": 0,
        "unexpected": 10,
        "incomplete": 0,
    });
    poll_until(Duration::from_secs(15), Duration::from_millis(200), &format!("drop counters {want}"), || {
        let st = c.status();
        let dropped = st.iter().find(|(i, _)| *i == 0).map(|(_, v)| v["dropped"].clone());
        if dropped.as_ref() == Some(&want) { Ok(()) } else { Err(format!("{dropped:?}")) }
    });

    // Still serving, and so is the cluster.
    assert_eq!(c.kv(&["put", "k", "v"]).0, 0);
    assert_eq!(c.kv(&["get", "k"]), (0, json!({"op":"get","key":"k","ok":true,"value":"v"})));
    let leader = c.wait_leader(Duration::from_secs(10));
    let commit = c.status().iter().find(|(i, _)| *i == leader).unwrap().1["commit_index"].as_u64().unwrap();
    c.wait_applied(&[0, 1, 2], commit, Duration::from_secs(10));
}

#[test]
fn a_flood_of_garbage_does_not_stop_an_election() {
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(15));
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // Flood both followers with junk as fast as one thread each can send.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = others
        .iter()
        .map(|i| {
            let (target, stop) = (c.addrs[*i], stop.clone());
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                let junk = [0xA5u8; 64];
                let mut sent = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = s.send_to(&junk, target);
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    c.kill9(leader);
    let elected = std::panic::catch_unwind(|| c.wait_leader_among(&others, Duration::from_secs(15)));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: u64 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    eprintln!("flood: {sent} datagrams");
    assert!(elected.is_ok(), "no leader elected under the flood");
    assert_eq!(c.kv(&["put", "k", "v"]).0, 0);
}
