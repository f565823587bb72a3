use super::*;
use crate::state_machine::StateMachine;
use raft_core::codec::DecodeError;
use raft_core::{Bytes, Entry, LogIndex, Payload, Term};

fn s(v: &str) -> String {
    v.to_owned()
}

fn put(k: &str, v: &str) -> KvOp {
    KvOp::Put { key: s(k), value: s(v) }
}

fn get(k: &str) -> KvOp {
    KvOp::Get { key: s(k) }
}

fn del(k: &str) -> KvOp {
    KvOp::Delete { key: s(k) }
}

fn cas(k: &str, expected: Option<&str>, new: &str) -> KvOp {
    KvOp::Cas { key: s(k), expected: expected.map(s), new: s(new) }
}

fn entry(index: u64, cmd: &KvCommand) -> Entry {
    Entry { term: Term(1), index: LogIndex(index), payload: Payload::Command(Bytes::from(encode_command(cmd))) }
}

/// Applies `ops` as client 1, seq 1.., at indexes 1.., through the entry path.
fn run(store: &mut KvStore, ops: &[KvOp]) -> Vec<Result<KvOutput, KvError>> {
    let start = store.last_applied().0;
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let n = start + i as u64 + 1;
            let cmd = KvCommand { client: 1, seq: n, op: op.clone() };
            StateMachine::apply_entry(store, &entry(n, &cmd)).unwrap()
        })
        .collect()
}

#[test]
fn every_op() {
    let mut kv = KvStore::new();
    let out = run(&mut kv, &[get("a"), put("a", "1"), get("a"), put("a", "2"), get("a"), del("a"), del("a"), get("a")]);
    assert_eq!(
        out,
        vec![
            Ok(KvOutput::Get(None)),
            Ok(KvOutput::Put),
            Ok(KvOutput::Get(Some(s("1")))),
            Ok(KvOutput::Put),
            Ok(KvOutput::Get(Some(s("2")))),
            Ok(KvOutput::Delete { existed: true }),
            Ok(KvOutput::Delete { existed: false }),
            Ok(KvOutput::Get(None)),
        ]
    );
    assert_eq!(kv.last_applied(), LogIndex(8));
    assert!(kv.is_empty());
}

#[test]
fn cas_semantics() {
    let mut kv = KvStore::new();
    let out = run(
        &mut kv,
        &[
            cas("k", Some("x"), "no"), // absent, expected a value: fails
            cas("k", None, "a"),       // absent, expected absent: swaps
            cas("k", None, "b"),       // present, expected absent: fails
            cas("k", Some("z"), "b"),  // wrong value: fails
            cas("k", Some("a"), "b"),  // right value: swaps
        ],
    );
    assert_eq!(
        out,
        vec![
            Ok(KvOutput::Cas { swapped: false, current: None }),
            Ok(KvOutput::Cas { swapped: true, current: Some(s("a")) }),
            Ok(KvOutput::Cas { swapped: false, current: Some(s("a")) }),
            Ok(KvOutput::Cas { swapped: false, current: Some(s("a")) }),
            Ok(KvOutput::Cas { swapped: true, current: Some(s("b")) }),
        ]
    );
    assert_eq!(kv.get_local("k"), Some("b"));
}

#[test]
fn retry_is_not_re_executed_and_returns_the_cached_output() {
    let mut kv = KvStore::new();
    let c = |seq, op| KvCommand { client: 7, seq, op };
    assert_eq!(
        kv.apply_command(LogIndex(1), &c(1, cas("n", None, "1"))),
        Ok(KvOutput::Cas { swapped: true, current: Some(s("1")) })
    );
    // The same command committed again (client retried after a lost reply).
    assert_eq!(
        kv.apply_command(LogIndex(2), &c(1, cas("n", None, "1"))),
        Ok(KvOutput::Cas { swapped: true, current: Some(s("1")) })
    );
    // Another client changes the key; a third copy of the retry still answers from the cache.
    let other = KvCommand { client: 8, seq: 1, op: put("n", "other") };
    assert_eq!(kv.apply_command(LogIndex(3), &other), Ok(KvOutput::Put));
    assert_eq!(
        kv.apply_command(LogIndex(4), &c(1, cas("n", None, "1"))),
        Ok(KvOutput::Cas { swapped: true, current: Some(s("1")) })
    );
    assert_eq!(kv.get_local("n"), Some("other"));
    assert_eq!(kv.last_applied(), LogIndex(4));
    // Sessions are per client: client 8's seq 1 is independent of client 7's.
    assert_eq!(kv.apply_command(LogIndex(5), &c(2, get("n"))), Ok(KvOutput::Get(Some(s("other")))));
}

