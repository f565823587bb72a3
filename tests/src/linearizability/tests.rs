use super::*;
use crate::sim::SimRng;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------
// Helpers.

/// The randomized tests' generator: the simulator's SplitMix64 stream, drawn
/// from with `%` (not [`SimRng::below`]) so each seed keeps its history.
#[derive(Debug)]
struct Rng(SimRng);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SimRng::new(seed))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Reference semantics of an atomic KV store, written independently of the
/// checker's interned model.
fn apply(store: &mut BTreeMap<String, String>, op: &KvOp) -> KvOutput {
    match op {
        KvOp::Put { key, value } => {
            store.insert(key.clone(), value.clone());
            KvOutput::Put
        }
        KvOp::Get { key } => KvOutput::Get(store.get(key).cloned()),
        KvOp::Delete { key } => KvOutput::Delete { existed: store.remove(key).is_some() },
        KvOp::Cas { key, expected, new } => {
            let swapped = store.get(key) == expected.as_ref();
            if swapped {
                store.insert(key.clone(), new.clone());
            }
            KvOutput::Cas { swapped, current: store.get(key).cloned() }
        }
        other => panic!("unmodelled op {other}"),
    }
}

fn build(ops: &[Operation]) -> History {
    let mut h = History::new();
    for op in ops {
        let id = h.call(op.client, op.op.clone(), op.call);
        match &op.outcome {
            Outcome::Returned { at, output } => h.returned(id, output.clone(), *at),
            Outcome::Unknown => h.timed_out(id),
        }
    }
    h
}

/// A history whose operations run one after the other (times 10i..10i+5).
fn sequential(ops: &[(KvOp, KvOutput)]) -> History {
    let mut h = History::new();
    for (i, (op, out)) in ops.iter().enumerate() {
        let t = 10 * i as u64;
        h.record(1, op.clone(), t, out.clone(), t + 5);
    }
    h
}

#[track_caller]
fn assert_linearizable(h: &History) {
    if let Err(e) = h.check() {
        panic!("expected a linearizable history, got:\n{e}");
    }
}

#[track_caller]
fn violation(h: &History) -> Violation {
    match h.check() {
        Err(LinearizabilityError::NotLinearizable(v)) => *v,
        Err(e) => panic!("expected a violation, got: {e}"),
        Ok(()) => panic!("expected a violation, but the history was accepted: {h:?}"),
    }
}

fn put(k: &str, v: &str) -> KvOp {
    KvOp::put(k, v)
}

fn get(k: &str) -> KvOp {
    KvOp::get(k)
}

fn read(v: Option<&str>) -> KvOutput {
    KvOutput::get(v)
}

// ---------------------------------------------------------------------------
// Hand-written histories.

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(History::new().check_with_budget(1), Ok(CheckOutcome::Linearizable));
    assert_linearizable(&History::new());
}

#[test]
fn sequential_histories_are_linearizable() {
    let h = sequential(&[
        (get("x"), read(None)),
        (put("x", "1"), KvOutput::Put),
        (get("x"), read(Some("1"))),
        (KvOp::cas("x", Some("1"), "2"), KvOutput::cas(true, Some("2"))),
        (KvOp::cas("x", Some("1"), "3"), KvOutput::cas(false, Some("2"))),
        (KvOp::delete("x"), KvOutput::delete(true)),
        (get("x"), read(None)),
        (KvOp::delete("x"), KvOutput::delete(false)),
        (KvOp::cas("x", None, "4"), KvOutput::cas(true, Some("4"))),
        (put("x", "4"), KvOutput::Put),
        (get("x"), read(Some("4"))),
    ]);
    assert_linearizable(&h);

    // The same history with the last read changed is rejected.
    let mut ops = h.operations().to_vec();
    let last = ops.last_mut().unwrap();
    last.outcome = Outcome::Returned { at: last.call + 5, output: read(Some("2")) };
    violation(&build(&ops));
}

#[test]
fn overlapping_ops_may_be_reordered() {
    // put(1) is called first but overlaps everything: the only linearization
    // is put(2), put(1), get -> 1.
    let mut h = History::new();
    h.record(1, put("x", "1"), 0, KvOutput::Put, 10);
    h.record(2, put("x", "2"), 1, KvOutput::Put, 3);
    h.record(3, get("x"), 5, read(Some("1")), 6);
    assert_linearizable(&h);

    // If put(1) returns before put(2) is called, no reordering is possible.
    let mut h = History::new();
    h.record(1, put("x", "1"), 0, KvOutput::Put, 0);
    h.record(2, put("x", "2"), 1, KvOutput::Put, 3);
    h.record(3, get("x"), 5, read(Some("1")), 6);
    violation(&h);

    // A read concurrent with a write may see either value.
    for seen in [None, Some("1")] {
        let mut h = History::new();
        h.record(1, put("x", "1"), 0, KvOutput::Put, 10);
        h.record(2, get("x"), 2, read(seen), 4);
        assert_linearizable(&h);
    }
}

