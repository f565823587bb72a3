//! End to end, the client session protocol: replayed requests add no log
//! entries, the largest value round-trips, an unproven address never gets
//! more bytes than it sent, and many one-shot clients leave the session
//! table within its bound (as `status` shows).

mod common;

use common::Cluster;
use raft_host::{ClusterKey, KvOp, KvOutput};
use raft_udp::packet::{
    self, COOKIE_REQUEST_PADDING, Chunk, ClientOp, ClientReply, ClientResult, Cookie, MAX_VALUE_BYTES, Packet,
    SessionRequest,
};
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A hand-driven client socket: sends sealed packets, collects raw replies.
struct Raw {
    socket: UdpSocket,
    key: ClusterKey,
    id: u64,
}

impl Raw {
    fn new(key: &ClusterKey) -> Raw {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Raw { socket, key: key.clone(), id: raft_udp::random_u64() }
    }

    fn frame(&self, p: &Packet<'_>) -> Vec<u8> {
        self.key.seal(self.id, &packet::encode(p).unwrap())
    }

    /// Every datagram that arrives within `wait`.
    fn collect(&self, wait: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while Instant::now() < end {
            if let Ok(n) = self.socket.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        got
    }

    /// Sends `frame` to `to` until a reply that `pick` accepts arrives.
    fn ask<T>(&self, to: SocketAddr, frame: &[u8], mut pick: impl FnMut(Packet<'_>) -> Option<T>) -> T {
        let mut buf = vec![0u8; 70_000];
        for _ in 0..100 {
            self.socket.send_to(frame, to).unwrap();
            let end = Instant::now() + Duration::from_millis(200);
            while Instant::now() < end {
                let Ok(n) = self.socket.recv(&mut buf) else { continue };
                let Ok((_, payload)) = self.key.open(&buf[..n]) else { continue };
                if let Some(t) = packet::decode(payload).ok().and_then(&mut pick) {
                    return t;
                }
            }
        }
        panic!("no answer from {to}");
    }

    fn cookie(&self, to: SocketAddr) -> Cookie {
        let req = self.frame(&Packet::CookieRequest { nonce: 1, padding: Chunk(&[0; COOKIE_REQUEST_PADDING]) });
        self.ask(to, &req, |p| match p {
            Packet::CookieReply { nonce: 1, cookie } => Some(cookie),
            _ => None,
        })
    }

    fn request(&self, cookie: Cookie, nonce: u64, session: u64, seq: u64, op: ClientOp) -> Vec<u8> {
        self.frame(&Packet::SessionRequest(SessionRequest { nonce, cookie, session, seq, op }))
    }

    fn result(&self, to: SocketAddr, frame: &[u8], nonce: u64) -> ClientResult {
        self.ask(to, frame, |p| match p.into_session_reply() {
            Some(ClientReply { nonce: n, result, .. }) if n == nonce => Some(result),
            _ => None,
        })
    }
}

fn key_of(c: &Cluster) -> ClusterKey {
    raft_host::secure::KeyFile::parse(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap().key
}

fn last_log_indexes(c: &Cluster) -> Vec<u64> {
    let mut st = c.status();
    st.sort_by_key(|(i, _)| *i);
    st.iter().map(|(_, v)| v["last_log_index"].as_u64().unwrap()).collect()
}

#[test]
fn replayed_client_requests_add_no_log_entries() {
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(15));
    let to = c.addrs[leader];
    let key = key_of(&c);
    let client = Raw::new(&key);
    let cookie = client.cookie(to);

    // A client's session: a registration, two commands. Keep the datagrams.
    let register = client.request(cookie, 10, 0, 0, ClientOp::Register { id: 77 });
    let session = match client.result(to, &register, 10) {
        ClientResult::Done(KvOutput::Registered { session }) => session,
        other => panic!("registration: {other:?}"),
    };
    let put1 = client.request(cookie, 11, session, 1, ClientOp::Kv(KvOp::cas("k", None, "1")));
    assert_eq!(client.result(to, &put1, 11), ClientResult::Done(KvOutput::cas(true, Some("1"))));
    let put2 = client.request(cookie, 12, session, 2, ClientOp::Kv(KvOp::put("k", "2")));
    assert_eq!(client.result(to, &put2, 12), ClientResult::Done(KvOutput::Put));
    let commit = c.status().iter().find(|(i, _)| *i == leader).unwrap().1["commit_index"].as_u64().unwrap();
    c.wait_applied(&[0, 1, 2], commit, Duration::from_secs(10));
    let before = last_log_indexes(&c);

    // An attacker replays them, alternating, from the client's own address
    // (as a spoofer would), and from another address.
    let other = Raw::new(&key);
    for _ in 0..50 {
        for d in [&register, &put1, &put2] {
            client.socket.send_to(d, to).unwrap();
            other.socket.send_to(d, to).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // The answers come from the session: the registration's session, the
    // stale first command refused, the second one's kept output.
    assert_eq!(client.result(to, &register, 10), ClientResult::Done(KvOutput::Registered { session }));
    assert!(matches!(client.result(to, &put1, 11), ClientResult::Rejected(why) if why.contains("stale")));
    assert_eq!(client.result(to, &put2, 12), ClientResult::Done(KvOutput::Put));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(last_log_indexes(&c), before, "replayed requests appended entries");
    assert_eq!(c.kv(&["get", "k"]), (0, json!({"op":"get","key":"k","ok":true,"value":"2"})));

    // A session the cluster never registered is refused, also without an entry.
    let bogus = client.request(cookie, 13, session + 1000, 1, ClientOp::Kv(KvOp::put("k", "x")));
    assert_eq!(client.result(to, &bogus, 13), ClientResult::UnknownSession);
    // The control: a new command in the session appends exactly one entry on every node.
    let put3 = client.request(cookie, 14, session, 3, ClientOp::Kv(KvOp::put("k", "3")));
    assert_eq!(client.result(to, &put3, 14), ClientResult::Done(KvOutput::Put));
    let after = last_log_indexes(&c);
    assert_eq!(after.iter().max(), before.iter().max().map(|m| m + 1).as_ref(), "{before:?} -> {after:?}");
}

#[test]
fn the_largest_value_round_trips_and_a_larger_one_is_refused() {
    let mut c = Cluster::new(3);
    c.start_all();
    c.wait_leader(Duration::from_secs(15));
    let big = "v".repeat(MAX_VALUE_BYTES);
    assert_eq!(c.kv(&["put", "big", &big]), (0, json!({"op":"put","key":"big","ok":true})));
    assert_eq!(c.kv(&["get", "big"]), (0, json!({"op":"get","key":"big","ok":true,"value":big})));
    let (code, v) = c.kv(&["cas", "big", &big, "small"]);
    assert_eq!((code, &v["swapped"]), (0, &json!(true)), "{v}");

    // One byte more: a clear error, from the client and from the node.
    let bigger = "v".repeat(MAX_VALUE_BYTES + 1);
    let (code, v) = c.kv(&["put", "big", &bigger]);
    assert_eq!(code, 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("largest value a get can return"), "{v}");
    let leader = c.wait_leader(Duration::from_secs(10));
    let to = c.addrs[leader];
    let raw = Raw::new(&key_of(&c));
    let cookie = raw.cookie(to);
    let register = raw.request(cookie, 1, 0, 0, ClientOp::Register { id: 5 });
    let ClientResult::Done(KvOutput::Registered { session }) = raw.result(to, &register, 1) else { panic!() };
    let put = raw.request(cookie, 2, session, 1, ClientOp::Kv(KvOp::put("b", bigger)));
    assert!(matches!(raw.result(to, &put, 2), ClientResult::Rejected(why) if why.contains("value too large")));
    assert_eq!(c.kv(&["get", "big"]), (0, json!({"op":"get","key":"big","ok":true,"value":"small"})));
}

#[test]
fn an_unproven_address_never_gets_more_bytes_than_it_sent() {
    let mut c = Cluster::new(3);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(15));
    let to = c.addrs[leader];
    let value = "x".repeat(20_000);
    assert_eq!(c.kv(&["put", "big", &value]).0, 0);
    let key = key_of(&c);
    let attacker = Raw::new(&key);
    let victim = Raw::new(&key);
    // The attacker's own cookie; requests that claim the victim's address
    // (here: sent from it) carry it, or none.
    let stolen = attacker.cookie(to);
    let get = ClientOp::Kv(KvOp::get("big"));
    let probes: Vec<(&str, Vec<u8>)> = vec![
        ("get with another address's cookie", victim.request(stolen, 1, 0, 0, get.clone())),
        ("status with another address's cookie", victim.frame(&Packet::StatusQuery { nonce: 2, cookie: stolen })),
        ("status without a cookie", victim.frame(&Packet::StatusRequest { nonce: 3 })),
        ("unpadded cookie request", victim.frame(&Packet::CookieRequest { nonce: 4, padding: Chunk(&[]) })),
        (
            "register with a forged cookie",
            victim.request(Cookie { expires: stolen.expires, tag: [7; 16] }, 5, 0, 0, ClientOp::Register { id: 9 }),
        ),
    ];
    for node in &c.addrs {
        for (what, probe) in &probes {
            for _ in 0..5 {
                victim.socket.send_to(probe, node).unwrap();
            }
            for reply in victim.collect(Duration::from_millis(300)) {
                assert!(reply.len() <= probe.len(), "{what}: {} bytes answered with {}", probe.len(), reply.len());
            }
        }
    }
    // The control: with its own cookie, the same get brings the whole value.
    let cookie = victim.cookie(to);
    let get = victim.request(cookie, 6, 0, 0, get);
    assert_eq!(victim.result(to, &get, 6), ClientResult::Done(KvOutput::Get(Some(value))));
    // Unanswerable requests are counted.
    let st = c.status();
    assert!(st.iter().all(|(_, v)| v["unproven"].as_u64() >= Some(5)), "{st:?}");
}

/// `puts` one-shot clients (each: its own socket, cookie, session and one
/// put, like `raft-udp put`), `parallel` at a time, against a cluster whose
/// session table is bounded to `max_sessions` sessions. The table stays
/// within its bound at every status sample and at the end.
fn one_shot_puts_keep_the_table_bounded(puts: usize, parallel: usize, max_sessions: u64) {
    let bound = max_sessions * raft_host::kv::SESSION_OVERHEAD_BYTES;
    let mut c = Cluster::new(3);
    c.extra.extend(["--max-session-bytes".to_owned(), bound.to_string()]);
    c.start_all();
    c.wait_leader(Duration::from_secs(15));
    let key = key_of(&c);
    let servers = c.addrs.clone();
    let started = Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let done = done.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let workers: Vec<_> = (0..parallel)
                    .map(|_| {
                        let (next, done, key, servers) = (next.clone(), done.clone(), key.clone(), servers.clone());
                        tokio::spawn(async move {
                            let mut failed = 0usize;
                            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < puts {
                                let mut client = raft_udp::client::Client::connect(
                                    servers.clone(),
                                    key.clone(),
                                    Duration::from_secs(10),
                                )
                                .await
                                .unwrap();
                                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let outcome = client.execute(KvOp::put(format!("k{}", n % 1000), "v")).await;
                                failed += usize::from(!matches!(outcome, raft_udp::client::CommandOutcome::Ok(_)));
                            }
                            failed
                        })
                    })
                    .collect();
                let mut failed = 0;
                for w in workers {
                    failed += w.await.unwrap();
                }
                failed
            })
        })
    };
    let mut peak = (0u64, 0u64);
    while !load.is_finished() {
        for (_, v) in c.status() {
            peak.0 = peak.0.max(v["sessions"].as_u64().unwrap());
            peak.1 = peak.1.max(v["session_bytes"].as_u64().unwrap());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let failed = load.join().unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "{puts} one-shot puts ({parallel} at a time) in {elapsed:.1?} ({:.0}/s), {failed} failed; peak sessions {} bytes {} (bound {bound})",
        puts as f64 / elapsed.as_secs_f64(),
        peak.0,
        peak.1
    );
    assert!(failed <= puts / 1000, "{failed} of {puts} puts failed");
    let leader = c.wait_leader(Duration::from_secs(10));
    let commit = c.status().iter().find(|(i, _)| *i == leader).unwrap().1["commit_index"].as_u64().unwrap();
    c.wait_applied(&[0, 1, 2], commit, Duration::from_secs(30));
    for (i, v) in c.status() {
        let (sessions, bytes) = (v["sessions"].as_u64().unwrap(), v["session_bytes"].as_u64().unwrap());
        assert_eq!(v["session_limit_bytes"], bound, "node {i}: {v}");
        assert!(bytes <= bound && sessions <= max_sessions, "node {i}: {v}");
        // The table is in use, up to its bound: many more clients than fit.
        assert_eq!(sessions, max_sessions, "node {i}: {v}");
    }
    assert!(peak.1 <= bound, "peak {peak:?}");
}