#[test]
fn stale_seq_is_refused_and_gaps_are_allowed() {
    let mut kv = KvStore::new();
    let c = |seq, op| KvCommand { client: 3, seq, op };
    assert_eq!(
        kv.apply_command(LogIndex(1), &c(0, put("a", "0"))),
        Err(KvError::Stale { client: 3, seq: 0, last_seq: 0 })
    );
    assert_eq!(kv.apply_command(LogIndex(2), &c(5, put("a", "5"))), Ok(KvOutput::Put));
    assert_eq!(
        kv.apply_command(LogIndex(3), &c(2, put("a", "2"))),
        Err(KvError::Stale { client: 3, seq: 2, last_seq: 5 })
    );
    assert_eq!(kv.get_local("a"), Some("5"));
    assert_eq!(kv.apply_command(LogIndex(4), &c(6, put("a", "6"))), Ok(KvOutput::Put));
    // Stale commands still consume their index.
    assert_eq!(kv.last_applied(), LogIndex(4));
}

#[test]
fn already_applied_indexes_are_ignored() {
    let mut kv = KvStore::new();
    run(&mut kv, &[put("a", "1"), put("b", "2")]);
    let before = kv.clone();
    let again = KvCommand { client: 9, seq: 1, op: put("a", "x") };
    assert_eq!(
        kv.apply_command(LogIndex(2), &again),
        Err(KvError::AlreadyApplied { index: LogIndex(2), last_applied: LogIndex(2) })
    );
    assert_eq!(StateMachine::apply_entry(&mut kv, &entry(1, &again)), None);
    assert_eq!(kv, before);
}

#[test]
fn noop_advances_last_applied_without_output() {
    let mut kv = KvStore::new();
    let noop = Entry { term: Term(2), index: LogIndex(1), payload: Payload::Noop };
    assert_eq!(StateMachine::apply_entry(&mut kv, &noop), None);
    assert_eq!(StateMachine::last_applied(&kv), LogIndex(1));
}

#[test]
fn malformed_command_is_a_noop_with_an_error_output() {
    let mut kv = KvStore::new();
    run(&mut kv, &[put("a", "1")]);
    let before = kv.snapshot();
    let good = encode_command(&KvCommand { client: 1, seq: 2, op: put("a", "2") });
    let mut index = 1;
    let mut bad_inputs: Vec<Vec<u8>> = vec![vec![], vec![0xFF; 40], b"hello".to_vec()];
    bad_inputs.extend((0..good.len()).map(|cut| good[..cut].to_vec()));
    bad_inputs.push([good.as_slice(), &[0]].concat());
    for bad in bad_inputs {
        index += 1;
        let e = Entry { term: Term(1), index: LogIndex(index), payload: Payload::Command(Bytes::from(bad.clone())) };
        let out = StateMachine::apply_entry(&mut kv, &e);
        assert!(
            matches!(&out, Some(Err(KvError::Malformed { index: i, .. })) if *i == LogIndex(index)),
            "{bad:?} gave {out:?}"
        );
        assert_eq!(kv.last_applied(), LogIndex(index));
    }
    // Only last_applied moved.
    let mut expected = KvStore::restore(&before).unwrap();
    let noop = Entry { term: Term(1), index: LogIndex(index), payload: Payload::Noop };
    StateMachine::apply_entry(&mut expected, &noop);
    assert_eq!(kv, expected);
}

#[test]
fn command_encoding_round_trips() {
    for op in [put("k", "v"), get(""), del("ключ"), cas("k", None, "n"), cas("k", Some("e"), "")] {
        let cmd = KvCommand { client: u64::MAX, seq: 1 << 40, op };
        assert_eq!(decode_command(&encode_command(&cmd)), Ok(cmd));
    }
}