#[test]
fn readers_disagreeing_on_write_order_are_rejected() {
    // Two concurrent writes; one reader sees a then b, the other b then a.
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 10);
    h.record(2, put("x", "b"), 0, KvOutput::Put, 10);
    h.record(3, get("x"), 1, read(Some("a")), 2);
    h.record(3, get("x"), 3, read(Some("b")), 4);
    h.record(4, get("x"), 1, read(Some("b")), 2);
    h.record(4, get("x"), 3, read(Some("a")), 4);
    violation(&h);

    // If they agree, it is fine.
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 10);
    h.record(2, put("x", "b"), 0, KvOutput::Put, 10);
    h.record(3, get("x"), 1, read(Some("a")), 2);
    h.record(3, get("x"), 3, read(Some("b")), 4);
    h.record(4, get("x"), 1, read(Some("a")), 2);
    h.record(4, get("x"), 3, read(Some("b")), 4);
    assert_linearizable(&h);
}

#[test]
fn touching_intervals_are_concurrent() {
    // put(b) is called exactly when put(a) returns: they may be reordered.
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 5);
    h.record(2, put("x", "b"), 5, KvOutput::Put, 6);
    h.record(3, get("x"), 7, read(Some("a")), 8);
    assert_linearizable(&h);

    // One tick later they are ordered.
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 5);
    h.record(2, put("x", "b"), 6, KvOutput::Put, 7);
    h.record(3, get("x"), 8, read(Some("a")), 9);
    violation(&h);
}

#[test]
fn stale_read_is_rejected_and_reported() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    h.record(1, put("x", "b"), 2, KvOutput::Put, 3);
    let stale = h.record(2, get("x"), 4, read(Some("a")), 5);
    h.record(2, get("x"), 6, read(Some("b")), 7);
    let v = violation(&h);
    assert_eq!(v.key, "x");
    assert_eq!(v.cut, 5, "the prefix should end at the stale read");
    assert_eq!(v.ops.len(), 3);
    assert_eq!(v.ops_on_key, 4);
    let partial = v.longest_partial.as_ref().expect("diagnostics");
    assert_eq!(partial.blocked_by, Some(stale));
    assert_eq!(partial.value.as_deref(), Some("b"));
    assert_eq!(partial.order.len(), 2);

    let text = LinearizabilityError::NotLinearizable(Box::new(v)).to_string();
    assert!(text.contains("key \"x\""), "{text}");
    assert!(text.contains("get(\"x\") -> \"a\"  [call 4, return 5]"), "{text}");
    assert!(text.contains("put(\"x\", \"b\") -> ok  [call 2, return 3]"), "{text}");
    assert!(text.contains("could not be linearized"), "{text}");
    assert!(!text.contains("call 6"), "ops after the cut are left out: {text}");
}

#[test]
fn read_of_value_never_written_is_rejected() {
    let h = sequential(&[(put("x", "a"), KvOutput::Put), (get("x"), read(Some("zzz")))]);
    violation(&h);

    let h = sequential(&[(get("fresh"), read(Some("a")))]);
    assert_eq!(violation(&h).key, "fresh");

    // Even when concurrent with writes of other values.
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 10);
    h.record(2, put("x", "b"), 0, KvOutput::Put, 10);
    h.record(3, get("x"), 0, read(Some("c")), 10);
    violation(&h);
}

#[test]
fn lost_write_is_rejected() {
    // An acknowledged write vanishes.
    let h = sequential(&[(put("x", "a"), KvOutput::Put), (get("x"), read(None))]);
    violation(&h);

    // Lost update: two concurrent CASes from the same expected value both
    // claim success.
    let mut h = History::new();
    h.record(1, put("x", "0"), 0, KvOutput::Put, 1);
    h.record(2, KvOp::cas("x", Some("0"), "a"), 2, KvOutput::cas(true, Some("a")), 8);
    h.record(3, KvOp::cas("x", Some("0"), "b"), 3, KvOutput::cas(true, Some("b")), 9);
    violation(&h);

    // Only one of them may win.
    let mut h = History::new();
    h.record(1, put("x", "0"), 0, KvOutput::Put, 1);
    h.record(2, KvOp::cas("x", Some("0"), "a"), 2, KvOutput::cas(true, Some("a")), 8);
    h.record(3, KvOp::cas("x", Some("0"), "b"), 3, KvOutput::cas(false, Some("a")), 9);
    assert_linearizable(&h);
}

