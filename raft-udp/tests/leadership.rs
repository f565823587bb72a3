//! End to end, real processes on loopback, peers talking through a
//! fault-injecting proxy: a returning follower does not depose the leader
//! (pre-vote), an isolated leader steps down (check-quorum), leadership
//! moves with `transfer-leader`, and a follower forwards a client's command
//! to its leader.

mod common;

use common::proxy::Proxy;
use common::{Cluster, run};
use raft_host::secure::KeyFile;
use raft_host::{ClusterKey, KvOp, KvOutput};
use raft_tests::wait::poll_until;
use raft_udp::packet::{self, COOKIE_REQUEST_PADDING, Chunk, ClientOp, ClientResult, Cookie, Packet, SessionRequest};
use serde_json::{Value, json};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The longest election timeout of the test cluster (`common::FAST`).
const ELECTION_MAX: Duration = Duration::from_millis(500);
const ELECTION: Duration = Duration::from_secs(15);

fn proxied_cluster() -> (Cluster, Proxy) {
    let addrs = common::free_addrs(3);
    let proxy = Proxy::start(&addrs);
    let mut c = Cluster::with_routes(addrs, proxy.routes.clone());
    c.start_all();
    (c, proxy)
}

/// Node `i`'s status (it must answer).
fn status_of(c: &Cluster, i: usize) -> Value {
    poll_until(Duration::from_secs(5), Duration::from_millis(50), &format!("node {} to answer", i + 1), || {
        c.status().into_iter().find(|(j, _)| *j == i).map(|(_, v)| v).ok_or_else(|| "no answer".to_owned())
    })
}

fn term(v: &Value) -> u64 {
    v["term"].as_u64().unwrap()
}

#[test]
fn a_returning_follower_changes_neither_leader_nor_term() {
    let (c, proxy) = proxied_cluster();
    let leader = c.wait_leader(ELECTION);
    assert_eq!(c.kv(&["put", "a", "1"]).0, 0);
    let t = term(&status_of(&c, leader));
    let follower = (leader + 1) % 3;

    // Cut off for five election timeouts: it keeps asking for pre-votes
    // that nobody grants (nor hears), without raising its term.
    proxy.isolate(follower);
    std::thread::sleep(ELECTION_MAX * 5);
    let away = status_of(&c, follower);
    assert_eq!(term(&away), t, "the cut-off follower raised its term: {away}");
    proxy.heal();

    // It rejoins under the same leader in the same term, and catches up.
    assert_eq!(c.kv(&["put", "b", "2"]).0, 0);
    let st = poll_until(ELECTION, Duration::from_millis(100), "the follower to catch up", || {
        let st = c.status();
        let field = |node: usize, f: &str| st.iter().find(|(i, _)| *i == node).map(|(_, v)| v[f].clone());
        let caught_up = field(follower, "last_applied").is_some_and(|a| Some(a) == field(leader, "commit_index"));
        if caught_up && st.len() == 3 { Ok(st) } else { Err(format!("{st:?}")) }
    });
    for (i, v) in &st {
        assert_eq!(v["leader"], (leader + 1) as u64, "node {} after the heal: {v}", i + 1);
        assert_eq!(term(v), t, "node {} after the heal: {v}", i + 1);
    }
    assert_eq!(c.wait_leader(ELECTION), leader);
}

#[test]
fn an_isolated_leader_steps_down_and_the_majority_elects_another() {
    let (c, proxy) = proxied_cluster();
    let old = c.wait_leader(ELECTION);
    let t = term(&status_of(&c, old));
    proxy.isolate(old);

    // Check-quorum: it no longer hears a majority and stops leading.
    poll_until(ELECTION, Duration::from_millis(100), "the isolated leader to step down", || {
        let v = status_of(&c, old);
        if v["role"] != "leader" { Ok(()) } else { Err(v.to_string()) }
    });
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = c.wait_leader_among(&rest, ELECTION);
    assert!(term(&status_of(&c, new)) > t);
    assert_eq!(c.kv(&["put", "k", "v"]).0, 0);

    proxy.heal();
    assert_eq!(c.wait_leader(ELECTION), new, "the old leader took leadership back after the heal");
}

