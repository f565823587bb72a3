//! The safety checker: Raft's invariants, checked on every simulator step.
//!
//! The checker is fed observations (writes issued and made durable, entries
//! applied, role changes, node state after each step) and keeps just enough
//! history, across crashes, to detect a violation of:
//!
//! 1. election safety: at most one leader per term over the whole run,
//!    across every configuration the cluster went through and every node
//!    it ever had (added nodes included);
//! 2. vote safety: no node durably records two different votes in one term,
//!    and no node's durable term goes down;
//! 3. log matching: an entry `(index, term)` always has the same payload and
//!    the same previous term, on every node, in memory or on disk (by
//!    induction this gives the log matching property);
//! 4. state machine safety: no two nodes, in any lifetime, apply different
//!    entries at one index;
//! 5. each node's apply stream per lifetime starts at 1 and has no gap
//!    (a restored snapshot counts as applying everything it covers);
//! 6. leader completeness: a new leader of term `L` holds every entry that
//!    was applied by a node whose term was below `L` at the time (such an
//!    entry was committed in a term below `L`);
//! 7. a node's commit index never decreases within a lifetime;
//! 8. a node that believes it leads holds the term it claims, and is the
//!    recorded leader of that term;
//! 9. commit quorum: whenever a leader's commit index moves, every entry up
//!    to it is stored durably (in the log or a snapshot) on a majority of the
//!    voters of the configuration it decided under (the one in force before
//!    the step: a leader appends the final configuration right after
//!    committing a joint one), and in a joint configuration on a majority of
//!    the outgoing voters as well;
//! 10. membership: a new leader is a voter of its own configuration or of
//!     the newest one known committed before its term (its own may be the
//!     uncommitted final step of its removal), and is a member of the latter
//!     (a node removed from the cluster, or one still joining, never leads).

use raft_core::{Entry, LogIndex, Membership, Node, NodeId, Payload, Role, SnapshotMeta, Term, Write};
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::fmt;

/// A broken invariant, with the concrete values involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (a short name).
    pub invariant: &'static str,
    /// What was observed.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