#[test]
fn cas_semantics() {
    let setup = (put("x", "1"), KvOutput::Put);
    let cases: &[(KvOp, KvOutput, bool)] = &[
        // Matching expectation: swaps, current is the new value.
        (KvOp::cas("x", Some("1"), "2"), KvOutput::cas(true, Some("2")), true),
        (KvOp::cas("x", Some("1"), "2"), KvOutput::cas(true, Some("1")), false),
        (KvOp::cas("x", Some("1"), "2"), KvOutput::cas(false, Some("1")), false),
        // Mismatch: no swap, current is the unchanged value.
        (KvOp::cas("x", Some("3"), "2"), KvOutput::cas(false, Some("1")), true),
        (KvOp::cas("x", Some("3"), "2"), KvOutput::cas(true, Some("2")), false),
        (KvOp::cas("x", Some("3"), "2"), KvOutput::cas(false, Some("2")), false),
        (KvOp::cas("x", Some("3"), "2"), KvOutput::cas(false, None), false),
        // Expecting absence of a present key.
        (KvOp::cas("x", None, "2"), KvOutput::cas(false, Some("1")), true),
        (KvOp::cas("x", None, "2"), KvOutput::cas(true, Some("2")), false),
    ];
    for (i, (op, out, ok)) in cases.iter().enumerate() {
        let h = sequential(&[setup.clone(), (op.clone(), out.clone())]);
        assert_eq!(h.check().is_ok(), *ok, "case {i}: {op} -> {out}");
    }

    // Expecting absence of an absent key; the swap is visible to later reads.
    let h = sequential(&[
        (KvOp::cas("y", None, "1"), KvOutput::cas(true, Some("1"))),
        (get("y"), read(Some("1"))),
        (KvOp::cas("y", Some("1"), "2"), KvOutput::cas(true, Some("2"))),
        (get("y"), read(Some("2"))),
    ]);
    assert_linearizable(&h);
    // A failed CAS does not write.
    let h = sequential(&[(KvOp::cas("y", Some("0"), "1"), KvOutput::cas(false, None)), (get("y"), read(Some("1")))]);
    violation(&h);
}

#[test]
fn delete_semantics() {
    let h = sequential(&[
        (put("x", "1"), KvOutput::Put),
        (KvOp::delete("x"), KvOutput::delete(true)),
        (get("x"), read(None)),
        (KvOp::delete("x"), KvOutput::delete(false)),
        (KvOp::delete("never"), KvOutput::delete(false)),
    ]);
    assert_linearizable(&h);

    // existed=false for a present key.
    violation(&sequential(&[(put("x", "1"), KvOutput::Put), (KvOp::delete("x"), KvOutput::delete(false))]));
    // existed=true for an absent key.
    violation(&sequential(&[(KvOp::delete("x"), KvOutput::delete(true))]));
    // The old value is gone after a delete.
    violation(&sequential(&[
        (put("x", "1"), KvOutput::Put),
        (KvOp::delete("x"), KvOutput::delete(true)),
        (get("x"), read(Some("1"))),
    ]));
    // Two deletes of the same value cannot both have seen it...
    let mut h = History::new();
    h.record(1, put("x", "1"), 0, KvOutput::Put, 1);
    h.record(2, KvOp::delete("x"), 2, KvOutput::delete(true), 5);
    h.record(3, KvOp::delete("x"), 2, KvOutput::delete(true), 5);
    violation(&h);
    // ...but one of them can.
    let mut h = History::new();
    h.record(1, put("x", "1"), 0, KvOutput::Put, 1);
    h.record(2, KvOp::delete("x"), 2, KvOutput::delete(false), 5);
    h.record(3, KvOp::delete("x"), 2, KvOutput::delete(true), 5);
    assert_linearizable(&h);
}

#[test]
fn unknown_put_that_is_read_later_took_effect() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    let lost = h.call(2, put("x", "b"), 2);
    h.timed_out(lost);
    h.record(3, get("x"), 5, read(Some("a")), 6);
    h.record(3, get("x"), 100, read(Some("b")), 101);
    h.record(3, get("x"), 102, read(Some("b")), 103);
    assert_linearizable(&h);
}

#[test]
fn unknown_put_that_is_never_read_did_not_take_effect() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    let lost = h.call(2, put("x", "b"), 2);
    h.timed_out(lost);
    h.record(3, get("x"), 5, read(Some("a")), 6);
    h.record(3, get("x"), 100, read(Some("a")), 101);
    assert_linearizable(&h);

    // Still-pending operations are treated the same way (no timed_out call).
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    h.call(2, put("x", "b"), 2);
    h.call(2, KvOp::delete("x"), 3);
    h.call(2, KvOp::cas("x", Some("a"), "c"), 3);
    h.call(2, get("x"), 3);
    h.record(3, get("x"), 100, read(Some("a")), 101);
    assert_linearizable(&h);
}

