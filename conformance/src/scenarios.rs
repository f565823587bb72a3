//! The scenarios. Each starts every member, checks its promise, and stops
//! every member gracefully (asserting that nothing is left running).

use super::inproc::TransportKind;
use super::{Client, ClusterUnderTest, Failure, agreed_leader, fresh_client_id, isolate, wait_for, wait_leader};
use raft_core::{Body, Message, NodeId, Role, Term};
use raft_host::ClusterKey;
use raft_host::kv::{KvCommand, KvOp, KvOutput};
use raft_host::secure::{Incarnation, Initiator, KeyFile, OsEntropy, RESPONSE_LEN, SecureConfig};
use raft_tests::linearizability::History;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for an election (several election timeouts, generous for a
/// loaded machine).
const ELECTION: Duration = Duration::from_secs(10);
/// Longest wait for replication to reach every member.
const CATCH_UP: Duration = Duration::from_secs(10);
/// Longest wait for a node's shutdown, and for the answers to the proposals
/// it had in flight.
const SHUTDOWN: Duration = Duration::from_secs(10);

fn start_all(c: &dyn ClusterUnderTest) {
    for id in c.ids() {
        c.start(id);
    }
}

fn stop_all(c: &dyn ClusterUnderTest) {
    for id in c.ids() {
        assert_eq!(c.shutdown(id), 0, "{}: node {id} left tasks running after shutdown", c.name());
    }
}

fn others(c: &dyn ClusterUnderTest, id: u64) -> Vec<u64> {
    c.ids().into_iter().filter(|&i| i != id).collect()
}

fn term_of(c: &dyn ClusterUnderTest, id: u64) -> u64 {
    c.status(id).map_or(0, |v| v.term)
}

/// Waits until every member in `ids` has applied `key = value` locally.
fn wait_all_have(c: &dyn ClusterUnderTest, ids: &[u64], pairs: &[(&str, &str)]) {
    let what = format!("{}: {ids:?} to apply {pairs:?}", c.name());
    wait_for(CATCH_UP, &what, || {
        ids.iter().all(|&id| pairs.iter().all(|(k, v)| c.local_get(id, k) == Some(Some((*v).to_owned())))).then_some(())
    });
}

/// Election: the members agree on one leader, which commits a write that
/// every member applies, and no term is ever seen with two leaders.
pub fn election(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    let observe = |leaders: &mut BTreeMap<u64, u64>| {
        for &id in &ids {
            if let Some(v) = c.status(id).filter(|v| v.role == Role::Leader) {
                let first = *leaders.entry(v.term).or_insert(v.id);
                assert_eq!(first, v.id, "{}: two leaders in term {}", c.name(), v.term);
            }
        }
    };
    let leader = wait_for(ELECTION, "an agreed leader", || {
        observe(&mut leaders);
        agreed_leader(c, &ids)
    });
    // Keep watching while the leader commits a write and every member
    // applies it (the leader has then reached each of them).
    let mut client = Client::new(leader);
    client.must(c, KvOp::put("elected", "1"));
    wait_for(CATCH_UP, &format!("{}: every member to apply the write", c.name()), || {
        observe(&mut leaders);
        ids.iter().all(|&id| c.local_get(id, "elected") == Some(Some("1".to_owned()))).then_some(())
    });
    observe(&mut leaders);
    for id in others(c, leader) {
        let v = c.status(id).expect("running");
        assert!(v.role != Role::Leader || v.term != term_of(c, leader), "{}: {v:?}", c.name());
    }
    stop_all(c);
}

/// Replication: acknowledged writes are readable through the log and
/// reach every member's state machine; commit indexes converge.
pub fn replication(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let leader = wait_leader(c, &ids, ELECTION);
    let mut client = Client::new(leader);
    let pairs: Vec<(String, String)> = (0..20).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
    for (k, v) in &pairs {
        assert_eq!(client.must(c, KvOp::put(k, v)), KvOutput::Put);
    }
    assert_eq!(client.must(c, KvOp::get("k19")), KvOutput::get(Some("v19")));
    assert_eq!(client.must(c, KvOp::cas("k0", Some("v0"), "w0")), KvOutput::cas(true, Some("w0")));
    assert_eq!(client.must(c, KvOp::cas("k0", Some("v0"), "x0")), KvOutput::cas(false, Some("w0")));
    assert_eq!(client.must(c, KvOp::delete("k1")), KvOutput::delete(true));
    let mut want: Vec<(&str, &str)> = pairs[2..].iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    want.push(("k0", "w0"));
    wait_all_have(c, &ids, &want);
    // The delete was acknowledged after the writes waited for above: give
    // every member time to apply it too.
    wait_for(CATCH_UP, "every member to apply the delete of k1", || {
        ids.iter().all(|&id| c.local_get(id, "k1") == Some(None)).then_some(())
    });
    wait_for(CATCH_UP, "commit indexes to converge", || {
        let commits: Vec<u64> = ids.iter().filter_map(|&id| c.status(id)).map(|v| v.commit_index).collect();
        (commits.len() == ids.len() && commits.iter().all(|&x| x == commits[0])).then_some(())
    });
    stop_all(c);
}

/// Leader kill and restart: the others elect a new leader in a higher term
/// and keep serving; the old leader comes back, catches up, and nothing
/// acknowledged is lost.
pub fn leader_kill_restart(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let old = wait_leader(c, &ids, ELECTION);
    let old_term = term_of(c, old);
    let mut client = Client::new(old);
    client.must(c, KvOp::put("a", "1"));
    c.kill(old);
    let rest = others(c, old);
    let new = wait_leader(c, &rest, ELECTION);
    assert_ne!(new, old);
    assert!(term_of(c, new) > old_term, "{}: the new leader's term must be higher", c.name());
    client.must(c, KvOp::put("b", "2"));
    c.start(old);
    wait_all_have(c, &ids, &[("a", "1"), ("b", "2")]);
    wait_leader(c, &ids, ELECTION);
    client.must(c, KvOp::put("c", "3"));
    wait_all_have(c, &ids, &[("a", "1"), ("b", "2"), ("c", "3")]);
    stop_all(c);
}

/// Follower kill and restart: the majority keeps committing (enough for
/// the leader to compact its log past what the follower has, with the
/// suite's snapshot policy); the follower comes back and catches up from its
/// own disk and the leader's snapshot.
pub fn follower_kill_restart(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let leader = wait_leader(c, &ids, ELECTION);
    let follower = others(c, leader)[0];
    let mut client = Client::new(leader);
    client.must(c, KvOp::put("x", "1"));
    wait_all_have(c, &ids, &[("x", "1")]);
    c.kill(follower);
    for i in 0..250 {
        client.must(c, KvOp::put(format!("y{i}"), "2"));
    }
    c.start(follower);
    wait_all_have(c, &[follower], &[("x", "1"), ("y0", "2"), ("y249", "2")]);
    client.must(c, KvOp::put("z", "3"));
    wait_all_have(c, &ids, &[("z", "3")]);
    stop_all(c);
}

/// Partition and heal: an isolated leader cannot commit; the majority
/// elects another and commits; after healing the old leader follows, its
/// uncommitted write is gone everywhere, and every member converges.
pub fn partition_heal(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let old = wait_leader(c, &ids, ELECTION);
    let old_term = term_of(c, old);
    let mut client = Client::new(old);
    client.must(c, KvOp::put("p", "0"));
    wait_all_have(c, &ids, &[("p", "0")]);

    isolate(c, old, true);
    let rest = others(c, old);
    let new = wait_leader(c, &rest, ELECTION);
    assert!(term_of(c, new) > old_term);
    client.must(c, KvOp::put("p", "1"));

    // The deposed leader does not know yet; a write through it must not
    // commit. The link comes back once the write is in its log.
    let before = c.status(old).expect("running").last_log_index;
    let stale = std::thread::scope(|s| {
        let stale =
            s.spawn(|| c.propose(old, &KvCommand { client: fresh_client_id(), seq: 1, op: KvOp::put("stale", "x") }));
        wait_for(CATCH_UP, &format!("{}: the isolated leader to append the write", c.name()), || {
            let v = c.status(old)?;
            (v.last_log_index > before || v.role != Role::Leader || stale.is_finished()).then_some(())
        });
        isolate(c, old, false);
        stale.join().expect("stale proposer")
    });
    assert!(
        matches!(stale, Err(Failure::NotLeader(_) | Failure::Unknown)),
        "{}: a write through an isolated leader answered {stale:?}",
        c.name()
    );
    wait_leader(c, &ids, ELECTION);
    wait_all_have(c, &ids, &[("p", "1")]);
    client.must(c, KvOp::put("q", "2"));
    wait_all_have(c, &ids, &[("p", "1"), ("q", "2")]);
    for &id in &ids {
        assert_eq!(c.local_get(id, "stale"), Some(None), "{}: node {id} applied an uncommitted write", c.name());
    }
    stop_all(c);
}

/// Leadership transfer through the handle: only the leader may transfer,
/// and only to another member; a transfer hands leadership to its target in
/// a higher term with nothing acknowledged lost; a transfer to a member cut
/// off from the leader shows in the status while it runs, ends timed out,
/// and leaves the leader leading and serving.
pub fn transfer_leadership(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let old = wait_leader(c, &ids, ELECTION);
    let old_term = term_of(c, old);
    let mut client = Client::new(old);
    client.must(c, KvOp::put("t", "0"));
    let target = others(c, old)[0];
    let name = c.name();

    let from_follower = c.transfer_leadership(target, old);
    assert_eq!(from_follower, Err(Failure::NotLeader(Some(old))), "{name}: a follower's transfer");
    let to_itself = c.transfer_leadership(old, old);
    assert!(matches!(to_itself, Err(Failure::Rejected(_))), "{name}: a transfer to the leader itself: {to_itself:?}");

    assert_eq!(c.transfer_leadership(old, target), Ok(()), "{name}: a transfer to {target}");
    let new = wait_leader(c, &ids, ELECTION);
    assert_eq!(new, target, "{name}: leadership went to {new}, not {target}");
    assert!(term_of(c, new) > old_term, "{name}: the new leader's term did not grow");
    assert_eq!(c.status(old).map(|v| v.role), Some(Role::Follower), "{name}: the old leader did not step down");
    client.must(c, KvOp::put("t", "1"));
    wait_all_have(c, &ids, &[("t", "1")]);

    // A target the leader cannot reach: the transfer runs, then times out.
    let term = term_of(c, new);
    let unreachable = others(c, new)[0];
    c.set_link(new, unreachable, false);
    c.set_link(unreachable, new, false);
    let (outcome, seen_in_status) = std::thread::scope(|s| {
        let transfer = s.spawn(|| c.transfer_leadership(new, unreachable));
        let seen = wait_for(ELECTION, "the transfer in the leader's status", || {
            let v = c.status(new)?;
            (v.transfer_target == Some(unreachable) || transfer.is_finished()).then_some(v.transfer_target)
        });
        (transfer.join().expect("transfer thread"), seen)
    });
    assert_eq!(seen_in_status, Some(unreachable), "{name}: the status never showed the transfer");
    assert_eq!(outcome, Err(Failure::Unknown), "{name}: a transfer to an unreachable member");
    // The answer can overtake the status update by a moment.
    let v = wait_for(ELECTION, "the aborted transfer to leave the status", || {
        c.status(new).filter(|v| v.transfer_target.is_none())
    });
    assert_eq!((v.role, v.term, v.transfer_target), (Role::Leader, term, None), "{name}: after the aborted transfer");
    client.must(c, KvOp::put("t", "2"));
    c.set_link(new, unreachable, true);
    c.set_link(unreachable, new, true);
    wait_all_have(c, &ids, &[("t", "2")]);
    assert_eq!(agreed_leader(c, &ids), Some(new), "{name}: the healed member changed the leader");
    stop_all(c);
}

/// A concurrent-client history, through a leader isolation and heal, is
/// linearizable (checked by [`History::check`]).
pub fn linearizable_history(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let first = wait_leader(c, &ids, ELECTION);
    let origin = Instant::now();
    let now = move || origin.elapsed().as_micros() as u64;
    let history = Mutex::new(History::new());
    let stop = AtomicBool::new(false);
    let keys = ["r0", "r1", "r2"];
    std::thread::scope(|s| {
        for n in 0..4u64 {
            let (history, stop) = (&history, &stop);
            s.spawn(move || {
                let mut rng = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut client = Client::new(first);
                let mut seen: BTreeMap<&str, Option<String>> = BTreeMap::new();
                let mut count = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = keys[(next() % 3) as usize];
                    count += 1;
                    let op = match next() % 3 {
                        0 => KvOp::put(key, format!("c{n}-{count}")),
                        1 => KvOp::get(key),
                        _ => KvOp::cas(key, seen.get(key).cloned().flatten().as_deref(), format!("c{n}-{count}")),
                    };
                    let id = history.lock().unwrap().call(client.id, op.clone(), now());
                    match client.execute(c, op, Duration::from_secs(3)) {
                        Some(out) => {
                            if let KvOutput::Get(v) | KvOutput::Cas { current: v, .. } = &out {
                                seen.insert(key, v.clone());
                            }
                            history.lock().unwrap().returned(id, out, now());
                        }
                        None => history.lock().unwrap().timed_out(id),
                    }
                }
            });
        }
        // Each phase lasts until enough operations have returned in it
        // (and, after the isolation, until the others agree on a leader,
        // and after the heal, until every member does).
        let returned = || history.lock().unwrap().operations().iter().filter(|o| o.return_time().is_some()).count();
        let phase = |what: &str, more: usize, among: &[u64]| {
            let from = returned();
            wait_for(CATCH_UP, &format!("{}: {what}", c.name()), || {
                (returned() >= from + more && agreed_leader(c, among).is_some()).then_some(())
            });
        };
        phase("20 operations before the isolation", 20, &ids);
        let leader = agreed_leader(c, &ids).unwrap_or(first);
        isolate(c, leader, true);
        phase("a new leader and 10 operations during the isolation", 10, &others(c, leader));
        isolate(c, leader, false);
        phase("every member on one leader and 20 operations after the heal", 20, &ids);
        stop.store(true, Ordering::SeqCst);
    });
    let history = history.into_inner().unwrap();
    let returned = history.operations().iter().filter(|o| o.return_time().is_some()).count();
    eprintln!("{}: {} operations, {returned} returned, the rest unknown", c.name(), history.len());
    assert!(returned >= 20, "{}: only {returned} operations completed", c.name());
    if let Err(e) = history.check() {
        panic!("{}: history of {} operations is not linearizable: {e}", c.name(), history.len());
    }
    stop_all(c);
}