#[test]
fn transfer_leader_moves_leadership_and_reports_errors() {
    let (mut c, _proxy) = proxied_cluster();
    let old = c.wait_leader(ELECTION);
    assert_eq!(c.kv(&["put", "a", "1"]).0, 0);
    let t = term(&status_of(&c, old));
    let target = (old + 1) % 3;
    let to = (target + 1).to_string();

    let (code, line) = c.kv(&["transfer-leader", "--to", &to]);
    assert_eq!(code, 0, "{line}");
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["leader"], (target + 1) as u64, "{line}");
    assert!(line["term"].as_u64().unwrap() > t, "{line}");
    assert_eq!(c.wait_leader(ELECTION), target);
    assert_eq!(c.kv(&["get", "a"]), (0, json!({"op":"get","key":"a","ok":true,"value":"1"})));

    // Already leading: nothing to do.
    let (code, again) = c.kv(&["transfer-leader", "--to", &to]);
    assert_eq!((code, &again["ok"], &again["leader"]), (0, &json!(true), &json!(target + 1)), "{again}");

    // Not a member: refused, exit 1.
    let (code, bad) = c.kv(&["transfer-leader", "--to", "9"]);
    assert_eq!((code, &bad["ok"]), (1, &json!(false)), "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("not another voting member"), "{bad}");

    // A target that is down: the transfer times out, exit 1, and the
    // leader leads on in its term.
    let t = term(&status_of(&c, target));
    let down = (target + 1) % 3;
    c.kill9(down);
    let (code, failed) = c.kv(&["transfer-leader", "--to", &(down + 1).to_string(), "--timeout-ms", "5000"]);
    assert_eq!((code, &failed["ok"]), (1, &json!(false)), "{failed}");
    let v = status_of(&c, target);
    assert_eq!((&v["role"], term(&v)), (&json!("leader"), t), "{v}");
    assert_eq!(c.kv(&["put", "b", "2"]).0, 0, "the leader accepts writes again");

    // Bad flags: exit 2, nothing on stdout.
    let out = c.cli("transfer-leader", &[], "");
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = c.cli("transfer-leader", &["--to", "x"], "");
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
}

#[test]
fn a_follower_forwards_a_command_to_its_leader() {
    let (c, _proxy) = proxied_cluster();
    let leader = c.wait_leader(ELECTION);
    let follower = (leader + 1) % 3;
    // Only the follower's address: its leader hint is a proxy address that
    // does not answer clients, so the command can only succeed forwarded.
    let only = c.addrs[follower].to_string();
    let key_file = c.key_file.display().to_string();
    let args = ["put", "--servers", &only, "--key-file", &key_file, "f", "1"];
    let out = run(&args, "", Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json(), vec![json!({"op":"put","key":"f","ok":true})]);
    let get = ["get", "--servers", &only, "--key-file", &key_file, "f"];
    let out = run(&get, "", Duration::from_secs(30));
    assert_eq!(out.json(), vec![json!({"op":"get","key":"f","ok":true,"value":"1"})], "{out:?}");
    let v = status_of(&c, follower);
    assert_eq!(v["role"], "follower", "{v}");
}

#[test]
fn cluster_transfer_moves_leadership_to_the_named_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo").display().to_string();
    let script = "put a 1\ntransfer 2\nstatus --json\n";
    let out = run(&["cluster", "--nodes", "3", "--dir", &d], script, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = out.json();
    assert_eq!(lines.len(), 5, "{out:?}");
    assert_eq!(lines[1]["ok"], true, "{out:?}");
    assert_eq!(lines[1]["leader"], 2, "{out:?}");
    let leaders: Vec<&Value> = lines[2..].iter().filter(|v| v["role"] == "leader").map(|v| &v["id"]).collect();
    assert_eq!(leaders, vec![&json!(2)], "{out:?}");
}

/// Node `i`'s count of frames dropped for a session it does not hold.
fn stale_sessions(c: &Cluster, i: usize) -> u64 {
    status_of(c, i)["dropped"]["stale_session"].as_u64().unwrap()
}

/// Moves leadership to node `to` and waits until everyone follows it.
fn transfer_to(c: &Cluster, to: usize) {
    let (code, line) = c.kv(&["transfer-leader", "--to", &(to + 1).to_string()]);
    assert_eq!((code, &line["ok"]), (0, &json!(true)), "{line}");
    assert_eq!(c.wait_leader(ELECTION), to);
}

/// A restarted node sets up a session with every peer as it starts. A peer
/// that held a session of its previous incarnation used to keep sealing
/// under it, and the restarted node dropped the first frame: followers send
/// each other nothing until an election, so that frame was a vote request,
/// and the election waited another timeout (a kill -9 failover took up to
/// the second survivor's timeout instead of the first's).
#[test]
fn a_restarted_node_takes_the_first_frame_of_a_peer_that_knew_its_previous_incarnation() {
    let mut c = Cluster::new(3);
    c.start_all();
    let first = c.wait_leader(ELECTION);
    // Leadership through `victim` and then `witness` sets up sessions
    // between every two nodes; `witness` then follows `third`.
    let (victim, witness) = ((first + 1) % 3, (first + 2) % 3);
    transfer_to(&c, victim);
    transfer_to(&c, witness);
    let third = first;
    transfer_to(&c, third);
    assert_eq!(c.kv(&["put", "a", "1"]).0, 0);

    c.kill9(victim);
    c.start(victim);
    assert_eq!(c.kv(&["put", "b", "2"]).0, 0);
    let commit = status_of(&c, third)["commit_index"].as_u64().unwrap();
    c.wait_applied(&[victim], commit, ELECTION);
    let before = stale_sessions(&c, victim);

    // The witness's vote request is the first frame it sends the restarted
    // node. The transfer would succeed on the third node's vote alone, so
    // the count is what tells.
    transfer_to(&c, witness);
    assert_eq!(c.kv(&["put", "c", "3"]).0, 0);
    let after = stale_sessions(&c, victim);
    assert_eq!(after, before, "the restarted node dropped frames of a session of its previous incarnation");
}