#[test]
fn unknown_put_cannot_be_observed_then_unobserved() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    let lost = h.call(2, put("x", "b"), 2);
    h.timed_out(lost);
    h.record(3, get("x"), 3, read(Some("b")), 4);
    h.record(3, get("x"), 5, read(Some("a")), 6);
    let v = violation(&h);
    assert_eq!(v.cut, 6);
    assert!(v.to_string().contains("outcome unknown"), "{v}");
}

#[test]
fn unknown_ops_only_take_effect_after_their_call() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    h.record(3, get("x"), 2, read(Some("b")), 3);
    h.call(2, put("x", "b"), 4);
    violation(&h);

    // An unknown delete or CAS may take effect too.
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    h.call(2, KvOp::delete("x"), 2);
    h.record(3, get("x"), 3, read(None), 4);
    h.call(2, KvOp::cas("x", None, "c"), 5);
    h.record(3, get("x"), 6, read(Some("c")), 7);
    assert_linearizable(&h);
}

#[test]
fn unknown_op_takes_effect_at_most_once() {
    // put(b) is unknown; b is read, overwritten, then read again: that
    // would need put(b) to happen twice.
    let mut h = History::new();
    h.call(2, put("x", "b"), 0);
    h.record(3, get("x"), 1, read(Some("b")), 2);
    h.record(1, put("x", "a"), 3, KvOutput::Put, 4);
    h.record(3, get("x"), 5, read(Some("b")), 6);
    violation(&h);
}

#[test]
fn unknown_write_of_an_unread_value_can_make_the_key_present() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    h.record(1, KvOp::delete("x"), 2, KvOutput::delete(true), 3);
    h.record(1, KvOp::delete("x"), 5, KvOutput::delete(true), 6);
    violation(&h);
    h.call(2, put("x", "never read"), 4);
    assert_linearizable(&h);
}

#[test]
fn identical_unknown_ops_can_each_take_effect() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    h.call(2, KvOp::delete("x"), 2);
    h.record(1, get("x"), 3, read(None), 4);
    h.record(1, put("x", "b"), 5, KvOutput::Put, 6);
    h.record(1, get("x"), 7, read(None), 8);
    violation(&h);
    // A second, identical unknown delete (called at the same time) explains it.
    h.call(3, KvOp::delete("x"), 2);
    assert_linearizable(&h);
}

#[test]
fn unknown_put_and_cas_of_the_same_value() {
    // The first read of v can be explained by either unknown op, the second
    // (from state b) only by the put: the CAS must be used first.
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    h.call(2, put("x", "v"), 2);
    h.call(3, KvOp::cas("x", Some("a"), "v"), 2);
    h.record(1, get("x"), 3, read(Some("v")), 4);
    h.record(1, put("x", "b"), 5, KvOutput::Put, 6);
    h.record(1, get("x"), 7, read(Some("v")), 8);
    assert_linearizable(&h);
    // A third read of v after another overwrite is one too many.
    h.record(1, put("x", "a"), 9, KvOutput::Put, 10);
    h.record(1, get("x"), 11, read(Some("v")), 12);
    violation(&h);
}

#[test]
fn late_reply_after_time_out_counts() {
    let mut h = History::new();
    h.record(1, put("x", "a"), 0, KvOutput::Put, 1);
    let id = h.call(2, get("x"), 2);
    h.timed_out(id);
    assert_linearizable(&h);
    h.returned(id, read(Some("zzz")), 50);
    violation(&h);
}

#[test]
fn keys_are_independent() {
    let mut h = History::new();
    h.record(1, put("x", "1"), 0, KvOutput::Put, 1);
    // A checker that conflated keys would expect "1" here.
    h.record(2, get("y"), 2, read(None), 3);
    h.record(1, put("y", "2"), 4, KvOutput::Put, 5);
    h.record(2, get("x"), 6, read(Some("1")), 7);
    h.record(2, get("y"), 6, read(Some("2")), 7);
    h.record(2, KvOp::delete("x"), 8, KvOutput::delete(true), 9);
    h.record(2, get("y"), 10, read(Some("2")), 11);
    assert_linearizable(&h);

    // Break key y only: the report is about y and contains only y's ops.
    let bad = h.record(3, get("y"), 12, read(Some("1")), 13);
    let v = violation(&h);
    assert_eq!(v.key, "y");
    assert!(v.ops.iter().all(|(_, op)| op.op.key() == "y"));
    assert!(v.ops.iter().any(|(id, _)| *id == bad));
    assert_eq!(v.ops_on_key, 5);

    // With two broken keys, the first in sorted order is reported.
    h.record(3, get("b"), 12, read(Some("1")), 13);
    assert_eq!(violation(&h).key, "b");
}

#[test]
#[should_panic(expected = "returned twice")]
fn returning_twice_panics() {
    let mut h = History::new();
    let id = h.call(1, get("x"), 0);
    h.returned(id, read(None), 1);
    h.returned(id, read(None), 2);
}