/// Graceful shutdown: every member stops with no task left running, also
/// while proposals are in flight (they end promptly); the data survives a
/// full restart of the cluster.
pub fn graceful_shutdown(c: &dyn ClusterUnderTest) {
    start_all(c);
    let ids = c.ids();
    let leader = wait_leader(c, &ids, ELECTION);
    let mut client = Client::new(leader);
    for i in 0..5 {
        client.must(c, KvOp::put(format!("d{i}"), "1"));
    }
    wait_all_have(c, &ids, &[("d4", "1")]);

    // Shut the leader down under load: its proposers all get an answer.
    let busy = Arc::new(AtomicBool::new(true));
    let answered = AtomicU64::new(0);
    std::thread::scope(|s| {
        let proposers: Vec<_> = (0..4u64)
            .map(|n| {
                let (busy, answered) = (busy.clone(), &answered);
                s.spawn(move || {
                    let session = fresh_client_id();
                    let mut seq = 0;
                    while busy.load(Ordering::SeqCst) {
                        seq += 1;
                        let cmd = KvCommand { client: session, seq, op: KvOp::put("load", format!("{n}-{seq}")) };
                        if c.propose(leader, &cmd) == Err(Failure::Down) {
                            return;
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // Under load: proposals are flowing.
        wait_for(CATCH_UP, &format!("{}: 20 proposals answered", c.name()), || {
            (answered.load(Ordering::SeqCst) >= 20).then_some(())
        });
        // `shutdown` returns, and every proposal in flight gets its answer,
        // within a deadline (hang detectors: generous on a loaded machine).
        let shut = s.spawn(|| c.shutdown(leader));
        wait_for(SHUTDOWN, &format!("{}: the leader's shutdown to return", c.name()), || {
            shut.is_finished().then_some(())
        });
        assert_eq!(shut.join().expect("shutdown"), 0, "{}: the leader left tasks running", c.name());
        wait_for(SHUTDOWN, &format!("{}: every proposer answered after the shutdown", c.name()), || {
            proposers.iter().all(|p| p.is_finished()).then_some(())
        });
        for p in proposers {
            p.join().expect("proposer");
        }
        busy.store(false, Ordering::SeqCst);
    });
    for id in others(c, leader) {
        assert_eq!(c.shutdown(id), 0, "{}: node {id} left tasks running", c.name());
    }
    if c.runtime_tasks().is_some() {
        wait_for(Duration::from_secs(2), "the runtime to have no task left", || {
            (c.runtime_tasks() == Some(0)).then_some(())
        });
    }

    start_all(c);
    wait_leader(c, &ids, ELECTION);
    wait_all_have(c, &ids, &[("d0", "1"), ("d4", "1")]);
    assert_eq!(client.must(c, KvOp::get("d4")), KvOutput::get(Some("1")));
    stop_all(c);
    if c.runtime_tasks().is_some() {
        wait_for(Duration::from_secs(2), "the runtime to have no task left", || {
            (c.runtime_tasks() == Some(0)).then_some(())
        });
    }
}

/// A transport v2 packet with the length prefix a TCP connection carries.
fn prefixed(packet: &[u8]) -> Vec<u8> {
    let mut v = (packet.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(packet);
    v
}

/// A handshake initiation from `from` to `to` under `keys`. One claiming
/// to come from its receiver is made by another node, its header altered.
fn initiation(keys: &KeyFile, from: u64, to: u64) -> Vec<u8> {
    let maker = if from == to { to + 1 } else { from };
    let me = SecureConfig::new(keys, NodeId(maker));
    let mut packet = Vec::new();
    Initiator::start(&me, NodeId(to), raft_core::Instant::ZERO, &mut OsEntropy, &mut packet).expect("initiation");
    packet[1..9].copy_from_slice(&from.to_le_bytes());
    packet
}

/// Dials `addr` as member `from` (the test holds the key file), completes
/// the handshake with `to` and sends `msg`: returns the stream and every
/// byte sent on it, as an attacker on the path would capture them.
fn dial_as(keys: &KeyFile, from: u64, to: u64, addr: SocketAddr, msg: &Message) -> (TcpStream, Vec<u8>) {
    let me = SecureConfig::new(keys, NodeId(from));
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut init = Vec::new();
    let mut initiator =
        Initiator::start(&me, NodeId(to), raft_core::Instant::ZERO, &mut OsEntropy, &mut init).expect("initiation");
    let mut sent = prefixed(&init);
    s.write_all(&sent).expect("write");
    let mut response = [0u8; 4 + RESPONSE_LEN];
    s.read_exact(&mut response).expect("a response");
    let mut session = initiator.handle_response(&response[4..], raft_core::Instant::ZERO).expect("authentic response");
    let mut frames = Vec::new();
    let mut f = Vec::new();
    session.seal(&[], &mut f).expect("seal");
    frames.extend(prefixed(&f));
    let mut payload = vec![0u8];
    payload.extend(raft_core::codec::encode_message(msg));
    f.clear();
    session.seal(&payload, &mut f).expect("seal");
    frames.extend(prefixed(&f));
    s.write_all(&frames).expect("write");
    sent.extend(frames);
    (s, sent)
}

/// Whether the peer has closed `s` (without waiting).
fn is_closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 1];
    let closed = match s.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).expect("blocking");
    closed
}

/// Hostile or broken peers over TCP (transport v2). Each of these is
/// answered by closing the connection: a length above the limit (after its
/// 4-byte prefix alone), an initiation under another key, one of another
/// cluster incarnation with the same key, one claiming the node itself as
/// sender, one addressed to another node (redirected), and a captured
/// connection replayed byte for byte (on 128 connections: the node answers
/// with a fresh session, and the replayed frames fail under it). A flood of
/// connections that replay a captured initiation and then stall does not
/// lock a real peer out: the peer's new connection takes the slot of the
/// oldest unauthenticated one. A slowloris connection (one byte every
/// 200 ms) is closed at the handshake deadline. The cluster keeps working.
pub fn hostile_frames(c: &dyn ClusterUnderTest) {
    if c.transport() == TransportKind::Udp {
        return hostile_datagrams(c);
    }
    start_all(c);
    let ids = c.ids();
    let leader = wait_leader(c, &ids, ELECTION);
    let target = others(c, leader)[0];
    let other = others(c, target).into_iter().find(|&i| i != leader).unwrap_or(leader);
    let addr = c.direct_addr(target).expect("running");
    let keys = c.cluster_key();
    let stranger = KeyFile::new(ClusterKey::from_bytes([0xEE; 32]), keys.incarnation);
    let old_cluster = KeyFile::new(keys.key.clone(), Incarnation::from_bytes([0xEE; 16]));
    // Harmless: a stale-term vote answer (the node ignores it).
    let harmless = Message {
        term: Term(0),
        body: Body::RequestVoteResponse(raft_core::VoteResponse { granted: false, pre_vote: false }),
    };

    let closed = |mut s: TcpStream, what: &str| {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut b = [0u8; 128];
        loop {
            match s.read(&mut b) {
                Ok(0) => return,
                // The node's handshake response to a replayed initiation.
                Ok(_) => continue,
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut => {
                    return;
                }
                other => panic!("{}: {what}: connection not closed ({other:?})", c.name()),
            }
        }
    };
    let connect = || TcpStream::connect(addr).expect("connect");
    let send = |bytes: &[u8], what: &str| {
        let mut s = connect();
        s.write_all(bytes).expect("write");
        closed(s, what);
    };

    send(&u32::MAX.to_le_bytes(), "a length above the limit");
    send(&prefixed(&initiation(&stranger, leader, target)), "an initiation under another key");
    send(&prefixed(&initiation(&old_cluster, leader, target)), "an initiation of another incarnation");
    send(&prefixed(&initiation(&keys, target, target)), "an initiation claiming the node itself");
    send(&prefixed(&initiation(&keys, leader, other)), "an initiation addressed to another node");

    let (real, captured) = dial_as(&keys, other, target, addr, &harmless);
    assert!(!is_closed(&real), "{}: an authentic connection is served", c.name());
    drop(real);
    for _ in 0..128 {
        send(&captured, "a captured connection replayed");
    }

    // Stalled replays of the captured initiation, as fast as the node
    // takes them, while the leader has to reconnect to the target.
    let init_len = 4 + raft_host::secure::INITIATION_LEN;
    let flooding = Arc::new(AtomicBool::new(true));
    let made = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (flooding, made) = (flooding.clone(), made.clone());
        let first = captured[..init_len].to_vec();
        std::thread::spawn(move || {
            // Every connection is kept open (closing one would free its slot).
            let mut held = Vec::new();
            while flooding.load(Ordering::SeqCst) && held.len() < 4000 {
                if let Ok(mut s) = TcpStream::connect(addr) {
                    let _ = s.write_all(&first);
                    held.push(s);
                    made.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    wait_for(Duration::from_secs(10), "the flood fills every slot twice over", || {
        (made.load(Ordering::SeqCst) >= 128).then_some(())
    });
    // Every slot is held by a stalled replay now: a real peer still gets in.
    let (real, _) = dial_as(&keys, other, target, addr, &harmless);
    assert!(!is_closed(&real), "{}: a real peer is served during the flood", c.name());
    drop(real);
    c.set_link(leader, target, false);
    std::thread::sleep(Duration::from_millis(200));
    c.set_link(leader, target, true);
    let mut client = Client::new(leader);
    client.must(c, KvOp::put("during", "flood"));
    wait_all_have(c, &ids, &[("during", "flood")]);
    flooding.store(false, Ordering::SeqCst);
    flood.join().expect("flood");

    // Slowloris: the initiation, one byte every 200 ms.
    let mut slow = connect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut dropped = false;
    for &b in captured.iter().take(75) {
        if slow.write_all(&[b]).is_err() || is_closed(&slow) {
            dropped = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dropped, "{}: a slowloris connection is closed at the handshake deadline", c.name());

    client.must(c, KvOp::put("after", "hostile"));
    wait_all_have(c, &ids, &[("after", "hostile")]);
    stop_all(c);
}

/// Hostile datagrams (the UDP transport's [`hostile_frames`]): garbage,
/// peer traffic in the old (version 1) frame format under the real key, an
/// initiation under another key, one claiming the node itself, and a
/// client-format payload that decodes as nothing are each dropped and
/// counted. Then an attacker's capture of real peer datagrams (data
/// frames the leader sent the target) is replayed to the target and
/// redirected to the third member: every one is dropped and counted, and
/// the cluster keeps working.
fn hostile_datagrams(c: &dyn ClusterUnderTest) {
    use raft_net::udp::fragment::Fragmenter;
    use raft_net::udp::packet::{self, Chunk, Fragment, PeerPacket};
    start_all(c);
    let ids = c.ids();
    let leader = wait_leader(c, &ids, ELECTION);
    let target = others(c, leader)[0];
    let other = others(c, target).into_iter().find(|&i| i != leader).unwrap_or(leader);
    let addr = c.direct_addr(target).expect("running");
    let keys = c.cluster_key();
    let stranger = KeyFile::new(ClusterKey::from_bytes([0xEE; 32]), keys.incarnation);
    let harmless = Message {
        term: Term(0),
        body: Body::RequestVoteResponse(raft_core::VoteResponse { granted: false, pre_vote: false }),
    };
    let bytes = raft_core::codec::encode_message(&harmless);
    let old_format = Fragmenter::new(1400, 77).split(&bytes).remove(0);
    let bad_index =
        packet::encode(&PeerPacket::Peer(Fragment { msg: 1, index: 5, count: 2, data: Chunk(&[1]) })).expect("encode");
    let datagrams: Vec<Vec<u8>> = vec![
        vec![0xAB; 100],
        keys.key.seal(leader, &old_format),
        initiation(&stranger, leader, target),
        initiation(&keys, target, target),
        keys.key.seal(leader, &bad_index),
    ];
    let dropped = |id: u64| c.status(id).and_then(|v| v.datagrams_dropped).expect("UDP counters");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let send_all = |to: u64, datagrams: &[Vec<u8>], what: &str| {
        let before = dropped(to);
        let at = c.direct_addr(to).expect("running");
        for d in datagrams {
            socket.send_to(d, at).expect("send");
        }
        wait_for(Duration::from_secs(5), &format!("{}: {what} dropped and counted", c.name()), || {
            let now = c.status(to)?.datagrams_dropped?;
            (now >= before + datagrams.len() as u64).then_some(())
        });
    };
    assert_eq!(c.direct_addr(target), Some(addr));
    send_all(target, &datagrams, "hostile datagrams");

    c.start_capture();
    let mut client = Client::new(leader);
    client.must(c, KvOp::put("captured", "traffic"));
    std::thread::sleep(Duration::from_millis(500));
    let captured: Vec<Vec<u8>> = c
        .take_capture()
        .into_iter()
        .filter(|(link, d)| *link == (leader, target) && d.first() == Some(&0x23))
        .map(|(_, d)| d)
        .collect();
    assert!(!captured.is_empty(), "{}: the leader sent the target data frames", c.name());
    send_all(target, &captured, "replayed data frames");
    send_all(other, &captured, "data frames redirected to another node");

    client.must(c, KvOp::put("after", "hostile"));
    wait_all_have(c, &ids, &[("after", "hostile")]);
    stop_all(c);
}
