//! Linearizability checker for key-value histories.
//!
//! A [`History`] records the operations that clients issued against a
//! replicated key-value store: when each one was called, and either when it
//! returned (with its output) or that its outcome is unknown. [`History::check`]
//! decides whether some sequential execution of an atomic key-value store
//! explains everything that was observed, respecting real time: if operation
//! `a` returned before operation `b` was called, `a` must take effect before
//! `b`.
//!
//! # What the checker promises
//!
//! * **Sound**: it never rejects a linearizable history. Every
//!   [`LinearizabilityError::NotLinearizable`] is backed by an exhaustive
//!   search that found no linearization.
//! * **Complete within the budget**: if the search for a key finishes within
//!   its state budget, the answer for that key is exact, so every
//!   non-linearizable history is rejected. If the budget runs out first, the
//!   result is [`CheckOutcome::Inconclusive`] (or
//!   [`LinearizabilityError::Inconclusive`] from [`History::check`]), never a
//!   guess and never an endless loop.
//!
//! # Unknown outcomes
//!
//! An operation whose client gave up ([`History::timed_out`]), or that had
//! not completed when the history was checked, has an
//! [`Outcome::Unknown`] outcome. It may have taken effect at any single point
//! after its call, or never: its return time is treated as +infinity and any
//! output is accepted for it. A history is linearizable if every *returned*
//! operation can be linearized, together with any subset of the unknown ones.
//!
//! # Timing
//!
//! Times are plain `u64`s in any monotonic unit shared by all clients.
//! Intervals are closed: an operation called at the very instant another one
//! returned counts as concurrent with it. Operations may be recorded in any
//! order.
//!
//! # Algorithm
//!
//! Every operation touches exactly one key, and a key-value store is
//! linearizable iff each key's sub-history is (locality), so the history is
//! split by key. Each key is then checked with the Wing & Gong search as
//! improved by Lowe: a depth-first search that repeatedly linearizes a
//! *minimal* pending operation (one called no later than the earliest return
//! among the returned operations not yet linearized), applies it to a model
//! register, and backtracks when a returned operation can no longer be
//! placed. Visited (linearized set, register value) configurations are
//! memoized in a hash set (the linearized set is a `u64` bitset stored
//! around its frontier), which keeps the search close to linear for
//! histories that are mostly sequential with bounded concurrency.
//!
//! Unknown operations can be linearized anywhere after their call, which
//! makes a naive search exponential in their number. Exact reductions keep
//! this in check (see `search` in the source): a configuration with a subset
//! of another's linearized unknown operations dominates it; unknown
//! operations are only placed right before a returned operation that needs
//! them; values no operation can observe are merged; and interchangeable
//! unknown operations are used in call order.
//!
//! The search is exponential in the worst case (the problem is NP-complete):
//! many mutually concurrent operations (tens) or many unknown writes in a
//! long *non*-linearizable history can exhaust the budget. Linearizable
//! histories are usually decided quickly either way, since the search stops
//! at the first linearization.
//!
//! When a key fails, the checker also looks for the shortest failing prefix
//! of that key's history (by time) to make the report small: see
//! [`Violation`].
//!
//! # Example
//!
//! ```
//! use raft_tests::linearizability::{History, KvOp, KvOutput};
//!
//! let mut h = History::new();
//! let put = h.call(1, KvOp::put("x", "1"), 0);
//! let get = h.call(2, KvOp::get("x"), 1);
//! h.returned(put, KvOutput::Put, 5);
//! h.returned(get, KvOutput::get(Some("1")), 6);
//! assert!(h.check().is_ok());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

#[cfg(test)]
mod tests;

/// Stands for a value that no operation in the history could observe, in
/// [`PartialLinearization::value`]: the checker does not distinguish such
/// values.
pub const UNOBSERVABLE_VALUE: &str = "<a value no operation observed>";

/// Default per-key state budget used by [`History::check`].
///
/// A search state costs roughly 250 bytes of memory and, on hard histories,
/// a few microseconds, so exhausting this budget takes a few hundred
/// megabytes and a few seconds per key. Realistic linearizable histories need
/// about one state per operation.
pub const DEFAULT_MAX_STATES: usize = 1_000_000;

pub use raft_host::kv::{KvOp, KvOutput};

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client received `output` at time `at`.
    Returned {
        /// Return time.
        at: u64,
        /// The output the client received.
        output: KvOutput,
    },
    /// The client never learnt the result (timed out, or still pending when
    /// the history was checked). The operation may have taken effect at any
    /// time after its call, or never.
    Unknown,
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued the operation.
    pub client: u64,
    /// The operation.
    pub op: KvOp,
    /// Call (invocation) time.
    pub call: u64,
    /// Return time and output, or unknown.
    pub outcome: Outcome,
}

impl Operation {
    /// The return time, `None` if the outcome is unknown.
    pub fn return_time(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Returned { at, .. } => Some(at),
            Outcome::Unknown => None,
        }
    }
}