#[test]
#[should_panic(expected = "before its call")]
fn returning_before_call_panics() {
    let mut h = History::new();
    let id = h.call(1, get("x"), 5);
    h.returned(id, read(None), 4);
}

#[test]
#[should_panic(expected = "cannot return")]
fn wrong_output_kind_panics() {
    let mut h = History::new();
    let id = h.call(1, get("x"), 0);
    h.returned(id, KvOutput::Put, 1);
}

#[test]
#[should_panic(expected = "timed out after it returned")]
fn time_out_after_return_panics() {
    let mut h = History::new();
    let id = h.record(1, get("x"), 0, read(None), 1);
    h.timed_out(id);
}

// ---------------------------------------------------------------------------
// Budget.

/// `n` fully concurrent writes of distinct values and a read of a value
/// none of them wrote: not linearizable, but proving it means trying every
/// subset of the writes.
fn pathological(h: &mut History, key: &str, n: u64) {
    for i in 0..n {
        h.record(i, put(key, &format!("v{i}")), 0, KvOutput::Put, 100);
    }
    h.record(n, get(key), 0, read(Some("never")), 100);
}

#[test]
fn exhausted_budget_is_inconclusive() {
    let mut h = History::new();
    pathological(&mut h, "hard", 24);
    h.record(1, put("other", "1"), 0, KvOutput::Put, 1);
    h.record(1, get("other"), 2, read(Some("1")), 3);
    assert_eq!(h.check_with_budget(10_000), Ok(CheckOutcome::Inconclusive { keys: vec!["hard".to_owned()] }));
    let err = budget_result(h.check_with_budget(10_000), 10_000).unwrap_err();
    assert!(
        matches!(&err, LinearizabilityError::Inconclusive { keys, max_states: 10_000 } if keys == &["hard"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("budget of 10000 states"), "{err}");

    // A definite violation on another key still wins over inconclusive keys.
    h.record(1, get("other"), 4, read(Some("2")), 5);
    let v = h.check_with_budget(10_000).unwrap_err();
    assert_eq!(v.key, "other");

    // With a small enough instance the same shape is decided exactly.
    let mut h = History::new();
    pathological(&mut h, "x", 8);
    assert_eq!(violation(&h).key, "x");
}

// ---------------------------------------------------------------------------
// Randomized tests.

/// Shape of a generated history.
#[derive(Debug, Clone, Copy)]
struct Shape {
    ops: usize,
    keys: &'static [&'static str],
    /// Values to write; `None`: every write uses a unique value `v{i}`.
    values: Option<&'static [&'static str]>,
    /// Distance between consecutive linearization points.
    spacing: u64,
    /// Max distance from the linearization point to call and return.
    jitter: u64,
    /// Percentage of operations whose outcome is unknown.
    unknown_percent: u64,
}

/// Simulates an atomic KV store: operation `i` takes effect at time
/// `jitter + 1 + i * spacing`, and its call and return are drawn around that
/// point. Unknown operations take effect with probability 1/2.
fn atomic_history(rng: &mut Rng, shape: Shape) -> Vec<Operation> {
    let mut store = BTreeMap::new();
    let mut ops = Vec::with_capacity(shape.ops);
    for i in 0..shape.ops {
        let at = shape.jitter + 1 + i as u64 * shape.spacing;
        let call = at - rng.below(shape.jitter + 1);
        let ret = at + rng.below(shape.jitter + 1);
        let key = *rng.pick(shape.keys);
        let value = |rng: &mut Rng| match shape.values {
            Some(values) => (*rng.pick(values)).to_owned(),
            None => format!("v{}", rng.below(i as u64 + 1)),
        };
        let fresh = match shape.values {
            Some(values) => (*rng.pick(values)).to_owned(),
            None => format!("v{i}"),
        };
        let op = match rng.below(100) {
            0..40 => get(key),
            40..65 => put(key, &fresh),
            65..75 => KvOp::delete(key),
            _ => {
                let expected = if rng.chance(50) {
                    store.get(key).cloned()
                } else if rng.chance(30) {
                    None
                } else {
                    Some(value(rng))
                };
                KvOp::Cas { key: key.to_owned(), expected, new: fresh }
            }
        };
        let outcome = if rng.chance(shape.unknown_percent) {
            if rng.chance(50) {
                apply(&mut store, &op);
            }
            Outcome::Unknown
        } else {
            Outcome::Returned { at: ret, output: apply(&mut store, &op) }
        };
        ops.push(Operation { client: rng.below(8), op, call, outcome });
    }
    ops
}

/// The value an operation certainly wrote, if its outcome proves it wrote.
fn certain_write(op: &Operation) -> Option<Option<&str>> {
    match (&op.op, &op.outcome) {
        (KvOp::Put { value, .. }, Outcome::Returned { .. }) => Some(Some(value)),
        (KvOp::Delete { .. }, Outcome::Returned { .. }) => Some(None),
        (KvOp::Cas { new, .. }, Outcome::Returned { output: KvOutput::Cas { swapped: true, .. }, .. }) => {
            Some(Some(new))
        }
        _ => None,
    }
}