#[test]
fn snapshot_restore_round_trip() {
    let mut kv = KvStore::new();
    run(&mut kv, &[put("b", "2"), put("a", "1"), put("c", "3"), del("c"), cas("a", Some("1"), "11")]);
    kv.apply_command(LogIndex(6), &KvCommand { client: 42, seq: 9, op: get("a") }).unwrap();
    let bytes = kv.snapshot();
    let back = KvStore::restore(&bytes).unwrap();
    assert_eq!(back, kv);
    assert_eq!(back.snapshot(), bytes, "equal states give equal bytes");
    assert_eq!(back.last_applied(), LogIndex(6));
    // The session table came along: a retry still returns the cached output.
    let mut back = back;
    assert_eq!(
        back.apply_command(LogIndex(7), &KvCommand { client: 42, seq: 9, op: get("a") }),
        Ok(KvOutput::Get(Some(s("11"))))
    );
    // The trait path replaces the state.
    let mut other = KvStore::new();
    StateMachine::restore(&mut other, &bytes).unwrap();
    assert_eq!(other, kv);
    // The empty store too.
    assert_eq!(KvStore::restore(&KvStore::new().snapshot()), Ok(KvStore::new()));
}

#[test]
fn damaged_snapshots_are_errors_and_leave_the_state_alone() {
    let mut kv = KvStore::new();
    run(&mut kv, &[put("a", "1"), put("b", "2")]);
    let bytes = kv.snapshot();
    for cut in 0..bytes.len() {
        assert!(KvStore::restore(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(KvStore::restore(&longer), Err(DecodeError::TrailingBytes { extra: 1 }));
    let mut target = KvStore::new();
    run(&mut target, &[put("z", "26")]);
    let before = target.clone();
    assert!(StateMachine::restore(&mut target, &bytes[..bytes.len() - 1]).is_err());
    assert_eq!(target, before);
    // Flipping any single bit never panics (it may still decode to some store).
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        let _ = KvStore::restore(&b);
    }
}

#[test]
fn replicas_fed_the_same_entries_agree() {
    let ops = [put("x", "1"), cas("x", Some("1"), "2"), get("x"), del("y"), put("y", "")];
    let mut a = KvStore::new();
    let mut b = KvStore::new();
    let out_a = run(&mut a, &ops);
    let out_b = run(&mut b, &ops);
    assert_eq!(out_a, out_b);
    assert_eq!(a.snapshot(), b.snapshot());
}

quickcheck::quickcheck! {
    fn arbitrary_command_bytes_never_panic(bytes: Vec<u8>) -> bool {
        let mut kv = KvStore::new();
        let e = Entry { term: Term(1), index: LogIndex(1), payload: Payload::Command(Bytes::from(bytes)) };
        let _ = StateMachine::apply_entry(&mut kv, &e);
        kv.last_applied() == LogIndex(1)
    }

    fn arbitrary_snapshot_bytes_never_panic(bytes: Vec<u8>) -> bool {
        let _ = KvStore::restore(&bytes);
        let _ = KvStore::restore(&[&b"raftkv01"[..], &bytes].concat());
        true
    }
}

/// Hands out one byte per read, like the slowest possible stream.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn streamed_snapshots_match_the_byte_form_and_fail_the_same() {
    let mut kv = KvStore::new();
    run(&mut kv, &[put("b", "2"), put("a", "1"), cas("a", Some("1"), "11")]);
    let bytes = kv.snapshot();
    let mut streamed = Vec::new();
    StateMachine::write_snapshot(&kv, &mut streamed).unwrap();
    assert_eq!(streamed, bytes);
    let mut back = KvStore::new();
    StateMachine::restore_from(&mut back, &mut Trickle(&bytes)).unwrap();
    assert_eq!(back, kv);
    // Every cut, and a trailing byte, is refused, and leaves the state alone.
    for cut in 0..bytes.len() {
        assert!(StateMachine::restore_from(&mut back, &mut Trickle(&bytes[..cut])).is_err(), "cut at {cut}");
        assert_eq!(back, kv);
    }
    let longer = [&bytes[..], &[0, 0]].concat();
    let err = KvStore::restore_from(&mut Trickle(&longer)).unwrap_err();
    assert!(matches!(err, crate::RestoreError::Decode(DecodeError::TrailingBytes { extra: 2 })), "{err}");
    // A frame length far beyond the stream allocates nothing and is refused.
    let mut huge = b"raftkv02".to_vec();
    huge.extend_from_slice(&(60u32 << 20).to_le_bytes());
    assert!(KvStore::restore_from(&mut Trickle(&huge)).is_err());
}