/// Identifies an operation in a [`History`]: its index in recording order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(usize);

impl OpId {
    /// Position of the operation in [`History::operations`].
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A concurrent history of key-value operations.
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `op` at time `at`. Until
    /// [`returned`](Self::returned) is called for it, its outcome is unknown.
    pub fn call(&mut self, client: u64, op: KvOp, at: u64) -> OpId {
        self.ops.push(Operation { client, op, call: at, outcome: Outcome::Unknown });
        OpId(self.ops.len() - 1)
    }

    /// Records that operation `id` returned `output` at time `at`.
    ///
    /// May follow [`timed_out`](Self::timed_out) (a late reply still tells
    /// what happened).
    ///
    /// # Panics
    ///
    /// If the operation already returned, if `at` is before its call time, or
    /// if `output` is not the kind of output its operation produces. These
    /// are bugs in the code recording the history.
    pub fn returned(&mut self, id: OpId, output: KvOutput, at: u64) {
        let op = &mut self.ops[id.0];
        assert!(op.outcome == Outcome::Unknown, "operation {id} ({}) returned twice", op.op);
        assert!(at >= op.call, "operation {id} ({}) returned at {at}, before its call at {}", op.op, op.call);
        assert!(op.op.accepts(&output), "operation {id} ({}) cannot return {output:?}", op.op);
        op.outcome = Outcome::Returned { at, output };
    }

    /// Records that the client of operation `id` gave up waiting: its outcome
    /// is [`Outcome::Unknown`]. (Operations that are still pending when the
    /// history is checked are treated the same way, so this call only
    /// documents intent and catches harness bugs.)
    ///
    /// # Panics
    ///
    /// If the operation already returned.
    pub fn timed_out(&mut self, id: OpId) {
        let op = &self.ops[id.0];
        assert!(op.outcome == Outcome::Unknown, "operation {id} ({}) timed out after it returned", op.op);
    }

    /// Records a complete operation: `call` then `returned`.
    pub fn record(&mut self, client: u64, op: KvOp, call_at: u64, output: KvOutput, return_at: u64) -> OpId {
        let id = self.call(client, op, call_at);
        self.returned(id, output, return_at);
        id
    }

    /// All recorded operations, indexed by [`OpId::index`].
    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    /// The operation with the given id.
    pub fn operation(&self, id: OpId) -> &Operation {
        &self.ops[id.0]
    }

    /// Number of recorded operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks the history with a budget of [`DEFAULT_MAX_STATES`] states per
    /// key. Running out of budget is reported as
    /// [`LinearizabilityError::Inconclusive`].
    pub fn check(&self) -> Result<(), LinearizabilityError> {
        budget_result(self.check_with_budget(DEFAULT_MAX_STATES), DEFAULT_MAX_STATES)
    }

    /// Checks the history, exploring at most `max_states` search states per
    /// key (so the work is bounded by roughly `keys * max_states * ops`).
    ///
    /// Returns `Err` as soon as one key is proven non-linearizable (keys are
    /// checked in sorted order), otherwise `Ok(Linearizable)` or
    /// `Ok(Inconclusive)` listing the keys whose budget ran out.
    pub fn check_with_budget(&self, max_states: usize) -> Result<CheckOutcome, Box<Violation>> {
        let mut by_key: BTreeMap<&str, Vec<OpId>> = BTreeMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            by_key.entry(op.op.key()).or_default().push(OpId(i));
        }
        let mut inconclusive = Vec::new();
        for (key, ids) in by_key {
            let compiled = CompiledKey::new(self, key, ids);
            match search(&compiled.prefix(None), max_states, false) {
                (SearchResult::Linearizable, _) => {}
                (SearchResult::Inconclusive, _) => inconclusive.push(key.to_owned()),
                (SearchResult::NotLinearizable(_), explored) => {
                    return Err(Box::new(compiled.violation(max_states, explored)));
                }
            }
        }
        if inconclusive.is_empty() {
            Ok(CheckOutcome::Linearizable)
        } else {
            Ok(CheckOutcome::Inconclusive { keys: inconclusive })
        }
    }
}

fn budget_result(result: Result<CheckOutcome, Box<Violation>>, max_states: usize) -> Result<(), LinearizabilityError> {
    match result {
        Ok(CheckOutcome::Linearizable) => Ok(()),
        Ok(CheckOutcome::Inconclusive { keys }) => Err(LinearizabilityError::Inconclusive { keys, max_states }),
        Err(violation) => Err(LinearizabilityError::NotLinearizable(violation)),
    }
}

/// Result of [`History::check_with_budget`] when no violation was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// The search budget ran out for these keys (sorted); all other keys are
    /// linearizable.
    Inconclusive {
        /// Keys whose check did not finish.
        keys: Vec<String>,
    },
}

/// Error returned by [`History::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinearizabilityError {
    /// A key's sub-history is not linearizable.
    NotLinearizable(Box<Violation>),
    /// The search budget ran out before an answer was found.
    Inconclusive {
        /// Keys whose check did not finish; every other key is linearizable.
        keys: Vec<String>,
        /// The per-key budget that was exhausted.
        max_states: usize,
    },
}