/// Changes the output of one returned read so that the history is certainly
/// not linearizable (values must be unique per write). Returns the index of
/// the corrupted read and a description.
fn corrupt_one_read(rng: &mut Rng, ops: &mut [Operation]) -> Option<(usize, &'static str)> {
    let reads: Vec<usize> =
        (0..ops.len()).filter(|&i| matches!(ops[i].op, KvOp::Get { .. }) && ops[i].return_time().is_some()).collect();
    if reads.is_empty() {
        return None;
    }
    let start = rng.below(reads.len() as u64) as usize;
    let ordered = || reads[start..].iter().chain(&reads[..start]).copied();
    let ret = |op: &Operation| op.return_time().unwrap_or(u64::MAX);
    let same_key = |a: &Operation, b: &Operation| a.op.key() == b.op.key();

    // Stale read: v was certainly written by w, which returned before w2
    // (a certain overwrite) was called, which returned before the read.
    for g in ordered() {
        let overwrite = ops
            .iter()
            .filter(|w2| same_key(w2, &ops[g]) && ret(w2) < ops[g].call)
            .filter(|w2| certain_write(w2).is_some())
            .max_by_key(|w2| w2.call);
        let Some(w2) = overwrite else { continue };
        let old = ops.iter().find_map(|w| match certain_write(w) {
            Some(Some(v)) if same_key(w, &ops[g]) && ret(w) < w2.call => Some(v.to_owned()),
            _ => None,
        });
        if let Some(v) = old {
            set_read(&mut ops[g], Some(v));
            return Some((g, "stale read"));
        }
    }
    // Read from the future: the only write of v is called after the read
    // returned.
    for g in ordered() {
        let future = ops.iter().find_map(|w| match &w.op {
            KvOp::Put { value: v, .. } | KvOp::Cas { new: v, .. } if same_key(w, &ops[g]) && w.call > ret(&ops[g]) => {
                Some(v.clone())
            }
            _ => None,
        });
        if let Some(v) = future {
            set_read(&mut ops[g], Some(v));
            return Some((g, "read from the future"));
        }
    }
    let g = reads[start];
    set_read(&mut ops[g], Some("never-written".to_owned()));
    Some((g, "read of a value never written"))
}

fn set_read(op: &mut Operation, value: Option<String>) {
    match &mut op.outcome {
        Outcome::Returned { output, .. } => *output = KvOutput::Get(value),
        Outcome::Unknown => unreachable!("only returned reads are corrupted"),
    }
}

#[test]
fn random_atomic_histories_pass_and_corrupted_reads_fail() {
    let mut kinds = BTreeMap::new();
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let shape = Shape {
            ops: 150,
            keys: &["a", "b", "c"],
            values: None,
            spacing: 10,
            jitter: 1 + rng.below(40),
            unknown_percent: rng.below(15),
        };
        let mut ops = atomic_history(&mut rng, shape);
        let result = build(&ops).check();
        assert!(result.is_ok(), "seed {seed}: {}", result.unwrap_err());

        let (g, kind) = corrupt_one_read(&mut rng, &mut ops).expect("history has reads");
        *kinds.entry(kind).or_insert(0) += 1;
        match build(&ops).check() {
            Err(LinearizabilityError::NotLinearizable(v)) => {
                assert_eq!(v.key, ops[g].op.key(), "seed {seed}: {kind}");
                assert_eq!(
                    Some(v.cut),
                    ops[g].return_time(),
                    "seed {seed}: {kind}: the failing prefix should end at the corrupted read\n{v}"
                );
                assert!(v.ops.iter().any(|(id, _)| id.index() == g), "seed {seed}: {kind}");
            }
            other => panic!("seed {seed}: {kind} at op {g} not detected: {other:?}"),
        }
    }
    assert!(kinds.get("stale read").copied().unwrap_or(0) > 100, "{kinds:?}");
}

#[test]
fn random_histories_with_colliding_values_pass() {
    for seed in 0..200 {
        let mut rng = Rng::new(1_000 + seed);
        let shape = Shape {
            ops: 200,
            keys: &["a", "b"],
            values: Some(&["0", "1", "2"]),
            spacing: 10,
            jitter: 1 + rng.below(50),
            unknown_percent: rng.below(20),
        };
        let ops = atomic_history(&mut rng, shape);
        let result = build(&ops).check();
        assert!(result.is_ok(), "seed {seed}: {}", result.unwrap_err());
    }
}

