//! Registered sessions: registration, duplicates, expiry by log time, the
//! byte bound, snapshots of either format.

use super::*;
use crate::state_machine::StateMachine;
use raft_core::{Bytes, Entry, LogIndex, Payload, Term};

const LIMITS: SessionLimits = SessionLimits { idle_timeout_ms: 10_000, max_bytes: 1 << 20 };

fn raw(index: u64, bytes: Vec<u8>) -> Entry {
    Entry { term: Term(1), index: LogIndex(index), payload: Payload::Command(Bytes::from(bytes)) }
}

/// A store fed entries at indexes 1, 2, 3...
struct Log {
    kv: KvStore,
    next: u64,
}

impl Log {
    fn new() -> Log {
        Log { kv: KvStore::new(), next: 1 }
    }

    fn apply(&mut self, e: KvEntry) -> Result<KvOutput, KvError> {
        let index = self.next;
        self.next += 1;
        StateMachine::apply_entry(&mut self.kv, &raw(index, encode_entry(&e))).expect("a command entry has an output")
    }

    fn register(&mut self, time_ms: u64, limits: SessionLimits) -> u64 {
        match self.apply(KvEntry::Register { time_ms, limits }) {
            Ok(KvOutput::Registered { session }) => session,
            other => panic!("registration gave {other:?}"),
        }
    }

    fn cmd(&mut self, session: u64, seq: u64, time_ms: u64, op: KvOp) -> Result<KvOutput, KvError> {
        self.apply(KvEntry::Command { session, seq, time_ms, op })
    }
}

#[test]
fn a_session_id_is_its_registration_index_and_commands_run_once() {
    let mut log = Log::new();
    let a = log.register(1_000, LIMITS);
    assert_eq!(a, 1);
    assert!(log.kv.has_session(a));
    assert_eq!(log.cmd(a, 1, 1_001, KvOp::cas("k", None, "1")), Ok(KvOutput::cas(true, Some("1"))));
    // A duplicate of seq 1 reaching the log again is answered from the session.
    log.cmd(a, 2, 1_002, KvOp::put("k", "2")).unwrap();
    assert_eq!(log.cmd(a, 1, 1_003, KvOp::cas("k", None, "1")), Err(KvError::Stale { client: a, seq: 1, last_seq: 2 }));
    assert_eq!(log.cmd(a, 2, 1_004, KvOp::put("k", "other")), Ok(KvOutput::Put));
    assert_eq!(log.kv.get_local("k"), Some("2"), "the duplicate put was not executed");
    // Unknown sessions are refused and change nothing.
    assert_eq!(log.cmd(99, 1, 1_005, KvOp::put("k", "x")), Err(KvError::UnknownSession { session: 99 }));
    assert_eq!(log.kv.get_local("k"), Some("2"));
    assert_eq!(log.kv.session_count(), 1);
}

#[test]
fn the_leader_answers_duplicates_without_proposing() {
    let mut log = Log::new();
    let a = log.register(0, LIMITS);
    log.cmd(a, 1, 10, KvOp::put("k", "1")).unwrap();
    log.cmd(a, 2, 20, KvOp::cas("k", Some("1"), "2")).unwrap();
    let kv = &log.kv;
    let put = KvOp::put("k", "3");
    assert_eq!(kv.answer_from_session(a, 2, &put, 30), Some(Ok(KvOutput::cas(true, Some("2")))));
    assert_eq!(kv.answer_from_session(a, 1, &put, 30), Some(Err(KvError::Stale { client: a, seq: 1, last_seq: 2 })));
    assert_eq!(kv.answer_from_session(a, 3, &put, 30), None, "a new command goes through the log");
    assert_eq!(kv.answer_from_session(a, 3, &KvOp::get("k"), 30), None);
    assert_eq!(kv.answer_from_session(a + 7, 1, &put, 30), Some(Err(KvError::UnknownSession { session: a + 7 })));
    let far = 2 + SEQ_WINDOW + 1;
    assert_eq!(
        kv.answer_from_session(a, far, &put, 30),
        Some(Err(KvError::SeqOutOfWindow { session: a, seq: far, last_seq: 2 }))
    );
    // Idle past the timeout by the caller's clock: expired, even before the log says so.
    assert_eq!(kv.answer_from_session(a, 3, &put, 20 + 10_000), Some(Err(KvError::UnknownSession { session: a })));
    assert!(kv.has_session(a));
}

#[test]
fn reads_are_executed_again_and_never_kept() {
    let mut log = Log::new();
    let a = log.register(0, LIMITS);
    log.cmd(a, 1, 1, KvOp::put("k", "v".repeat(1000))).unwrap();
    let before = log.kv.session_bytes();
    assert_eq!(log.cmd(a, 2, 2, KvOp::get("k")), Ok(KvOutput::Get(Some("v".repeat(1000)))));
    assert_eq!(log.kv.session_bytes(), before, "the read's output is not kept");
    log.cmd(a + 5, 0, 3, KvOp::get("k")).unwrap_err();
    // A retried read sees the latest value.
    let b = log.register(4, LIMITS);
    log.cmd(b, 1, 5, KvOp::put("k", "w")).unwrap();
    assert_eq!(log.cmd(a, 2, 6, KvOp::get("k")), Ok(KvOutput::get(Some("w"))));
    assert_eq!(log.kv.answer_from_session(a, 2, &KvOp::get("k"), 6), None);
}

