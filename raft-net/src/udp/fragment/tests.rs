use super::*;

/// Decodes packets back into fragments (owned, for the tests).
fn open_all(frames: &[Vec<u8>]) -> Vec<(u64, u32, u32, Vec<u8>)> {
    frames
        .iter()
        .map(|payload| match packet::decode(payload).unwrap() {
            PeerPacket::Peer(fr) => (fr.msg, fr.index, fr.count, fr.data.0.to_vec()),
        })
        .collect()
}

fn feed(r: &mut Reassembler, frags: &[(u64, u32, u32, Vec<u8>)], now: Instant, c: &mut Counters) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (msg, index, count, data) in frags {
        let f = Fragment { msg: *msg, index: *index, count: *count, data: Chunk(data) };
        if let Some(m) = r.accept(7, f, now, c) {
            out.push(m.into_owned());
        }
    }
    out
}

#[test]
fn every_datagram_fits_and_messages_come_back_in_any_order() {
    for max in [MIN_DATAGRAM, 300, 1400, 9000, MAX_DATAGRAM] {
        for len in [1usize, 100, chunk_len(max), chunk_len(max) + 1, 5 * chunk_len(max) - 3, 200_000] {
            let message: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut f = Fragmenter::new(max, u64::MAX - 1);
            let frames = f.split(&message);
            assert_eq!(frames.len(), len.div_ceil(chunk_len(max)));
            assert!(frames.iter().all(|d| d.len() + DATA_OVERHEAD <= max), "max {max} len {len}");
            let mut frags = open_all(&frames);
            frags.reverse();
            if frags.len() > 1 {
                // Duplicates of a fragmented message are ignored (a whole
                // single-datagram message is delivered again, like any duplicate).
                let dup = frags[0].clone();
                frags.push(dup);
            }
            let mut c = Counters::default();
            let mut r = Reassembler::new(Limits::for_messages(1 << 20));
            assert_eq!(feed(&mut r, &frags, Instant::now(), &mut c), vec![message]);
            assert_eq!(c, Counters::default());
            assert_eq!(r.buffered_bytes(), 0);
        }
    }
}

#[test]
fn a_lost_fragment_costs_one_message_and_times_out() {
    let mut f = Fragmenter::new(MIN_DATAGRAM, 1);
    let a = open_all(&f.split(&[1; 1000]));
    let b = open_all(&f.split(&[2; 1000]));
    let mut c = Counters::default();
    let mut r = Reassembler::new(Limits::for_messages(1 << 20));
    let t0 = Instant::now();
    assert!(feed(&mut r, &a[1..], t0, &mut c).is_empty());
    assert_eq!(feed(&mut r, &b, t0, &mut c), vec![vec![2; 1000]]);
    assert!(r.buffered_bytes() > 0);
    r.expire(t0 + Duration::from_secs(1), &mut c);
    assert_eq!(c.incomplete, 0);
    r.expire(t0 + Duration::from_secs(3), &mut c);
    assert_eq!(c.incomplete, 1);
    assert_eq!(r.buffered_bytes(), 0);
    // The late first fragment starts a new partial message that never completes.
    assert!(feed(&mut r, &a[..1], t0, &mut c).is_empty());
}

#[test]
fn limits_hold_against_a_hostile_peer() {
    let limits = Limits {
        max_message_bytes: 1000,
        max_partial_messages: 2,
        max_buffered_bytes: 1500,
        timeout: Duration::from_secs(2),
    };
    let mut r = Reassembler::new(limits);
    let mut c = Counters::default();
    let now = Instant::now();
    let data = vec![0u8; 400];
    // Bad shapes.
    assert!(feed(&mut r, &[(1, 0, 0, data.clone()), (1, 5, 5, data.clone())], now, &mut c).is_empty());
    assert_eq!(c.malformed, 2);
    // A count that cannot fit the message limit, and a message that grows past it.
    assert!(feed(&mut r, &[(2, 0, u32::MAX, vec![])], now, &mut c).is_empty());
    assert!(
        feed(&mut r, &[(3, 0, 4, data.clone()), (3, 1, 4, data.clone()), (3, 2, 4, data.clone())], now, &mut c)
            .is_empty()
    );
    assert_eq!(c.oversize, 2);
    // Count changing mid-message.
    assert!(feed(&mut r, &[(4, 0, 3, data.clone()), (4, 1, 2, data.clone())], now, &mut c).is_empty());
    assert_eq!(c.malformed, 3);
    // Many messages: only two partial ones are kept, and at most 1500 bytes.
    for msg in 10..20 {
        feed(&mut r, &[(msg, 0, 3, data.clone())], now, &mut c);
        assert!(r.buffered_bytes() <= 1500);
    }
    assert_eq!(r.buffered_bytes(), 800);
    assert_eq!(c.incomplete, 8);
}
