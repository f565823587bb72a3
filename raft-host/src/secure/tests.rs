//! Behaviour of transport v2 as a whole: handshakes, sessions, links.

use super::*;
use raft_core::{Duration, Instant, NodeId};

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const C: NodeId = NodeId(3);
const T0: Instant = Instant::ZERO;

fn keys(seed: u64) -> KeyFile {
    KeyFile::generate(&mut SeededEntropy::new(seed)).unwrap()
}

fn config(keys: &KeyFile, me: NodeId) -> SecureConfig {
    SecureConfig::new(keys, me)
}

/// A completed handshake: (initiator's session, responder's session).
fn handshake(init: &SecureConfig, resp: &SecureConfig, rng: &mut SeededEntropy) -> (Session, Session) {
    let mut initiation = Vec::new();
    let mut initiator = Initiator::start(init, resp.me, T0, rng, &mut initiation).unwrap();
    let mut response = Vec::new();
    let at_resp = Responder::respond(resp, &initiation, T0, rng, &mut response).unwrap();
    let at_init = initiator.handle_response(&response, T0).unwrap();
    (at_init, at_resp)
}

fn sealed(s: &mut Session, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    s.seal(payload, &mut out).unwrap();
    out
}

#[test]
fn round_trip_both_ways_and_sizes() {
    let k = keys(1);
    let mut rng = SeededEntropy::new(10);
    let (mut a, mut b) = handshake(&config(&k, A), &config(&k, B), &mut rng);
    assert_eq!(a.id(), b.id());
    assert!(a.is_initiator() && !b.is_initiator());
    for n in [0usize, 1, 100, MAX_PAYLOAD] {
        let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let frame = sealed(&mut a, &payload);
        assert_eq!(frame.len(), n + DATA_OVERHEAD);
        assert_eq!(b.open(&frame).unwrap(), payload);
        let frame = sealed(&mut b, &payload);
        assert_eq!(a.open(&frame).unwrap(), payload);
    }
    let mut out = b"kept".to_vec();
    assert_eq!(a.seal(&vec![0; MAX_PAYLOAD + 1], &mut out), Err(SealError::TooLarge { len: MAX_PAYLOAD + 1 }));
    assert_eq!(out, b"kept", "a refused seal leaves the buffer alone");
    a.seal(b"x", &mut out).unwrap();
    assert_eq!(b.open(&out[4..]).unwrap(), b"x", "seal appends");
    assert_eq!((a.sealed(), b.opened()), (5, 5));
}