#[test]
fn sessions_expire_by_log_time_only() {
    let mut log = Log::new();
    let a = log.register(1_000, LIMITS);
    let b = log.register(5_000, LIMITS);
    log.cmd(a, 1, 6_000, KvOp::put("x", "1")).unwrap();
    // b was last active at 5,000: it expires once the log reaches 15,000.
    log.cmd(a, 2, 14_999, KvOp::put("x", "2")).unwrap();
    assert!(log.kv.has_session(b));
    log.cmd(a, 3, 15_000, KvOp::put("x", "3")).unwrap();
    assert!(!log.kv.has_session(b), "expired at 15,000");
    assert_eq!(log.cmd(b, 1, 15_001, KvOp::put("x", "b")), Err(KvError::UnknownSession { session: b }));
    // A leader whose clock is behind does not move log time back.
    assert_eq!(log.kv.log_time_ms(), 15_001);
    log.cmd(a, 4, 100, KvOp::put("x", "4")).unwrap();
    assert_eq!(log.kv.log_time_ms(), 15_001);
    // a was active at 15,001 (time of its last command, as the log saw it).
    let c = log.register(25_000, LIMITS);
    assert!(log.kv.has_session(a));
    log.register(25_001, LIMITS);
    assert!(!log.kv.has_session(a));
    assert!(log.kv.has_session(c));
    // Noops and format-1 commands carry no time: nothing expires on them.
    let before = log.kv.clone();
    let noop = Entry { term: Term(2), index: LogIndex(log.next), payload: Payload::Noop };
    StateMachine::apply_entry(&mut log.kv, &noop);
    assert_eq!(log.kv.session_count(), before.session_count());
}

#[test]
fn the_table_stays_within_its_bound_expiring_the_oldest_idle_first() {
    let limits = SessionLimits { idle_timeout_ms: u64::MAX, max_bytes: 10 * SESSION_OVERHEAD_BYTES };
    let mut log = Log::new();
    let ids: Vec<u64> = (0..10).map(|t| log.register(t, limits)).collect();
    assert_eq!(log.kv.session_count(), 10);
    assert_eq!(log.kv.session_bytes(), 10 * SESSION_OVERHEAD_BYTES);
    // The oldest registered, ids[0], was used since: ids[1] is idle the longest.
    log.cmd(ids[0], 1, 20, KvOp::put("k", "v")).unwrap();
    let new = log.register(21, limits);
    assert_eq!(log.kv.session_count(), 10);
    assert!(log.kv.has_session(ids[0]) && log.kv.has_session(new) && !log.kv.has_session(ids[1]));
    // A large kept output counts: a cas keeps its current value.
    log.cmd(ids[0], 2, 22, KvOp::cas("k", Some("v"), "w".repeat(3 * SESSION_OVERHEAD_BYTES as usize))).unwrap();
    assert!(log.kv.session_bytes() <= limits.max_bytes);
    assert_eq!(log.kv.session_count(), 7, "three more of the idlest went to make room");
    assert!(!log.kv.has_session(ids[2]) && !log.kv.has_session(ids[4]) && log.kv.has_session(ids[5]));
    // 100,000 one-shot clients (register + put each) never take it past the bound.
    let mut peak = 0;
    for t in 0..100_000u64 {
        let s = log.register(100 + t, limits);
        log.cmd(s, 1, 100 + t, KvOp::put(format!("k{t}"), "v")).unwrap();
        peak = peak.max(log.kv.session_bytes());
    }
    assert!(peak <= limits.max_bytes, "peak {peak}");
    assert_eq!(log.kv.session_count(), 10);
}

#[test]
fn a_registration_brings_its_limits_to_every_replica() {
    let mut log = Log::new();
    log.register(0, LIMITS);
    log.register(1, LIMITS);
    log.register(2, LIMITS);
    let tight = SessionLimits { idle_timeout_ms: 5, max_bytes: 2 * SESSION_OVERHEAD_BYTES };
    log.register(3, tight);
    assert_eq!(log.kv.session_limits(), tight);
    assert_eq!(log.kv.session_count(), 2);
    // Nonsense limits are made usable: at least one session, 1 ms.
    log.register(4, SessionLimits { idle_timeout_ms: 0, max_bytes: 0 });
    assert_eq!(log.kv.session_limits(), SessionLimits { idle_timeout_ms: 1, max_bytes: SESSION_OVERHEAD_BYTES });
    assert_eq!(log.kv.session_count(), 1);
}