/// A client speaking the session protocol datagram by datagram, to see
/// exactly what one node answers and when.
struct RawClient {
    socket: UdpSocket,
    key: ClusterKey,
    node: SocketAddr,
    cookie: Option<Cookie>,
    nonce: u64,
}

impl RawClient {
    const ID: u64 = 0x5EED_C11E;

    fn new(c: &Cluster, node: usize) -> RawClient {
        let key = KeyFile::parse(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap().key;
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        RawClient { socket, key, node: c.addrs[node], cookie: None, nonce: 0 }
    }

    fn send(&mut self, p: &Packet<'_>) {
        let frame = self.key.seal(Self::ID, &packet::encode(p).unwrap());
        self.socket.send_to(&frame, self.node).unwrap();
    }

    /// The next packet from the node within `within`, if any.
    fn recv(&self, within: Duration) -> Option<Packet<'static>> {
        let mut buf = vec![0u8; 65536];
        self.socket.set_read_timeout(Some(within)).unwrap();
        let n = self.socket.recv(&mut buf).ok()?;
        let (_, payload) = self.key.open(&buf[..n]).unwrap();
        let p = packet::decode(payload).unwrap();
        Some(match p {
            Packet::CookieReply { nonce, cookie } => Packet::CookieReply { nonce, cookie },
            Packet::SessionReply(r) | Packet::SessionReplyFollowing { reply: r, .. } => Packet::SessionReply(r),
            other => panic!("unexpected answer {other:?}"),
        })
    }

    /// Sends one request and returns its nonce (fetching a cookie first).
    fn request(&mut self, session: u64, seq: u64, op: ClientOp) -> u64 {
        if self.cookie.is_none() {
            self.send(&Packet::CookieRequest { nonce: 0, padding: Chunk(&[0; COOKIE_REQUEST_PADDING]) });
            match self.recv(Duration::from_secs(5)) {
                Some(Packet::CookieReply { cookie, .. }) => self.cookie = Some(cookie),
                other => panic!("no cookie: {other:?}"),
            }
        }
        self.nonce += 1;
        let (nonce, cookie) = (self.nonce, self.cookie.unwrap());
        self.send(&Packet::SessionRequest(SessionRequest { nonce, cookie, session, seq, op }));
        nonce
    }

    /// The answer to the request `nonce` within `within`.
    fn answer(&self, nonce: u64, within: Duration) -> Option<ClientResult> {
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            match self.recv(left) {
                Some(Packet::SessionReply(r)) if r.nonce == nonce => return Some(r.result),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }
}

/// A command that reaches a node while no leader is known waits there for
/// the election's end (up to the longest election timeout), and goes then,
/// instead of being turned away: a client told "no leader" only asks again
/// later, which after a kill -9 cost up to 20 ms more than the election.
#[test]
fn a_command_sent_during_an_election_waits_for_the_leader_then_is_applied() {
    let (c, proxy) = proxied_cluster();
    let leader = c.wait_leader(ELECTION);
    let node = (leader + 1) % 3;
    let mut client = RawClient::new(&c, node);
    let nonce = client.request(0, 0, ClientOp::Register { id: 7 });
    let session = match client.answer(nonce, ELECTION) {
        Some(ClientResult::Done(KvOutput::Registered { session })) => session,
        other => panic!("registration: {other:?}"),
    };

    // Cut off, the node soon knows no leader (it asks for pre-votes in vain).
    proxy.isolate(node);
    poll_until(ELECTION, Duration::from_millis(20), "the cut-off node to know no leader", || {
        let v = status_of(&c, node);
        if v["leader"].is_null() { Ok(()) } else { Err(v.to_string()) }
    });
    let nonce = client.request(session, 1, ClientOp::Kv(KvOp::put("k", "v")));
    let early = client.answer(nonce, ELECTION_MAX / 2);
    assert_eq!(early, None, "a node without a leader answered at once");
    proxy.heal();
    let done = client.answer(nonce, ELECTION);
    assert!(matches!(done, Some(ClientResult::Done(_))), "after the heal: {done:?}");
    assert_eq!(c.kv(&["get", "k"]), (0, json!({"op":"get","key":"k","ok":true,"value":"v"})));

    // No leader within the longest election timeout: then it says so.
    proxy.isolate(node);
    poll_until(ELECTION, Duration::from_millis(20), "the cut-off node to know no leader", || {
        let v = status_of(&c, node);
        if v["leader"].is_null() { Ok(()) } else { Err(v.to_string()) }
    });
    let nonce = client.request(session, 2, ClientOp::Kv(KvOp::put("k", "w")));
    assert_eq!(client.answer(nonce, ELECTION_MAX / 2), None, "a node without a leader answered at once");
    let late = client.answer(nonce, ELECTION);
    assert_eq!(late, Some(ClientResult::NotLeader { leader: None, addr: None }));
}