/// The figure: 100,000 one-shot puts, against a bound of 1,000
/// sessions. About 35 s on a loaded 2-core machine (3,000 puts/s).
#[test]
fn a_hundred_thousand_one_shot_puts_leave_the_session_table_within_its_bound() {
    one_shot_puts_keep_the_table_bounded(100_000, 64, 1_000);
}

#[test]
fn an_expired_session_is_registered_again_and_the_backlog_is_bounded() {
    let mut c = Cluster::new(1);
    c.extra.extend(["--session-timeout", "1s", "--max-uncommitted-bytes", "300"].map(str::to_owned));
    c.start_all();
    c.wait_leader(Duration::from_secs(10));
    let key = key_of(&c);
    let servers = c.addrs.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use raft_udp::client::{Client, CommandOutcome};
        let connect = || Client::connect(servers.clone(), key.clone(), Duration::from_secs(5));
        let mut a = connect().await.unwrap();
        assert_eq!(a.execute(KvOp::put("k", "1")).await, CommandOutcome::Ok(KvOutput::Put));
        let first = a.session().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Another client's registration moves log time past a's timeout.
        let mut b = connect().await.unwrap();
        assert_eq!(b.execute(KvOp::put("j", "1")).await, CommandOutcome::Ok(KvOutput::Put));
        // a's session expired: told so, it registers again and the put goes through.
        assert_eq!(a.execute(KvOp::put("k", "2")).await, CommandOutcome::Ok(KvOutput::Put));
        assert!(a.session().unwrap() > first, "a new session");
        // A command larger than the leader's backlog limit: a clear error.
        let CommandOutcome::Failed(why) = a.execute(KvOp::put("k", "x".repeat(400))).await else { panic!() };
        assert!(why.contains("uncommitted bytes"), "{why}");
        assert_eq!(a.execute(KvOp::get("k")).await, CommandOutcome::Ok(KvOutput::get(Some("2"))));
    });
    let st = c.status();
    assert_eq!(st[0].1["sessions"], 2, "a's first session expired: {st:?}");
}