#[test]
fn snapshots_keep_sessions_time_and_limits_and_read_format_1() {
    let mut log = Log::new();
    let a = log.register(7, LIMITS);
    log.cmd(a, 1, 8, KvOp::cas("k", None, "1")).unwrap();
    log.register(9, LIMITS);
    let bytes = log.kv.snapshot();
    assert!(bytes.starts_with(b"raftkv02"));
    let back = KvStore::restore(&bytes).unwrap();
    assert_eq!(back, log.kv);
    assert_eq!(back.session_bytes(), log.kv.session_bytes());
    assert_eq!(back.log_time_ms(), 9);
    assert_eq!(back.answer_from_session(a, 1, &KvOp::put("k", "x"), 0), Some(Ok(KvOutput::cas(true, Some("1")))));

    // A format-1 snapshot (written by the previous build): client 5 at seq 3
    // with a kept put, client 6 with a kept read, one pair.
    let mut v1 = b"raftkv01".to_vec();
    let frame = |out: &mut Vec<u8>, bytes: Vec<u8>| {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    };
    let enc = |v: &dyn erased::Enc| v.enc();
    frame(&mut v1, enc(&(LogIndex(12), 2u64, 1u64)));
    frame(&mut v1, enc(&(5u64, (3u64, KvOutput::Put))));
    frame(&mut v1, enc(&(6u64, (1u64, KvOutput::get(Some("big"))))));
    frame(&mut v1, enc(&("a".to_owned(), "1".to_owned())));
    let old = KvStore::restore(&v1).unwrap();
    assert_eq!(old.last_applied(), LogIndex(12));
    assert_eq!(old.get_local("a"), Some("1"));
    assert_eq!(old.session_count(), 2);
    assert_eq!(old.session_bytes(), 2 * SESSION_OVERHEAD_BYTES, "the old kept read is dropped");
    assert_eq!(old.session_limits(), SessionLimits::DEFAULT);
    let mut old = old;
    let retry = KvCommand { client: 5, seq: 3, op: KvOp::put("a", "again") };
    assert_eq!(old.apply_command(LogIndex(13), &retry), Ok(KvOutput::Put));
    assert_eq!(old.get_local("a"), Some("1"), "the session survived the format change");
    // It writes format 2 from then on, and that reads back equal.
    assert_eq!(KvStore::restore(&old.snapshot()), Ok(old));
}

#[test]
fn both_entry_formats_decode_and_garbage_is_malformed() {
    let v2 = KvEntry::Command { session: 3, seq: 4, time_ms: 5, op: KvOp::put("k", "v") };
    assert_eq!(decode_entry(&encode_entry(&v2)), Ok(AnyEntry::V2(v2.clone())));
    let v1 = KvCommand { client: u64::MAX, seq: 1, op: KvOp::get("k") };
    assert_eq!(decode_entry(&encode_command(&v1)), Ok(AnyEntry::Legacy(v1)));
    // No format-1 command starts with the format-2 tag.
    assert!(decode_command(&encode_entry(&v2)).is_err());
    let good = encode_entry(&v2);
    for cut in 0..good.len() {
        let mut kv = KvStore::new();
        let out = StateMachine::apply_entry(&mut kv, &raw(1, good[..cut].to_vec()));
        assert!(matches!(out, Some(Err(KvError::Malformed { .. }))), "cut {cut}: {out:?}");
    }
}

/// Codec encoding of test values (the snapshot frames of format 1).
mod erased {
    pub(super) trait Enc {
        fn enc(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Enc for T {
        fn enc(&self) -> Vec<u8> {
            raft_core::codec::encode_value(self).unwrap()
        }
    }
}

quickcheck::quickcheck! {
    fn replicas_agree_on_any_history(steps: Vec<(u8, u8, u16, u8)>) -> bool {
        // (kind, session pick, time step, seq step): registrations and
        // commands with times that wander back and forth.
        let limits = SessionLimits { idle_timeout_ms: 300, max_bytes: 5 * SESSION_OVERHEAD_BYTES };
        let mut a = Log::new();
        let mut b = Log::new();
        let mut time = 0u64;
        for (kind, pick, dt, ds) in steps {
            time = (time + u64::from(dt % 200)).saturating_sub(50);
            let e = if kind % 4 == 0 {
                KvEntry::Register { time_ms: time, limits }
            } else {
                let session = 1 + u64::from(pick) % a.next.max(1);
                let op = if kind % 3 == 0 { KvOp::get("k") } else { KvOp::cas("k", None, "v".repeat(usize::from(ds))) };
                KvEntry::Command { session, seq: u64::from(ds % 5), time_ms: time, op }
            };
            if a.apply(e.clone()) != b.apply(e) {
                return false;
            }
            if a.kv.session_bytes() > limits.max_bytes && a.kv.session_count() > 1 {
                return false;
            }
        }
        a.kv.snapshot() == b.kv.snapshot() && KvStore::restore(&a.kv.snapshot()).as_ref() == Ok(&a.kv)
    }
}