impl fmt::Display for LinearizabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinearizabilityError::NotLinearizable(v) => v.fmt(f),
            LinearizabilityError::Inconclusive { keys, max_states } => write!(
                f,
                "linearizability check inconclusive: the search budget of {max_states} states \
                 per key ran out for key(s) {keys:?} (no violation was found; the history is \
                 too concurrent to check exhaustively, use History::check_with_budget to \
                 allow more)"
            ),
        }
    }
}

impl std::error::Error for LinearizabilityError {}

/// A proven linearizability violation on one key.
///
/// `ops` is the shortest prefix (by time) of the key's sub-history that is
/// already non-linearizable: every operation on the key called at or before
/// `cut`, where operations that returned after `cut` count as pending
/// (unknown outcome). Any linearization of the whole history would yield one
/// of this prefix, so the prefix alone proves the violation, and the last
/// returned operation in it is involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key whose sub-history is not linearizable.
    pub key: String,
    /// The failing prefix, in call-time order, with the outcomes as recorded.
    pub ops: Vec<(OpId, Operation)>,
    /// End of the failing prefix; outcomes returned after it were ignored.
    pub cut: u64,
    /// Number of operations on the key in the whole history.
    pub ops_on_key: usize,
    /// The longest partial linearization the search found for the prefix.
    pub longest_partial: Option<PartialLinearization>,
}

/// The deepest point the search reached: `order` was applied successfully,
/// then `blocked_by` returned before it could be linearized and no
/// alternative worked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialLinearization {
    /// Operations applied, in linearization order.
    pub order: Vec<OpId>,
    /// The key's value after applying `order` (`None`: absent), possibly
    /// [`UNOBSERVABLE_VALUE`].
    pub value: Option<String>,
    /// A returned operation that could not be placed after `order`.
    pub blocked_by: Option<OpId>,
}

impl Violation {
    /// Operations worth printing: everything for short prefixes, otherwise
    /// the tail of the prefix plus the operations the search got stuck on.
    fn shown(&self) -> Vec<bool> {
        const SHOW_ALL: usize = 40;
        const TAIL: usize = 20;
        let n = self.ops.len();
        if n <= SHOW_ALL {
            return vec![true; n];
        }
        let mut shown = vec![false; n];
        for s in &mut shown[n - TAIL..] {
            *s = true;
        }
        let pos: HashMap<OpId, usize> = self.ops.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
        if let Some(p) = &self.longest_partial {
            for id in p.order.iter().rev().take(5) {
                shown[pos[id]] = true;
            }
            if let Some(blocked) = p.blocked_by {
                let b = pos[&blocked];
                shown[b] = true;
                // The most recent writers of the value the blocked op observed.
                let observed = match &self.ops[b].1.outcome {
                    Outcome::Returned {
                        output: KvOutput::Get(Some(v)) | KvOutput::Cas { current: Some(v), .. },
                        ..
                    } => Some(v),
                    _ => None,
                };
                if let Some(v) = observed {
                    let writers = self.ops.iter().enumerate().filter(
                        |(_, (_, o))| matches!(&o.op, KvOp::Put { value: w, .. } | KvOp::Cas { new: w, .. } if w == v),
                    );
                    for (i, _) in writers.collect::<Vec<_>>().into_iter().rev().take(3) {
                        shown[i] = true;
                    }
                }
            }
        }
        shown
    }