#[test]
fn handshakes_are_deterministic_under_a_seed_and_fresh_otherwise() {
    let k = keys(1);
    let run = |seed| {
        let mut init = Vec::new();
        Initiator::start(&config(&k, A), B, T0, &mut SeededEntropy::new(seed), &mut init).unwrap();
        init
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn response_is_never_larger_than_the_initiation() {
    let k = keys(1);
    let mut initiation = Vec::new();
    let mut rng = SeededEntropy::new(3);
    Initiator::start(&config(&k, A), B, T0, &mut rng, &mut initiation).unwrap();
    let mut response = Vec::new();
    Responder::respond(&config(&k, B), &initiation, T0, &mut rng, &mut response).unwrap();
    assert_eq!((initiation.len(), response.len()), (INITIATION_LEN, RESPONSE_LEN));
    assert!(response.len() <= initiation.len());
    // A shortened initiation gets no answer at all.
    let mut none = Vec::new();
    let cut = Responder::respond(&config(&k, B), &initiation[..INITIATION_LEN - 1], T0, &mut rng, &mut none);
    assert!(matches!(cut, Err(HandshakeError::Header(_))));
    assert!(none.is_empty());
}

#[test]
fn every_frame_replayed_is_refused() {
    let k = keys(2);
    let (mut a, mut b) = handshake(&config(&k, A), &config(&k, B), &mut SeededEntropy::new(1));
    let frames: Vec<Vec<u8>> = (0..50u8).map(|i| sealed(&mut a, &[i])).collect();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(b.open(f).unwrap(), [i as u8]);
        assert_eq!(b.open(f), Err(OpenError::Replayed));
    }
    for f in &frames {
        assert_eq!(b.open(f), Err(OpenError::Replayed));
    }
}

#[test]
fn reordering_within_the_window_is_accepted_once_and_older_is_refused() {
    let k = keys(3);
    let (mut a, mut b) = handshake(&config(&k, A), &config(&k, B), &mut SeededEntropy::new(1));
    let total = REPLAY_WINDOW as usize + 10;
    let frames: Vec<Vec<u8>> = (0..total).map(|i| sealed(&mut a, &(i as u32).to_le_bytes())).collect();
    // Deliver 1..total, holding back frame 0 and frames 10..20 to the end.
    for (i, f) in frames.iter().enumerate().skip(1).filter(|(i, _)| !(10..20).contains(i)) {
        assert_eq!(b.open(f).unwrap(), (i as u32).to_le_bytes());
    }
    // The newest is total-1: counters above total-1-REPLAY_WINDOW are in.
    for (i, f) in frames.iter().enumerate().take(20).skip(10) {
        assert_eq!(b.open(f).unwrap(), (i as u32).to_le_bytes(), "late frame {i}");
        assert_eq!(b.open(f), Err(OpenError::Replayed));
    }
    assert_eq!(b.open(&frames[0]), Err(OpenError::TooOld));
}

#[test]
fn a_frame_opens_only_between_its_two_nodes_in_its_direction() {
    let k = keys(4);
    let (ca, cb, cc) = (config(&k, A), config(&k, B), config(&k, C));
    let mut rng = SeededEntropy::new(1);
    let (mut a_to_b, mut b_from_a) = handshake(&ca, &cb, &mut rng);
    let (_a_to_c, mut c_from_a) = handshake(&ca, &cc, &mut rng);
    let (_b_to_c, mut c_from_b) = handshake(&cb, &cc, &mut rng);
    let frame = sealed(&mut a_to_b, b"vote granted");

    // Copied to C as it is: the header names B.
    assert_eq!(c_from_a.open(&frame), Err(OpenError::Misdirected { sender: A, receiver: B }));
    // Rewritten for C, with the session id C shares with A (or with B).
    for at_c in [&mut c_from_a, &mut c_from_b] {
        let mut forged = frame.clone();
        forged[1..9].copy_from_slice(&at_c.peer().0.to_le_bytes());
        forged[9..17].copy_from_slice(&C.0.to_le_bytes());
        forged[17..25].copy_from_slice(&at_c.id().to_le_bytes());
        assert_eq!(at_c.open(&forged), Err(OpenError::BadTag));
    }
    // Reflected back to A, as it is and rewritten to look like B->A.
    assert_eq!(a_to_b.open(&frame), Err(OpenError::Misdirected { sender: A, receiver: B }));
    let mut reflected = frame.clone();
    reflected[1..9].copy_from_slice(&B.0.to_le_bytes());
    reflected[9..17].copy_from_slice(&A.0.to_le_bytes());
    assert_eq!(a_to_b.open(&reflected), Err(OpenError::BadTag));
    // Still opens where it belongs.
    assert_eq!(b_from_a.open(&frame).unwrap(), b"vote granted");
}

#[test]
fn any_changed_bit_is_refused() {
    let k = keys(5);
    let (mut a, mut b) = handshake(&config(&k, A), &config(&k, B), &mut SeededEntropy::new(1));
    let frame = sealed(&mut a, b"hello");
    for i in 0..frame.len() {
        for bit in 0..8 {
            let mut f = frame.clone();
            f[i] ^= 1 << bit;
            assert!(b.open(&f).is_err(), "flip of bit {bit} at {i} accepted");
        }
    }
    for cut in 0..frame.len() {
        assert!(b.open(&frame[..cut]).is_err());
    }
    assert_eq!(b.open(&frame).unwrap(), b"hello", "refusals changed nothing");
}

#[test]
fn frames_of_an_earlier_session_fail_after_a_restart() {
    let k = keys(6);
    let (ca, cb) = (config(&k, A), config(&k, B));
    let mut rng = SeededEntropy::new(1);
    let (mut old_a, _old_b) = handshake(&ca, &cb, &mut rng);
    let old = sealed(&mut old_a, b"from the old session");
    // B restarts (or A does): a new handshake with the same ids and key.
    for (init, resp) in [(&ca, &cb), (&cb, &ca)] {
        let (mut x, mut y) = handshake(init, resp, &mut rng);
        let (at_b, _) = if init.me == B { (&mut x, &mut y) } else { (&mut y, &mut x) };
        assert_eq!(at_b.open(&old), Err(OpenError::UnknownSession));
        let mut forged = old.clone();
        forged[17..25].copy_from_slice(&at_b.id().to_le_bytes());
        assert_eq!(at_b.open(&forged), Err(OpenError::BadTag));
    }
}

#[test]
fn wrong_key_incarnation_or_pair_fails_the_handshake() {
    let k = keys(7);
    let other_key = KeyFile { key: keys(8).key, incarnation: k.incarnation };
    let other_incarnation = KeyFile { key: k.key.clone(), incarnation: keys(9).incarnation };
    let mut rng = SeededEntropy::new(1);
    let mut initiation = Vec::new();
    let mut initiator = Initiator::start(&config(&k, A), B, T0, &mut rng, &mut initiation).unwrap();
    for wrong in [&other_key, &other_incarnation] {
        let mut out = Vec::new();
        let r = Responder::respond(&config(wrong, B), &initiation, T0, &mut rng, &mut out);
        assert_eq!(r.unwrap_err(), HandshakeError::Rejected);
        assert!(out.is_empty());
    }
    // Redirected to C, with the receiver rewritten: the prologue names B.
    let mut redirected = initiation.clone();
    redirected[9..17].copy_from_slice(&C.0.to_le_bytes());
    let r = Responder::respond(&config(&k, C), &redirected, T0, &mut rng, &mut Vec::new());
    assert_eq!(r.unwrap_err(), HandshakeError::Rejected);
    assert_eq!(
        Responder::respond(&config(&k, C), &initiation, T0, &mut rng, &mut Vec::new()).unwrap_err(),
        HandshakeError::Misdirected { sender: A, receiver: B }
    );
    // A response from a responder with the wrong key or incarnation fails
    // at the initiator, and a response made for another initiation too.
    for wrong in [&other_key, &other_incarnation] {
        let mut other_init = Vec::new();
        Initiator::start(&config(wrong, A), B, T0, &mut rng, &mut other_init).unwrap();
        let mut response = Vec::new();
        Responder::respond(&config(wrong, B), &other_init, T0, &mut rng, &mut response).unwrap();
        assert_eq!(initiator.handle_response(&response, T0).unwrap_err(), HandshakeError::Rejected);
    }
    let mut response = Vec::new();
    Responder::respond(&config(&k, B), &initiation, T0, &mut rng, &mut response).unwrap();
    assert!(initiator.handle_response(&response, T0).is_ok(), "the failures spoiled nothing");
    assert_eq!(initiator.handle_response(&response, T0).unwrap_err(), HandshakeError::Finished);
}

#[test]
fn a_replayed_initiation_does_not_replace_an_established_session() {
    let k = keys(11);
    let (ca, cb) = (config(&k, A), config(&k, B));
    let mut rng = SeededEntropy::new(1);
    let (mut la, mut lb) = (Link::new(&ca, B), Link::new(&cb, A));
    let mut initiation = Vec::new();
    assert!(la.wants_handshake(T0));
    la.initiate(T0, &mut rng, &mut initiation).unwrap();
    assert!(!la.wants_handshake(T0));
    let mut response = Vec::new();
    assert_eq!(lb.handle_handshake(&initiation, T0, &mut rng, &mut response), Ok(Handled::Responded));
    assert_eq!(lb.seal(b"too early", T0, &mut Vec::new()), Err(SealError::NoSession), "B waits for confirmation");
    assert_eq!(la.handle_handshake(&response, T0, &mut rng, &mut Vec::new()), Ok(Handled::Established));
    let mut frame = Vec::new();
    la.seal(b"confirm", T0, &mut frame).unwrap();
    assert_eq!(lb.open(&frame, T0).unwrap(), b"confirm");
    let established = lb.current().unwrap().id();

    // The attacker replays the initiation (many times).
    for _ in 0..2 * MAX_UNCONFIRMED {
        let mut answer = Vec::new();
        assert_eq!(lb.handle_handshake(&initiation, T0, &mut rng, &mut answer), Ok(Handled::Responded));
        // ...and even hands the answer to A, which has no handshake pending.
        assert_eq!(la.handle_handshake(&answer, T0, &mut rng, &mut Vec::new()), Err(HandshakeError::Finished));
    }
    assert_eq!(lb.current().unwrap().id(), established);
    let mut frame = Vec::new();
    la.seal(b"still here", T0, &mut frame).unwrap();
    assert_eq!(lb.open(&frame, T0).unwrap(), b"still here");
    let mut frame = Vec::new();
    lb.seal(b"and back", T0, &mut frame).unwrap();
    assert_eq!(la.open(&frame, T0).unwrap(), b"and back");
    assert_eq!(lb.current().unwrap().id(), established);
}

/// Runs a link handshake from `x` to `y`, confirming it with one frame.
fn link_handshake(x: &mut Link, y: &mut Link, now: Instant, rng: &mut SeededEntropy) {
    let (mut init, mut resp, mut frame) = (Vec::new(), Vec::new(), Vec::new());
    x.initiate(now, rng, &mut init).unwrap();
    assert_eq!(y.handle_handshake(&init, now, rng, &mut resp), Ok(Handled::Responded));
    assert_eq!(x.handle_handshake(&resp, now, rng, &mut Vec::new()), Ok(Handled::Established));
    x.seal(b"", now, &mut frame).unwrap();
    assert_eq!(y.open(&frame, now).unwrap(), b"");
}

#[test]
fn rekeying_keeps_frames_in_flight_and_limits_expire_sessions() {
    let k = keys(12);
    let mut ca = config(&k, A);
    ca.limits = SessionLimits {
        rekey_after_messages: 3,
        reject_after_messages: 5,
        rekey_after: Duration::from_secs(10),
        reject_after: Duration::from_secs(15),
    };
    let mut cb = config(&k, B);
    cb.limits = ca.limits;
    let mut rng = SeededEntropy::new(1);
    let (mut la, mut lb) = (Link::new(&ca, B), Link::new(&cb, A));
    link_handshake(&mut la, &mut lb, T0, &mut rng);
    assert!(!la.wants_handshake(T0));
    let mut in_flight = Vec::new();
    la.seal(b"1", T0, &mut in_flight).unwrap();
    la.seal(b"2", T0, &mut Vec::new()).unwrap();
    assert!(la.wants_handshake(T0), "rekey after 3 sealed frames");
    la.seal(b"3", T0, &mut Vec::new()).unwrap();
    la.seal(b"4", T0, &mut Vec::new()).unwrap();
    assert_eq!(la.seal(b"5", T0, &mut Vec::new()), Err(SealError::Expired));

    // A new handshake from B's side this time; A's frame sealed under the
    // old session still opens at B.
    let first = lb.current().unwrap().id();
    link_handshake(&mut lb, &mut la, T0, &mut rng);
    assert_ne!(lb.current().unwrap().id(), first);
    assert_eq!(lb.open(&in_flight, T0).unwrap(), b"1");
    let mut frame = Vec::new();
    la.seal(b"new keys", T0, &mut frame).unwrap();
    assert_eq!(lb.open(&frame, T0).unwrap(), b"new keys");

    // Age: rekey at 10 s, nothing sealed or opened from 15 s.
    let t10 = T0 + Duration::from_secs(10);
    let t15 = T0 + Duration::from_secs(15);
    assert!(la.wants_handshake(t10));
    let mut late = Vec::new();
    la.seal(b"late", t10, &mut late).unwrap();
    assert_eq!(la.seal(b"too late", t15, &mut Vec::new()), Err(SealError::Expired));
    assert_eq!(lb.open(&late, t15), Err(OpenError::Expired));
    assert_eq!(lb.open(&late, t10).unwrap(), b"late");
}

#[test]
fn simultaneous_handshakes_converge() {
    let k = keys(13);
    let mut rng = SeededEntropy::new(1);
    let (mut la, mut lb) = (Link::new(&config(&k, A), B), Link::new(&config(&k, B), A));
    let (mut ia, mut ib) = (Vec::new(), Vec::new());
    la.initiate(T0, &mut rng, &mut ia).unwrap();
    lb.initiate(T0, &mut rng, &mut ib).unwrap();
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    assert_eq!(la.handle_handshake(&ib, T0, &mut rng, &mut ra), Ok(Handled::Responded));
    assert_eq!(lb.handle_handshake(&ia, T0, &mut rng, &mut rb), Ok(Handled::Responded));
    assert_eq!(la.handle_handshake(&rb, T0, &mut rng, &mut Vec::new()), Ok(Handled::Established));
    assert_eq!(lb.handle_handshake(&ra, T0, &mut rng, &mut Vec::new()), Ok(Handled::Established));
    for round in 0..4 {
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        la.seal(&[round], T0, &mut fa).unwrap();
        lb.seal(&[round], T0, &mut fb).unwrap();
        assert_eq!(lb.open(&fa, T0).unwrap(), [round]);
        assert_eq!(la.open(&fb, T0).unwrap(), [round]);
    }
}

#[test]
fn a_link_refuses_other_peers_and_kinds() {
    let k = keys(14);
    let mut rng = SeededEntropy::new(1);
    let mut la = Link::new(&config(&k, A), B);
    let mut from_c = Vec::new();
    Initiator::start(&config(&k, C), A, T0, &mut rng, &mut from_c).unwrap();
    assert_eq!(
        la.handle_handshake(&from_c, T0, &mut rng, &mut Vec::new()),
        Err(HandshakeError::Misdirected { sender: C, receiver: A })
    );
    let mut own = Vec::new();
    la.initiate(T0, &mut rng, &mut own).unwrap();
    assert!(matches!(
        la.handle_handshake(&own, T0, &mut rng, &mut Vec::new()),
        Err(HandshakeError::Misdirected { .. })
    ));
    assert_eq!(la.open(&own, T0), Err(OpenError::Malformed));
    assert_eq!(Initiator::start(&config(&k, A), A, T0, &mut rng, &mut Vec::new()).unwrap_err(), HandshakeError::OwnId);
}

#[test]
fn peek_routes_by_kind_and_bounds_lengths() {
    assert_eq!(peek(&[]), Err(HeaderError::BadLength { len: 0 }));
    assert_eq!(peek(&[1; 60]), Err(HeaderError::UnknownKind(1)), "a version 1 frame");
    let mut data = vec![0x23];
    data.extend_from_slice(&A.0.to_le_bytes());
    data.extend_from_slice(&B.0.to_le_bytes());
    data.resize(DATA_OVERHEAD, 0);
    assert_eq!(peek(&data), Ok(FrameHeader { kind: FrameKind::Data, sender: A, receiver: B }));
    assert!(peek(&data[..DATA_OVERHEAD - 1]).is_err());
    data.resize(MAX_DATA_FRAME + 1, 0);
    assert!(peek(&data).is_err());
}

/// Every entry point, fed arbitrary bytes (and arbitrary bytes behind a
/// valid-looking header), refuses without panicking; and the link still
/// works afterwards.
fn arbitrary_packets_are_refused(seed: u64, packets: Vec<(u8, Vec<u8>)>) -> bool {
    let k = keys(15);
    let mut rng = SeededEntropy::new(seed);
    let (ca, cb) = (config(&k, A), config(&k, B));
    let (mut la, mut lb) = (Link::new(&ca, B), Link::new(&cb, A));
    link_handshake(&mut la, &mut lb, T0, &mut rng);
    let mut pending = Initiator::start(&ca, B, T0, &mut rng, &mut Vec::new()).unwrap();
    let session_id = lb.current().map(Session::id).unwrap_or(0);
    for (shape, body) in packets {
        let mut p = Vec::new();
        if shape % 2 == 1 {
            p.push([0x21, 0x22, 0x23][usize::from(shape / 2) % 3]);
            p.extend_from_slice(&A.0.to_le_bytes());
            p.extend_from_slice(&B.0.to_le_bytes());
            if shape % 4 == 3 {
                p.extend_from_slice(&session_id.to_le_bytes());
            }
        }
        p.extend_from_slice(&body);
        if lb.open(&p, T0).is_ok()
            || lb.handle_handshake(&p, T0, &mut rng, &mut Vec::new()) == Ok(Handled::Established)
            || pending.handle_response(&p, T0).is_ok()
        {
            return false;
        }
        let _ = peek(&p);
        let _ = Responder::respond(&cb, &p, T0, &mut rng, &mut Vec::new());
    }
    let mut frame = Vec::new();
    la.seal(b"after", T0, &mut frame).unwrap();
    lb.open(&frame, T0).as_deref() == Ok(&b"after"[..])
}

quickcheck::quickcheck! {
    fn arbitrary_bytes_never_panic_nor_open(seed: u64, packets: Vec<(u8, Vec<u8>)>) -> bool {
        arbitrary_packets_are_refused(seed, packets)
    }

    fn replays_in_any_order_open_each_frame_once(seed: u64, order: Vec<u16>) -> bool {
        let k = keys(16);
        let (mut a, mut b) = handshake(&config(&k, A), &config(&k, B), &mut SeededEntropy::new(seed));
        let frames: Vec<Vec<u8>> = (0..64u16).map(|i| sealed(&mut a, &i.to_le_bytes())).collect();
        let mut opened = std::collections::BTreeSet::new();
        for i in order {
            let i = usize::from(i) % frames.len();
            match b.open(&frames[i]) {
                Ok(p) => {
                    if p != (i as u16).to_le_bytes() || !opened.insert(i) {
                        return false;
                    }
                }
                Err(OpenError::Replayed) if opened.contains(&i) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

#[test]
fn a_response_to_an_earlier_initiation_is_refused() {
    let k = keys(17);
    let mut rng = SeededEntropy::new(1);
    let (mut la, mut lb) = (Link::new(&config(&k, A), B), Link::new(&config(&k, B), A));
    let (mut first, mut second) = (Vec::new(), Vec::new());
    la.initiate(T0, &mut rng, &mut first).unwrap();
    la.initiate(T0, &mut rng, &mut second).unwrap(); // a resend replaces the first
    let (mut r1, mut r2) = (Vec::new(), Vec::new());
    lb.handle_handshake(&first, T0, &mut rng, &mut r1).unwrap();
    lb.handle_handshake(&second, T0, &mut rng, &mut r2).unwrap();
    assert_eq!(la.handle_handshake(&r1, T0, &mut rng, &mut Vec::new()), Err(HandshakeError::Rejected));
    assert!(la.current().is_none());
    assert_eq!(la.handle_handshake(&r2, T0, &mut rng, &mut Vec::new()), Ok(Handled::Established));
    let mut frame = Vec::new();
    la.seal(b"second", T0, &mut frame).unwrap();
    assert_eq!(lb.open(&frame, T0).unwrap(), b"second");
    assert_eq!(lb.current().map(Session::id), la.current().map(Session::id));
}