/// Exhaustive reference: tries every order of every subset of `ops` (one
/// key) that contains all returned operations, straight from the definition.
fn brute_force_key(ops: &[&Operation], placed: &mut Vec<usize>, store: &BTreeMap<String, String>) -> bool {
    let all_returned_placed = ops.iter().enumerate().all(|(i, op)| op.return_time().is_none() || placed.contains(&i));
    if all_returned_placed {
        return true;
    }
    for i in 0..ops.len() {
        if placed.contains(&i) {
            continue;
        }
        // Real-time order: nothing placed earlier may have been called
        // after this one returned.
        if let Some(ret) = ops[i].return_time()
            && placed.iter().any(|&p| ret < ops[p].call)
        {
            continue;
        }
        let mut next = store.clone();
        let out = apply(&mut next, &ops[i].op);
        if let Outcome::Returned { output, .. } = &ops[i].outcome
            && *output != out
        {
            continue;
        }
        placed.push(i);
        let ok = brute_force_key(ops, placed, &next);
        placed.pop();
        if ok {
            return true;
        }
    }
    false
}

fn brute_force(ops: &[Operation]) -> bool {
    let keys: BTreeSet<&str> = ops.iter().map(|op| op.op.key()).collect();
    keys.into_iter().all(|key| {
        let sub: Vec<&Operation> = ops.iter().filter(|op| op.op.key() == key).collect();
        brute_force_key(&sub, &mut Vec::new(), &BTreeMap::new())
    })
}

/// Small random histories, often corrupted, over few values so that many
/// interleavings matter.
fn small_history(rng: &mut Rng, max_ops: u64, unknown_percent: u64, values: &[&str]) -> Vec<Operation> {
    let n = 1 + rng.below(max_ops) as usize;
    let mut ops = Vec::with_capacity(n);
    let mut points = Vec::with_capacity(n);
    for i in 0..n {
        let key = if rng.chance(75) { "x" } else { "y" };
        let call = rng.below(12);
        let ret = call + rng.below(6);
        points.push((call + rng.below(ret - call + 1), i));
        let op = match rng.below(4) {
            0 => get(key),
            1 => put(key, rng.pick::<&str>(values)),
            2 => KvOp::delete(key),
            _ => {
                let expected = if rng.chance(30) { None } else { Some(*rng.pick(values)) };
                KvOp::cas(key, expected, *rng.pick(values))
            }
        };
        ops.push(Operation {
            client: i as u64,
            op,
            call,
            outcome: Outcome::Returned { at: ret, output: KvOutput::Put },
        });
    }
    // Outputs from an atomic store applying the ops at their points.
    points.sort_unstable();
    let mut store = BTreeMap::new();
    for (_, i) in points {
        if rng.chance(unknown_percent) {
            if rng.chance(50) {
                apply(&mut store, &ops[i].op);
            }
            ops[i].outcome = Outcome::Unknown;
        } else {
            let out = apply(&mut store, &ops[i].op);
            if let Outcome::Returned { output, .. } = &mut ops[i].outcome {
                *output = out;
            }
        }
    }
    // Often corrupt one output.
    if rng.chance(50) {
        let i = rng.below(n as u64) as usize;
        let value = |rng: &mut Rng| {
            if rng.chance(30) { None } else { Some((*rng.pick(values)).to_owned()) }
        };
        if let Outcome::Returned { output, .. } = &mut ops[i].outcome {
            *output = match &*output {
                KvOutput::Put => KvOutput::Put,
                KvOutput::Get(_) => KvOutput::Get(value(rng)),
                KvOutput::Delete { .. } => KvOutput::delete(rng.chance(50)),
                KvOutput::Cas { .. } => KvOutput::Cas { swapped: rng.chance(50), current: value(rng) },
                other => other.clone(),
            };
        }
    }
    ops
}

/// Compares the checker with [`brute_force`] on many small histories, and
/// checks that each reported prefix is non-linearizable while the prefix
/// ending at the previous return time is linearizable (so it is the
/// shortest).
fn compare_with_brute_force(seeds: std::ops::Range<u64>, max_ops: u64, unknown_percent: u64, values: &[&str]) {
    let (mut accepted, mut rejected) = (0, 0);
    for seed in seeds {
        let mut rng = Rng::new(seed);
        let ops = small_history(&mut rng, max_ops, unknown_percent, values);
        let expected = brute_force(&ops);
        match build(&ops).check_with_budget(1_000_000) {
            Ok(CheckOutcome::Linearizable) => {
                assert!(expected, "seed {seed}: accepted a non-linearizable history {ops:#?}");
                accepted += 1;
            }
            Err(v) => {
                assert!(!expected, "seed {seed}: rejected a linearizable history:\n{v}");
                let prefix_at = |cut: u64| -> Vec<Operation> {
                    ops.iter()
                        .filter(|op| op.op.key() == v.key && op.call <= cut)
                        .map(|op| {
                            let mut op = op.clone();
                            if op.return_time().is_some_and(|r| r > cut) {
                                op.outcome = Outcome::Unknown;
                            }
                            op
                        })
                        .collect()
                };
                assert_eq!(v.ops.len(), prefix_at(v.cut).len(), "seed {seed}");
                assert!(!brute_force(&prefix_at(v.cut)), "seed {seed}: reported prefix is fine\n{v}");
                let earlier = v.ops.iter().filter_map(|(_, op)| op.return_time()).filter(|&r| r < v.cut).max();
                if let Some(earlier) = earlier {
                    assert!(brute_force(&prefix_at(earlier)), "seed {seed}: prefix up to {earlier} already fails\n{v}");
                }
                rejected += 1;
            }
            Ok(other) => panic!("seed {seed}: {other:?}"),
        }
    }
    assert!(accepted > 200 && rejected > 200, "{accepted} accepted, {rejected} rejected");
}