    fn fmt_op(&self, f: &mut fmt::Formatter<'_>, id: OpId, op: &Operation) -> fmt::Result {
        write!(f, "  {id} client {}: {}", op.client, op.op)?;
        match &op.outcome {
            Outcome::Returned { at, output } => {
                write!(f, " -> {output}  [call {}, return {at}", op.call)?;
                if *at > self.cut {
                    f.write_str(", after the cut: treated as pending")?;
                }
                f.write_str("]")?;
            }
            Outcome::Unknown => {
                write!(f, " -> ?  [call {}, no return: outcome unknown]", op.call)?;
            }
        }
        if self.longest_partial.as_ref().and_then(|p| p.blocked_by) == Some(id) {
            f.write_str("  <-- could not be linearized")?;
        }
        writeln!(f)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history is not linearizable on key {:?}", self.key)?;
        writeln!(
            f,
            "smallest failing sub-history found: the {} operation(s) on this key called at or \
             before time {} (out of {} on the key); outcomes returned after {} are treated as \
             unknown",
            self.ops.len(),
            self.cut,
            self.ops_on_key,
            self.cut
        )?;
        if let Some(p) = &self.longest_partial {
            write!(
                f,
                "longest partial linearization: {} operation(s), leaving the key {}",
                p.order.len(),
                match &p.value {
                    Some(v) if v == UNOBSERVABLE_VALUE => format!("= {v}"),
                    Some(v) => format!("= {v:?}"),
                    None => "absent".to_owned(),
                }
            )?;
            if !p.order.is_empty() {
                let tail: Vec<String> = p.order.iter().rev().take(5).rev().map(ToString::to_string).collect();
                let more = if p.order.len() > 5 { "..., " } else { "" };
                write!(f, " (order: {more}{})", tail.join(", "))?;
            }
            if let Some(b) = p.blocked_by {
                write!(f, "; then {b} returned and could not be placed")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "operations (by call time):")?;
        let shown = self.shown();
        let mut omitted = 0;
        for ((id, op), show) in self.ops.iter().zip(shown) {
            if !show {
                omitted += 1;
                continue;
            }
            if omitted > 0 {
                writeln!(f, "  ... {omitted} operation(s) omitted ...")?;
                omitted = 0;
            }
            self.fmt_op(f, *id, op)?;
        }
        if omitted > 0 {
            writeln!(f, "  ... {omitted} operation(s) omitted ...")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

// ---------------------------------------------------------------------------
// Per-key model with interned values.

/// Interned value of one key.
type Val = u32;
/// Model state: the key's value, `None` when absent.
type State = Option<Val>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MOp {
    Put(Val),
    Get,
    Delete,
    Cas { expected: Option<Val>, new: Val },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MOut {
    Put,
    Get(State),
    Delete(bool),
    Cas { swapped: bool, current: State },
}

/// Applies `op` to `state`; returns the new state if the produced output
/// matches `expected` (`None` accepts any output).
fn step(state: State, op: MOp, expected: Option<MOut>) -> Option<State> {
    let (next, out) = match op {
        MOp::Put(v) => (Some(v), MOut::Put),
        MOp::Get => (state, MOut::Get(state)),
        MOp::Delete => (None, MOut::Delete(state.is_some())),
        MOp::Cas { expected, new } => {
            let swapped = state == expected;
            let next = if swapped { Some(new) } else { state };
            (next, MOut::Cas { swapped, current: next })
        }
    };
    match expected {
        Some(e) if e != out => None,
        _ => Some(next),
    }
}

#[derive(Clone, Copy, Debug)]
struct KeyOp {
    /// Index into `CompiledKey::entries`.
    src: usize,
    call: u64,
    /// `None`: unknown outcome (return at +infinity, any output).
    ret: Option<u64>,
    op: MOp,
    out: Option<MOut>,
}

/// Interns one key's values as small integers, mapping every value that no
/// operation can observe to one shared placeholder.
///
/// A value is observable if it is the output of a returned read or CAS, or
/// the expected value of a CAS. No check can tell unobservable values apart
/// (a read or CAS returning one would be returning an observable value, and a
/// CAS comparing with one would be expecting it), so renaming them all to one
/// value maps linearizations to linearizations in both directions. Merging
/// them shrinks the state space, and makes unknown writes of such values
/// interchangeable (see [`search`]).
#[derive(Debug)]
struct Interner<'h> {
    ids: HashMap<&'h str, Val>,
    values: Vec<&'h str>,
    observable: HashSet<&'h str>,
}

impl<'h> Interner<'h> {
    fn new(ops: &[(OpId, &'h Operation)]) -> Self {
        let mut observable = HashSet::new();
        for (_, op) in ops {
            if let KvOp::Cas { expected: Some(v), .. } = &op.op {
                observable.insert(v.as_str());
            }
            if let Outcome::Returned {
                output: KvOutput::Get(Some(v)) | KvOutput::Cas { current: Some(v), .. }, ..
            } = &op.outcome
            {
                observable.insert(v.as_str());
            }
        }
        Interner { ids: HashMap::new(), values: Vec::new(), observable }
    }

    fn id(&mut self, s: &'h str) -> Val {
        let s = if self.observable.contains(s) { s } else { UNOBSERVABLE_VALUE };
        *self.ids.entry(s).or_insert_with(|| {
            self.values.push(s);
            Val::try_from(self.values.len() - 1).expect("more than 2^32 distinct values")
        })
    }

    fn opt(&mut self, s: &'h Option<String>) -> State {
        s.as_deref().map(|s| self.id(s))
    }
}

/// One key's sub-history, with values interned.
#[derive(Debug)]
struct CompiledKey<'h> {
    key: &'h str,
    /// The key's operations sorted by (call time, id).
    entries: Vec<(OpId, &'h Operation)>,
    /// Parallel to `entries`.
    ops: Vec<KeyOp>,
    /// Interned value -> string.
    values: Vec<&'h str>,
}

impl<'h> CompiledKey<'h> {
    fn new(history: &'h History, key: &'h str, ids: Vec<OpId>) -> Self {
        let mut entries: Vec<(OpId, &'h Operation)> = ids.into_iter().map(|id| (id, &history.ops[id.0])).collect();
        entries.sort_by_key(|&(id, op)| (op.call, id));
        let mut names = Interner::new(&entries);
        let ops = entries
            .iter()
            .enumerate()
            .map(|(src, &(_, op))| {
                let mop = match &op.op {
                    KvOp::Put { value, .. } => MOp::Put(names.id(value)),
                    KvOp::Get { .. } => MOp::Get,
                    KvOp::Delete { .. } => MOp::Delete,
                    KvOp::Cas { expected, new, .. } => MOp::Cas { expected: names.opt(expected), new: names.id(new) },
                    other => panic!("the checker does not model {other}"),
                };
                let (ret, out) = match &op.outcome {
                    Outcome::Returned { at, output } => {
                        let out = match output {
                            KvOutput::Put => MOut::Put,
                            KvOutput::Get(v) => MOut::Get(names.opt(v)),
                            KvOutput::Delete { existed } => MOut::Delete(*existed),
                            KvOutput::Cas { swapped, current } => {
                                MOut::Cas { swapped: *swapped, current: names.opt(current) }
                            }
                            other => panic!("the checker does not model {other}"),
                        };
                        (Some(*at), Some(out))
                    }
                    Outcome::Unknown => (None, None),
                };
                KeyOp { src, call: op.call, ret, op: mop, out }
            })
            .collect();
        CompiledKey { key, entries, ops, values: names.values }
    }

    /// The operations called at or before `cut` (all if `None`), with
    /// outcomes returned after `cut` turned into unknown ones. Unknown reads
    /// are dropped: they never constrain anything.
    fn prefix(&self, cut: Option<u64>) -> Vec<KeyOp> {
        self.ops
            .iter()
            .filter(|o| cut.is_none_or(|c| o.call <= c))
            .map(|&o| match (cut, o.ret) {
                (Some(c), Some(r)) if r > c => KeyOp { ret: None, out: None, ..o },
                _ => o,
            })
            .filter(|o| o.ret.is_some() || o.op != MOp::Get)
            .collect()
    }

    /// Builds the report for a key whose full sub-history failed.
    ///
    /// Prefix failure is monotone in the cut (a linearization of a longer
    /// prefix restricts to one of a shorter prefix), and only a return can
    /// make a prefix fail, so binary search over return times finds the
    /// shortest failing prefix. Each probe gets a budget of about twice what
    /// refuting the whole sub-history took (`explored`), so reporting costs
    /// at most a few times the check; probes that run out count as passing,
    /// which only makes the reported prefix longer.
    fn violation(&self, max_states: usize, explored: usize) -> Violation {
        let mut rets: Vec<u64> = self.ops.iter().filter_map(|o| o.ret).collect();
        rets.sort_unstable();
        rets.dedup();
        let probe_budget = max_states.min(explored.saturating_mul(2).saturating_add(10_000));
        let fails = |cut: u64| {
            matches!(search(&self.prefix(Some(cut)), probe_budget, false).0, SearchResult::NotLinearizable(_))
        };
        let cut = if rets.is_empty() {
            u64::MAX
        } else {
            let (mut lo, mut hi) = (0, rets.len() - 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if fails(rets[mid]) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            rets[hi]
        };
        let prefix = self.prefix(Some(cut));
        let to_id = |i: usize| self.entries[prefix[i].src].0;
        let longest_partial = match search(&prefix, max_states, true).0 {
            SearchResult::NotLinearizable(Some(deepest)) => Some(PartialLinearization {
                order: deepest.order.iter().map(|&i| to_id(i)).collect(),
                value: deepest.state.map(|v| self.values[v as usize].to_owned()),
                blocked_by: deepest.blocked_by.map(to_id),
            }),
            _ => None,
        };
        Violation {
            key: self.key.to_owned(),
            ops: self.entries.iter().filter(|(_, op)| op.call <= cut).map(|&(id, op)| (id, op.clone())).collect(),
            cut,
            ops_on_key: self.entries.len(),
            longest_partial,
        }
    }
}

// ---------------------------------------------------------------------------
// The search.

#[derive(Debug)]
enum SearchResult {
    Linearizable,
    /// With the deepest point reached, when diagnostics were requested.
    NotLinearizable(Option<Deepest>),
    Inconclusive,
}

/// Deepest point of a failed search (indices into the searched ops).
#[derive(Debug)]
struct Deepest {
    order: Vec<usize>,
    state: State,
    blocked_by: Option<usize>,
}

/// A set of operations (bit `i` = the `i`-th operation of its class in call
/// order), stored as the index of its first word that is not all ones plus
/// the words from there to the last non-zero one. A mostly-sequential search
/// linearizes roughly in call order, so this keeps only the few words around
/// its frontier.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Packed {
    lo: u32,
    words: Words,
}

/// The stored words of a [`Packed`]; up to two (the common case) without
/// allocating. Canonical: `Inline` iff there are at most two words, and
/// unused inline words are zero.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Words {
    Inline(u8, [u64; 2]),
    Heap(Box<[u64]>),
}

impl Packed {
    fn new(lo: usize, words: &[u64]) -> Self {
        let words = match *words {
            [] => Words::Inline(0, [0; 2]),
            [a] => Words::Inline(1, [a, 0]),
            [a, b] => Words::Inline(2, [a, b]),
            _ => Words::Heap(words.into()),
        };
        Packed { lo: u32::try_from(lo).expect("history too long"), words }
    }

    fn words(&self) -> &[u64] {
        match &self.words {
            Words::Inline(len, words) => &words[..usize::from(*len)],
            Words::Heap(words) => words,
        }
    }

    fn word(&self, i: usize) -> u64 {
        let lo = self.lo as usize;
        if i < lo { u64::MAX } else { self.words().get(i - lo).copied().unwrap_or(0) }
    }

    fn is_subset(&self, other: &Packed) -> bool {
        // Below `self.lo` self is all ones, so other must be too.
        self.lo <= other.lo && self.words().iter().enumerate().all(|(j, &w)| w & !other.word(self.lo as usize + j) == 0)
    }
}

/// Bitset tracking the range of words that are neither all ones nor zero.
#[derive(Debug)]
struct BitSet {
    words: Vec<u64>,
    /// Index of the first word that is not all ones.
    lo: usize,
    /// One past the last non-zero word.
    hi: usize,
}

impl BitSet {
    fn new(n: usize) -> Self {
        BitSet { words: vec![0; n.div_ceil(64)], lo: 0, hi: 0 }
    }

    fn insert(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] |= 1 << (i % 64);
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
        self.hi = self.hi.max(w + 1);
    }

    fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    fn remove(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] &= !(1 << (i % 64));
        self.lo = self.lo.min(w);
        while self.hi > 0 && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }

    fn packed(&self) -> Packed {
        Packed::new(self.lo, &self.words[self.lo..self.hi.max(self.lo)])
    }
}

/// Doubly linked list with a sentinel whose removals and reinsertions follow
/// the "dancing links" discipline: reinsertions must undo removals in LIFO
/// order.
#[derive(Debug)]
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Links {
    /// Links `order` (distinct nodes below `sentinel`) in sequence.
    fn new(sentinel: usize, order: impl IntoIterator<Item = usize>) -> Self {
        let mut links = Links { next: vec![sentinel; sentinel + 1], prev: vec![sentinel; sentinel + 1] };
        let mut last = sentinel;
        for node in order {
            links.next[last] = node;
            links.prev[node] = last;
            last = node;
        }
        links.next[last] = sentinel;
        links.prev[sentinel] = last;
        links
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        self.prev[n] = x;
    }
}

/// Search configuration apart from the set of linearized unknown ops: the
/// set of linearized returned ops, the register value, and the value before
/// the current run of unknown ops (`None` if the last op placed returned).
type ConfigKey = (Packed, State, Option<State>);

/// Memo of explored configurations: for each [`ConfigKey`], the minimal sets
/// of linearized unknown ops seen with it.
///
/// A configuration is dominated by an explored one with the same key and a
/// subset of its unknown ops: any completion of the former is a completion
/// of the latter (unknown ops may stay unplaced and never constrain others).
/// So dominated configurations are skipped. This is sound even when the
/// dominating configuration is still on the DFS stack: if some explored
/// configuration had a completion the search missed, take one with the
/// shortest; the first step of that completion leads to an explored or
/// dominated configuration with a shorter completion, a contradiction.
type Memo = HashMap<ConfigKey, Vec<Packed>, BuildHasherDefault<FxHasher>>;

/// Records a configuration; false if it is dominated by an explored one.
fn admit(memo: &mut Memo, key: ConfigKey, unknown: Packed) -> bool {
    let sets = memo.entry(key).or_insert_with(|| Vec::with_capacity(1));
    if sets.iter().any(|seen| seen.is_subset(&unknown)) {
        return false;
    }
    sets.retain(|seen| !unknown.is_subset(seen));
    sets.push(unknown);
    true
}

/// Unknown ops grouped by identical operation, for the symmetry rules of
/// [`search`]. Within a group, linearized members always form a prefix in
/// call order.
#[derive(Debug)]
struct Twins {
    /// Group of each unknown op.
    group: Vec<usize>,
    /// Members of each group in call order, with the group's op.
    members: Vec<(MOp, Vec<(usize, u64)>)>,
    /// How many members of each group are linearized.
    used: Vec<usize>,
    by_op: HashMap<MOp, usize>,
}

impl Twins {
    /// `unknown`: (operation, call time) of each unknown op, in call order.
    fn new(unknown: impl Iterator<Item = (MOp, u64)>) -> Self {
        let mut twins = Twins { group: Vec::new(), members: Vec::new(), used: Vec::new(), by_op: HashMap::new() };
        for (k, (op, call)) in unknown.enumerate() {
            let g = *twins.by_op.entry(op).or_insert_with(|| {
                twins.members.push((op, Vec::new()));
                twins.used.push(0);
                twins.members.len() - 1
            });
            twins.members[g].1.push((k, call));
            twins.group.push(g);
        }
        twins
    }

    /// Whether `k` is the first member of its group not linearized yet.
    fn is_next(&self, k: usize) -> bool {
        let g = self.group[k];
        self.members[g].1.get(self.used[g]).is_some_and(|&(m, _)| m == k)
    }

    /// Whether an unknown CAS doing what `op` would do from `state` is
    /// available (called by `bound`): a put can do everything such a CAS can,
    /// so the CAS must be used first.
    fn narrower_available(&self, op: MOp, state: State, bound: u64) -> bool {
        let MOp::Put(new) = op else { return false };
        let cas = MOp::Cas { expected: state, new };
        self.by_op
            .get(&cas)
            .is_some_and(|&g| self.members[g].1.get(self.used[g]).is_some_and(|&(_, call)| call <= bound))
    }

    fn place(&mut self, k: usize) {
        self.used[self.group[k]] += 1;
    }

    fn unplace(&mut self, k: usize) {
        self.used[self.group[k]] -= 1;
    }
}

/// An operation of the search, by class and position within its class.
#[derive(Clone, Copy, Debug)]
enum Cand {
    Returned(usize),
    Unknown(usize),
}

/// Where the scan for the next candidate stands.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// At a node of the returned ops' event list.
    Returned(usize),
    /// At a node of the unknown ops' list; the second field is the first
    /// return event (or the sentinel), which bounds the call times of
    /// candidates.
    Unknown(usize, usize),
}

/// Searches for a linearization of one key's operations (sorted by call
/// time), exploring at most `max_states` configurations. Also returns the
/// number of configurations explored.
///
/// Returned ops live in a time-ordered list of call and return events (node
/// `2p` is the call of the `p`-th returned op, `2p + 1` its return); unknown
/// ops in a call-ordered list. Linearized ops are unlinked. The candidates
/// are the returned ops whose call event precedes the first remaining return
/// event, then the unknown ops called no later than that return, most recent
/// first (older ones are more likely to have never taken effect); returned
/// ones are tried first so that unknown ops are only used when needed.
///
/// Only linearizations in a normal form are explored: every run of unknown
/// ops is immediately followed by a returned op that would *not* succeed
/// without that run. This loses nothing: if the returned op `r` after a run
/// would also succeed from the value before the run, then `r` leaves the
/// same value either way (a put or delete overwrites it, a read or CAS
/// reports it), so deleting the run from the linearization keeps it valid;
/// trailing runs can be deleted too. For the same reason a run never
/// contains an unknown op that leaves the value unchanged, nor one that
/// brings it back to what it was before the run.
///
/// Identical unknown ops (same operation after [`Interner`] merged the
/// unobservable values; typically deletes, and writes nobody read) are
/// interchangeable, so they are linearized in call order: an unknown op is a
/// candidate only once its previous twin is linearized. Likewise an unknown
/// `put(v)` is not used where an unknown `cas(current, v)` is available.
/// Exchanging the ops in a linearization keeps it valid, since the
/// earlier-called twin (or the put) can do whatever the other did, wherever
/// it did it; and every exchange moves the linearization closer to the
/// preferred order, so a preferred linearization always exists.
///
/// Without these two rules, every unknown op could be slotted in anywhere
/// and refuting a history with a few dozen unknown ops would take
/// exponential time.
fn search(ops: &[KeyOp], max_states: usize, diagnose: bool) -> (SearchResult, usize) {
    let returned: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_some()).collect();
    let unknown: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_none()).collect();
    let ret = |p: usize| ops[returned[p]].ret.unwrap_or(u64::MAX);
    let mut twins = Twins::new(unknown.iter().map(|&i| (ops[i].op, ops[i].call)));

    // (time, is_return, node): calls sort before returns at equal times,
    // making closed intervals that touch count as concurrent.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * returned.len());
    for (p, &i) in returned.iter().enumerate() {
        events.push((ops[i].call, false, 2 * p));
        events.push((ret(p), true, 2 * p + 1));
    }
    events.sort_unstable();
    let r_head = 2 * returned.len();
    let mut r_list = Links::new(r_head, events.iter().map(|&(_, _, node)| node));
    let u_head = unknown.len();
    let mut u_list = Links::new(u_head, 0..unknown.len());
    let first_return = |r_list: &Links| {
        let mut node = r_list.next[r_head];
        while node != r_head && node.is_multiple_of(2) {
            node = r_list.next[node];
        }
        node
    };

    // The last unknown op called by `bound` that is not linearized yet.
    let unknown_calls: Vec<u64> = unknown.iter().map(|&i| ops[i].call).collect();
    let latest_unplaced = |bound: u64, placed_u: &BitSet| {
        let mut k = unknown_calls.partition_point(|&call| call <= bound);
        while k > 0 {
            k -= 1;
            if !placed_u.contains(k) {
                return k;
            }
        }
        u_head
    };
    let mut placed_r = BitSet::new(returned.len());
    let mut placed_u = BitSet::new(unknown.len());
    let mut memo = Memo::default();
    let mut explored = 0usize;
    // (op linearized, state and run start before it)
    let mut stack: Vec<(Cand, State, Option<State>)> = Vec::new();
    let mut state: State = None;
    // The value before the current run of unknown ops, if one is open.
    let mut run_start: Option<State> = None;
    let mut unplaced_returned = returned.len();
    let mut deepest: Option<Deepest> = None;
    let mut cursor = Cursor::Returned(r_list.next[r_head]);
    loop {
        if unplaced_returned == 0 {
            return (SearchResult::Linearizable, explored);
        }
        let cand = match cursor {
            Cursor::Returned(node) if node != r_head && node.is_multiple_of(2) => Cand::Returned(node / 2),
            Cursor::Returned(node) => {
                // The first return event: no later call is a candidate.
                let bound = if node == r_head { u64::MAX } else { ret(node / 2) };
                cursor = Cursor::Unknown(latest_unplaced(bound, &placed_u), node);
                continue;
            }
            Cursor::Unknown(k, _) if k != u_head => Cand::Unknown(k),
            Cursor::Unknown(_, limit) => {
                // No candidate left: the op returning at `limit` cannot be
                // linearized after the current prefix. Backtrack.
                if diagnose && deepest.as_ref().is_none_or(|d| stack.len() > d.order.len()) {
                    deepest = Some(Deepest {
                        order: stack.iter().map(|&(c, _, _)| op_index(c, &returned, &unknown)).collect(),
                        state,
                        blocked_by: (limit != r_head).then(|| returned[limit / 2]),
                    });
                }
                let Some((cand, before, before_run)) = stack.pop() else {
                    return (SearchResult::NotLinearizable(deepest), explored);
                };
                state = before;
                run_start = before_run;
                cursor = match cand {
                    Cand::Returned(p) => {
                        placed_r.remove(p);
                        r_list.relink(2 * p + 1);
                        r_list.relink(2 * p);
                        unplaced_returned += 1;
                        Cursor::Returned(r_list.next[2 * p])
                    }
                    Cand::Unknown(k) => {
                        placed_u.remove(k);
                        twins.unplace(k);
                        u_list.relink(k);
                        Cursor::Unknown(u_list.prev[k], first_return(&r_list))
                    }
                };
                continue;
            }
        };
        let op = &ops[op_index(cand, &returned, &unknown)];
        let next_run = match cand {
            Cand::Returned(_) => None,
            Cand::Unknown(_) => Some(run_start.unwrap_or(state)),
        };
        let canonical = |next_state: &State| match (cand, run_start) {
            (Cand::Returned(_), None) => true,
            (Cand::Returned(_), Some(before_run)) => step(before_run, op.op, op.out).is_none(),
            (Cand::Unknown(k), _) => {
                let bound = match cursor {
                    Cursor::Unknown(_, limit) if limit != r_head => ret(limit / 2),
                    _ => u64::MAX,
                };
                *next_state != state
                    && Some(*next_state) != next_run
                    && twins.is_next(k)
                    && !twins.narrower_available(op.op, state, bound)
            }
        };
        if let Some(next_state) = step(state, op.op, op.out).filter(canonical) {
            match cand {
                Cand::Returned(p) => placed_r.insert(p),
                Cand::Unknown(k) => {
                    placed_u.insert(k);
                    twins.place(k);
                }
            }
            let key = (placed_r.packed(), next_state, next_run);
            if admit(&mut memo, key, placed_u.packed()) {
                explored += 1;
                if explored > max_states {
                    return (SearchResult::Inconclusive, max_states);
                }
                stack.push((cand, state, run_start));
                state = next_state;
                run_start = next_run;
                match cand {
                    Cand::Returned(p) => {
                        r_list.unlink(2 * p);
                        r_list.unlink(2 * p + 1);
                        unplaced_returned -= 1;
                    }
                    Cand::Unknown(k) => u_list.unlink(k),
                }
                cursor = Cursor::Returned(r_list.next[r_head]);
                continue;
            }
            match cand {
                Cand::Returned(p) => placed_r.remove(p),
                Cand::Unknown(k) => {
                    placed_u.remove(k);
                    twins.unplace(k);
                }
            }
        }
        cursor = match (cand, cursor) {
            (Cand::Returned(p), _) => Cursor::Returned(r_list.next[2 * p]),
            (Cand::Unknown(k), Cursor::Unknown(_, limit)) => Cursor::Unknown(u_list.prev[k], limit),
            (Cand::Unknown(_), Cursor::Returned(_)) => unreachable!("unknown candidate from the returned list"),
        };
    }
}

fn op_index(cand: Cand, returned: &[usize], unknown: &[usize]) -> usize {
    match cand {
        Cand::Returned(p) => returned[p],
        Cand::Unknown(k) => unknown[k],
    }
}

/// A small, fast, non-cryptographic hasher (multiply-rotate with a final
/// mix) for the memo table; inputs are not adversarial.
#[derive(Clone, Copy, Debug, Default)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The SplitMix64 mixer, so every output bit depends on every input.
        raft_core::rng::mix64(self.hash)
    }
}