fn violation(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

#[derive(Clone, Debug)]
struct Applied {
    term: Term,
    payload: Payload,
    /// The lowest term an applying node had when it applied this index.
    min_applier_term: Term,
    first_by: NodeId,
}

#[derive(Clone, Debug)]
struct Written {
    prev_term: Term,
    payload: Payload,
    by: NodeId,
}

/// Per-node state of the current lifetime.
#[derive(Clone, Debug, Default)]
struct Lifetime {
    last_applied: LogIndex,
    last_commit: LogIndex,
}

/// The checker. Nodes are addressed by index `0..n` and named by id in reports.
#[derive(Debug)]
pub struct Checker {
    leaders: HashMap<Term, NodeId>,
    votes: HashMap<(NodeId, Term), NodeId>,
    durable_term: Vec<Term>,
    written: HashMap<(LogIndex, Term), Written>,
    applied: Vec<Option<Applied>>,
    lifetimes: Vec<Lifetime>,
    /// Each node's configuration after its last step (`None` before its
    /// first step of a lifetime).
    configs: Vec<Option<Membership>>,
    /// The configuration entry of highest index that some node applied.
    committed_config: Option<(LogIndex, Membership)>,
}

impl Checker {
    /// A checker for `n` nodes that have never run.
    pub fn new(n: usize) -> Checker {
        Checker {
            leaders: HashMap::new(),
            votes: HashMap::new(),
            durable_term: vec![Term(0); n],
            written: HashMap::new(),
            applied: Vec::new(),
            lifetimes: vec![Lifetime::default(); n],
            configs: vec![None; n],
            committed_config: None,
        }
    }

    /// A node joins the run as node `n` (the next index).
    pub fn add_node(&mut self) {
        self.durable_term.push(Term(0));
        self.lifetimes.push(Lifetime::default());
        self.configs.push(None);
    }

    /// Node `i` starts a new lifetime (restart after a crash).
    pub fn on_restart(&mut self, i: usize) {
        self.lifetimes[i] = Lifetime::default();
        self.configs[i] = None;
    }

    /// The leader recorded for each term so far, sorted by term.
    pub fn leaders_by_term(&self) -> Vec<(Term, NodeId)> {
        let mut v: Vec<_> = self.leaders.iter().map(|(&t, &n)| (t, n)).collect();
        v.sort();
        v
    }

    /// The newest configuration known committed (applied by some node), with
    /// its index. `None` until the first leader's bootstrap entry is applied.
    pub fn committed_config(&self) -> Option<(LogIndex, &Membership)> {
        self.committed_config.as_ref().map(|(i, m)| (*i, m))
    }

    /// Highest index applied as an entry by any node in any lifetime.
    pub fn max_applied(&self) -> LogIndex {
        LogIndex(self.applied.len() as u64)
    }

    /// The entry applied at `index` (by whichever node applied it first).
    pub fn applied_at(&self, index: LogIndex) -> Option<(Term, &Payload)> {
        let i = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.applied.get(i)?.as_ref().map(|a| (a.term, &a.payload))
    }

    /// Node `i` (id `by`) restored a snapshot into its state machine. Its
    /// apply stream continues after the snapshot, which must not go back, and
    /// the snapshot's last entry must agree with what was applied there.
    pub fn on_restore_snapshot(&mut self, i: usize, by: NodeId, meta: SnapshotMeta) -> Result<(), Violation> {
        let life = &mut self.lifetimes[i];
        if meta.index < life.last_applied {
            return violation(
                "apply order",
                format!("n{by} restored a snapshot up to i{} after applying i{}", meta.index, life.last_applied),
            );
        }
        life.last_applied = meta.index;
        if let Some((t, _)) = self.applied_at(meta.index)
            && t != meta.term
        {
            return violation(
                "state machine safety",
                format!(
                    "n{by} restored a snapshot ending at i{}/t{} but t{t} was applied there",
                    meta.index, meta.term
                ),
            );
        }
        Ok(())
    }

    /// Entries were written (appended to a log in memory or on disk) by `by`;
    /// `prev_term` is the term of the entry just before the first of them.
    pub fn on_written(&mut self, by: NodeId, entries: &[Entry], mut prev_term: Term) -> Result<(), Violation> {
        for e in entries {
            match self.written.get(&(e.index, e.term)) {
                None => {
                    self.written.insert((e.index, e.term), Written { prev_term, payload: e.payload.clone(), by });
                }
                Some(w) => {
                    if w.prev_term != prev_term {
                        return violation(
                            "log matching",
                            format!(
                                "entry i{}/t{} follows an entry of term {} on n{by} but of term {} on n{}",
                                e.index, e.term, prev_term, w.prev_term, w.by
                            ),
                        );
                    }
                    if w.payload != e.payload {
                        return violation(
                            "log matching",
                            format!(
                                "entry i{}/t{} holds {:?} on n{by} but {:?} on n{}",
                                e.index, e.term, e.payload, w.payload, w.by
                            ),
                        );
                    }
                }
            }
            prev_term = e.term;
        }
        Ok(())
    }

    /// A write of node `i` (id `by`) became durable.
    pub fn on_durable(&mut self, i: usize, by: NodeId, write: &Write) -> Result<(), Violation> {
        let Some(hs) = write.hard_state else {
            return Ok(());
        };
        if hs.term < self.durable_term[i] {
            return violation(
                "vote safety",
                format!("n{by} durably stored term {} after term {}", hs.term, self.durable_term[i]),
            );
        }
        self.durable_term[i] = hs.term;
        if let Some(v) = hs.voted_for {
            match self.votes.get(&(by, hs.term)) {
                Some(&old) if old != v => {
                    return violation(
                        "vote safety",
                        format!("n{by} durably voted for n{old} and later for n{v} in term {}", hs.term),
                    );
                }
                Some(_) => {}
                None => {
                    self.votes.insert((by, hs.term), v);
                }
            }
        }
        Ok(())
    }

    /// Node `i` (id `by`, in term `term`) applied `entries`.
    pub fn on_apply(&mut self, i: usize, by: NodeId, term: Term, entries: &[Entry]) -> Result<(), Violation> {
        for e in entries {
            let life = &mut self.lifetimes[i];
            if e.index.0 != life.last_applied.0 + 1 {
                return violation(
                    "apply order",
                    format!("n{by} applied i{} right after i{} in this lifetime", e.index, life.last_applied),
                );
            }
            life.last_applied = e.index;
            let k = (e.index.0 - 1) as usize;
            if self.applied.len() <= k {
                self.applied.resize(k + 1, None);
            }
            match &mut self.applied[k] {
                slot @ None => {
                    if let Payload::Membership(m) = &e.payload
                        && self.committed_config.as_ref().is_none_or(|(i, _)| *i < e.index)
                    {
                        self.committed_config = Some((e.index, (**m).clone()));
                    }
                    *slot = Some(Applied {
                        term: e.term,
                        payload: e.payload.clone(),
                        min_applier_term: term,
                        first_by: by,
                    });
                }
                Some(a) => {
                    if a.term != e.term || a.payload != e.payload {
                        return violation(
                            "state machine safety",
                            format!(
                                "at i{} n{} applied t{} {:?} but n{by} applied t{} {:?}",
                                e.index, a.first_by, a.term, a.payload, e.term, e.payload
                            ),
                        );
                    }
                    a.min_applier_term = a.min_applier_term.min(term);
                }
            }
        }
        Ok(())
    }

    /// A node reported itself leader of `term` (a `RoleChanged` event).
    pub fn on_leader(&mut self, node: &Node, term: Term) -> Result<(), Violation> {
        let id = node.id();
        if node.term() != term || node.role() != Role::Leader {
            return violation(
                "leader term",
                format!("n{id} reported leader of term {term} but is {:?} in term {}", node.role(), node.term()),
            );
        }
        self.record_leader(id, term)?;
        let compacted = node.snapshot_index();
        let mut committed_config = None;
        for (k, a) in self.applied.iter().enumerate() {
            let Some(a) = a else { continue };
            let index = LogIndex(k as u64 + 1);
            if a.min_applier_term >= term {
                continue; // not known committed before this term
            }
            if let Payload::Membership(m) = &a.payload {
                committed_config = Some((index, m));
            }
            if index < compacted {
                continue; // inside the snapshot
            }
            let have = node.log_term(index);
            if have != Some(a.term) {
                return violation(
                    "leader completeness",
                    format!(
                        "n{id} became leader of term {term} without i{index}/t{} (applied by n{} in term {}); its log has {}",
                        a.term,
                        a.first_by,
                        a.min_applier_term,
                        have.map_or("nothing".to_string(), |t| format!("term {t}"))
                    ),
                );
            }
        }
        // A voter of its own configuration, or of the committed one (the
        // final configuration that removes it may be in its log only).
        if !node.membership().is_voter(id) && committed_config.is_none_or(|(_, m)| !m.is_voter(id)) {
            return violation(
                "membership",
                format!(
                    "n{id} became leader of term {term} but is no voter of its configuration {:?} nor of the one committed before, {:?}",
                    node.membership(),
                    committed_config.map(|(_, m)| m)
                ),
            );
        }
        if let Some((index, m)) = committed_config
            && !m.contains(id)
        {
            return violation(
                "membership",
                format!(
                    "n{id} became leader of term {term} but the configuration committed at i{index} before that term, {m:?}, does not include it"
                ),
            );
        }
        Ok(())
    }

    /// Commit quorum (invariant 9), to call after node `i`'s step and
    /// before [`Checker::after_step`]: if the node leads (or led its term
    /// until this step) and its commit index moved, every entry up to the
    /// new commit index must be stored durably on a majority of the voters
    /// (and of the outgoing voters when joint) of the configuration it had
    /// before the step. `stored(node, index, term)` says whether a node's
    /// disk holds that entry (in its log or under its snapshot).
    pub fn check_commit_quorum(
        &self,
        i: usize,
        node: &Node,
        stored: impl Fn(NodeId, LogIndex, Term) -> bool,
    ) -> Result<(), Violation> {
        let id = node.id();
        let (from, commit) = (self.lifetimes[i].last_commit, node.commit_index());
        let led_term = node.role() == Role::Leader || self.leaders.get(&node.term()) == Some(&id);
        // The first step of a lifetime restores a commit index (from the
        // snapshot) that an earlier step of some leader decided.
        let Some(config) = self.configs[i].as_ref() else { return Ok(()) };
        if commit <= from || !led_term {
            return Ok(());
        }
        let halves: [(&str, &BTreeSet<NodeId>); 2] =
            [("voters", &config.voters), ("outgoing voters", &config.outgoing)];
        let mut index = commit;
        while index > from {
            let Some(term) = node.log_term(index) else { break }; // compacted: earlier ones too
            for (half, voters) in halves {
                let holders: Vec<NodeId> = voters.iter().copied().filter(|&v| stored(v, index, term)).collect();
                if !voters.is_empty() && holders.len() * 2 <= voters.len() {
                    return violation(
                        "commit quorum",
                        format!(
                            "n{id} (term {}) committed i{index}/t{term} while only {holders:?} of the {half} {voters:?} stored it durably (configuration {config:?})",
                            node.term()
                        ),
                    );
                }
            }
            index = LogIndex(index.0 - 1);
        }
        Ok(())
    }

    fn record_leader(&mut self, id: NodeId, term: Term) -> Result<(), Violation> {
        match self.leaders.get(&term) {
            Some(&other) if other != id => {
                violation("election safety", format!("n{other} and n{id} were both leader of term {term}"))
            }
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, id);
                Ok(())
            }
        }
    }

    /// Checks node `i` after a step: commit index monotonic in this lifetime,
    /// and a node in the leader role is the recorded leader of its term.
    pub fn after_step(&mut self, i: usize, node: &Node) -> Result<(), Violation> {
        let id = node.id();
        let commit = node.commit_index();
        let life = &mut self.lifetimes[i];
        if commit < life.last_commit {
            return violation(
                "commit monotonic",
                format!("n{id}'s commit index went from i{} down to i{commit}", life.last_commit),
            );
        }
        life.last_commit = commit;
        if self.configs[i].as_ref() != Some(node.membership()) {
            self.configs[i] = Some(node.membership().clone());
        }
        if node.role() == Role::Leader {
            self.record_leader(id, node.term())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Bytes, Config, HardState, Instant, Restored};

    fn entry(i: u64, t: u64, cmd: &str) -> Entry {
        Entry { term: Term(t), index: LogIndex(i), payload: Payload::Command(Bytes::from(cmd)) }
    }

    fn vote(term: u64, v: u64) -> Write {
        let mut w = Write::default();
        w.hard_state = Some(HardState { term: Term(term), voted_for: Some(NodeId(v)), catching_up: false });
        w
    }

    /// A single-node cluster member that has elected itself leader of term 1.
    fn lone_leader(id: u64) -> Node {
        lone_leader_persisting(id, false)
    }

    /// [`lone_leader`], with its writes (the bootstrap configuration at i1)
    /// made durable if `persist`, so that it commits i1.
    fn lone_leader_persisting(id: u64, persist: bool) -> Node {
        let mut n = Node::new(Config::new(NodeId(id), [NodeId(id)]), Restored::fresh(), Instant::ZERO).unwrap();
        let t = n.poll_timeout().unwrap();
        n.handle_timeout(t);
        let mut tokens = Vec::new();
        while let Some(o) = n.poll_output() {
            if let raft_core::Output::Persist(p) = o {
                tokens.push(p.token);
            }
        }
        if persist {
            for token in tokens {
                n.handle_persisted(t, token);
            }
            while n.poll_output().is_some() {}
        }
        assert_eq!(n.role(), Role::Leader);
        n
    }

    #[test]
    fn double_vote_and_term_regression_are_caught() {
        let mut c = Checker::new(2);
        assert!(c.on_durable(0, NodeId(1), &vote(2, 1)).is_ok());
        assert!(c.on_durable(0, NodeId(1), &vote(2, 1)).is_ok(), "the same vote again is fine");
        let e = c.on_durable(0, NodeId(1), &vote(2, 2)).unwrap_err();
        assert_eq!(e.invariant, "vote safety");
        assert!(c.on_durable(1, NodeId(2), &vote(3, 2)).is_ok());
        assert!(c.on_durable(1, NodeId(2), &vote(1, 2)).is_err(), "durable term went down");
    }

    #[test]
    fn log_mismatch_is_caught() {
        let mut c = Checker::new(2);
        assert!(c.on_written(NodeId(1), &[entry(1, 1, "a"), entry(2, 1, "b")], Term(0)).is_ok());
        assert!(c.on_written(NodeId(2), &[entry(2, 1, "b")], Term(1)).is_ok());
        assert!(c.on_written(NodeId(2), &[entry(2, 1, "x")], Term(1)).is_err(), "other payload");
        assert!(c.on_written(NodeId(2), &[entry(2, 1, "b")], Term(0)).is_err(), "other previous term");
    }

    #[test]
    fn apply_gaps_and_disagreement_are_caught() {
        let mut c = Checker::new(2);
        assert!(c.on_apply(0, NodeId(1), Term(1), &[entry(1, 1, "a")]).is_ok());
        assert_eq!(c.on_apply(0, NodeId(1), Term(1), &[entry(3, 1, "c")]).unwrap_err().invariant, "apply order");
        let e = c.on_apply(1, NodeId(2), Term(1), &[entry(1, 1, "z")]).unwrap_err();
        assert_eq!(e.invariant, "state machine safety");
        c.on_restart(0);
        assert!(c.on_apply(0, NodeId(1), Term(1), &[entry(1, 1, "a")]).is_ok(), "a new lifetime starts at 1");
        assert_eq!(c.applied_at(LogIndex(1)).map(|(t, _)| t), Some(Term(1)));
    }

    #[test]
    fn two_leaders_of_one_term_and_incomplete_leaders_are_caught() {
        let mut c = Checker::new(2);
        let (a, b) = (lone_leader(1), lone_leader(2));
        assert!(c.on_leader(&a, Term(1)).is_ok());
        assert!(c.after_step(0, &a).is_ok());
        assert_eq!(c.on_leader(&b, Term(1)).unwrap_err().invariant, "election safety");
        assert!(c.on_leader(&a, Term(2)).is_err(), "a claims a term it is not in");

        // Entries applied before term 1 began are missing from its leader.
        let mut c = Checker::new(2);
        assert!(c.on_apply(1, NodeId(2), Term(0), &[entry(1, 1, "a"), entry(2, 1, "b")]).is_ok());
        let e = c.on_leader(&a, Term(1)).unwrap_err();
        assert_eq!(e.invariant, "leader completeness");
    }

    #[test]
    fn a_commit_without_a_durable_majority_is_caught() {
        let n = lone_leader_persisting(1, true);
        assert_eq!(n.commit_index(), LogIndex(1));
        let mut c = Checker::new(1);
        assert!(c.check_commit_quorum(0, &n, |_, _, _| false).is_ok(), "a lifetime's first step restores");
        assert!(c.after_step(0, &lone_leader(1)).is_ok()); // before its write was durable: commit 0
        let e = c.check_commit_quorum(0, &n, |_, _, _| false).unwrap_err();
        assert_eq!(e.invariant, "commit quorum");
        assert!(c.check_commit_quorum(0, &n, |id, i, t| id == NodeId(1) && i == LogIndex(1) && t == Term(1)).is_ok());
        let mut c = Checker::new(1);
        assert!(c.after_step(0, &n).is_ok());
        assert!(c.check_commit_quorum(0, &n, |_, _, _| false).is_ok(), "nothing newly committed");
    }

    #[test]
    fn a_leader_outside_the_committed_configuration_is_caught() {
        let a = lone_leader(1);
        let mut c = Checker::new(1);
        let others = Payload::Membership(Membership::with_voters([NodeId(2), NodeId(3)]).into());
        let e = Entry { term: Term(1), index: LogIndex(1), payload: others };
        assert!(c.on_apply(0, NodeId(2), Term(0), &[e]).is_ok());
        assert_eq!(c.committed_config().map(|(i, _)| i), Some(LogIndex(1)));
        let e = c.on_leader(&a, Term(1)).unwrap_err();
        assert_eq!(e.invariant, "membership");
        // Known committed only in the leader's own term: no conclusion.
        let mut c = Checker::new(1);
        let others = Payload::Membership(Membership::with_voters([NodeId(2), NodeId(3)]).into());
        let e = Entry { term: Term(1), index: LogIndex(1), payload: others };
        assert!(c.on_apply(0, NodeId(2), Term(1), &[e]).is_ok());
        assert!(c.on_leader(&a, Term(1)).is_ok());
    }
}