#[test]
fn agrees_with_brute_force_on_small_histories() {
    compare_with_brute_force(7_000_000..7_002_000, 8, 20, &["a", "b"]);
}

#[test]
fn agrees_with_brute_force_with_many_unknown_ops() {
    // Many unknown writes exercise the normal-form and symmetry pruning.
    compare_with_brute_force(8_000_000..8_002_000, 9, 50, &["a", "b", "c"]);
}

// ---------------------------------------------------------------------------
// Scale.

#[test]
fn large_linearizable_history_needs_few_states() {
    for seed in 0..3 {
        let mut rng = Rng::new(99 + seed);
        let shape = Shape {
            ops: 5_000,
            keys: &["k"],
            values: Some(&["0", "1", "2", "3"]),
            spacing: 10,
            jitter: 30,
            unknown_percent: 2,
        };
        let h = build(&atomic_history(&mut rng, shape));
        let started = std::time::Instant::now();
        // The budget is per key and close to the op count: the memoized
        // search barely backtracks on realistic histories.
        let outcome = h.check_with_budget(4 * shape.ops);
        eprintln!("seed {seed}: 5000 ops on one key checked in {:?}", started.elapsed());
        assert_eq!(outcome, Ok(CheckOutcome::Linearizable), "seed {seed}");
    }
}

#[test]
fn violations_among_many_unknown_ops_are_found() {
    for seed in 0..5 {
        let mut rng = Rng::new(31_337 + seed);
        let shape = Shape { ops: 1_000, keys: &["k"], values: None, spacing: 10, jitter: 20, unknown_percent: 10 };
        let mut ops = atomic_history(&mut rng, shape);
        assert!(build(&ops).check().is_ok(), "seed {seed}");
        let (g, kind) = corrupt_one_read(&mut rng, &mut ops).unwrap();
        let started = std::time::Instant::now();
        let result = build(&ops).check_with_budget(DEFAULT_MAX_STATES);
        eprintln!("seed {seed}: {kind} among ~100 unknown ops found in {:?}", started.elapsed());
        match result {
            Err(v) => assert_eq!(Some(v.cut), ops[g].return_time(), "seed {seed}: {kind}"),
            Ok(outcome) => panic!("seed {seed}: {kind} not detected: {outcome:?}"),
        }
    }
}

#[test]
fn large_history_with_late_violation_is_rejected_and_minimized() {
    let mut rng = Rng::new(4242);
    let shape = Shape { ops: 3_000, keys: &["k"], values: None, spacing: 10, jitter: 20, unknown_percent: 0 };
    let mut ops = atomic_history(&mut rng, shape);
    // Make the read closest to op 2500 stale: it returns the value written
    // by a put that was followed by another completed put.
    let g = (2_500..ops.len()).find(|&i| matches!(ops[i].op, KvOp::Get { .. })).unwrap();
    let w2 = (0..g)
        .rev()
        .find(|&i| matches!(ops[i].op, KvOp::Put { .. }) && ops[i].return_time().unwrap() < ops[g].call)
        .unwrap();
    let old = (0..w2)
        .rev()
        .find_map(|i| match &ops[i].op {
            KvOp::Put { value, .. } if ops[i].return_time().unwrap() < ops[w2].call => Some(value.clone()),
            _ => None,
        })
        .unwrap();
    set_read(&mut ops[g], Some(old));
    let h = build(&ops);

    let started = std::time::Instant::now();
    let v = h.check_with_budget(200_000).unwrap_err();
    eprintln!("violation found and minimized in {:?}", started.elapsed());
    assert_eq!(Some(v.cut), ops[g].return_time());
    assert_eq!(v.ops_on_key, 3_000);
    assert!(v.ops.len() < 2_600, "{}", v.ops.len());
    assert_eq!(v.longest_partial.as_ref().and_then(|p| p.blocked_by), Some(OpId(g)));
    let text = v.to_string();
    assert!(text.contains("omitted"), "{text}");
    assert!(text.contains(&format!("#{g} ")), "{text}");
    assert!(text.lines().count() < 60, "{text}");
}
