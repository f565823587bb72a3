//! Helpers with the semantics of the MIT 6.5840 Raft tester, in virtual time.
//!
//! "Connected" means a live node whose MIT connected flag is set (partitions
//! made with [`Cluster::partition`] are not considered). Every failure panics
//! through [`Cluster::fail`], so the message carries the seed and the trace tail.

use super::cluster::Cluster;
use raft_core::{Bytes, Duration, Entry, LogIndex, NodeId, Payload, Role, Term};
use std::collections::BTreeMap;

impl Cluster {
    fn connected_live(&self) -> Vec<NodeId> {
        self.ids().into_iter().filter(|&id| self.is_up(id) && self.is_connected(id)).collect()
    }

    /// MIT `checkOneLeader`: up to 10 rounds of running 450-549 ms, then
    /// looking at the connected nodes. Panics if a term has two leaders, or if
    /// no round finds a leader. Returns the leader of the highest term.
    pub fn check_one_leader(&mut self) -> NodeId {
        for _ in 0..10 {
            let ms = 450 + self.helper_rng.below(100);
            self.run_for(Duration::from_millis(ms));
            let mut by_term: BTreeMap<Term, Vec<NodeId>> = BTreeMap::new();
            for (id, term) in self.leaders() {
                by_term.entry(term).or_default().push(id);
            }
            if let Some((term, ids)) = by_term.iter().find(|(_, ids)| ids.len() > 1) {
                self.fail(format_args!("term {term} has {} leaders: {ids:?}", ids.len()));
            }
            if let Some((_, ids)) = by_term.last_key_value() {
                return ids[0];
            }
        }
        self.fail("expected one leader, got none")
    }

    /// MIT `checkTerms`: every connected node has the same term; returns it.
    /// Panics if they disagree or none is connected.
    pub fn check_terms(&self) -> Term {
        let mut term = None;
        for id in self.connected_live() {
            let t = self.node(id).map_or(Term(0), |n| n.term());
            match term {
                None => term = Some(t),
                Some(x) if x != t => self.fail(format_args!("servers disagree on term: {x} and {t} (n{id})")),
                Some(_) => {}
            }
        }
        term.unwrap_or_else(|| self.fail("check_terms: no connected node"))
    }

    /// MIT `checkNoLeader`: panics if a connected node believes it leads.
    pub fn check_no_leader(&self) {
        for id in self.connected_live() {
            if self.node(id).is_some_and(|n| n.role() == Role::Leader) {
                self.fail(format_args!("expected no leader among connected servers, but n{id} claims to be leader"));
            }
        }
    }

    /// MIT `nCommitted`: how many nodes (crashed ones included, with what
    /// they applied in their last lifetime) have applied `index` as an entry,
    /// and the entry. Panics if two nodes applied different entries there.
    /// (Indexes a node only received inside a snapshot are not counted: the
    /// simulator cannot read the host's snapshot format;
    /// [`super::snapshots::Appliers::n_committed`] counts them.)
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<Entry>) {
        let mut count = 0;
        let mut seen: Option<(NodeId, &Entry)> = None;
        for id in self.ids() {
            let Some(e) = self.applied_entry(id, index) else {
                continue;
            };
            if let Some((other, prev)) = seen
                && prev != e
            {
                self.fail(format_args!(
                    "committed values do not match: index {index}, n{other} has {prev:?}, n{id} has {e:?}"
                ));
            }
            seen = Some((id, e));
            count += 1;
        }
        (count, seen.map(|(_, e)| e.clone()))
    }

    /// MIT `one`: for up to 10 s, proposes `cmd` round-robin at connected
    /// nodes until one accepts, then waits up to 2 s for at least
    /// `expected_servers` nodes to apply `cmd` at that index. Without
    /// `retry`, the first 2 s wait that fails is fatal. Returns the index.
    pub fn one(&mut self, cmd: impl Into<Bytes>, expected_servers: usize, retry: bool) -> LogIndex {
        let cmd: Bytes = cmd.into();
        let want = Payload::Command(cmd.clone());
        self.one_where(cmd, retry, |c, index| {
            let (count, e) = c.n_committed(index);
            count > 0 && count >= expected_servers && e.is_some_and(|e| e.payload == want)
        })
    }

    /// The loop of MIT `one`: for up to 10 s, proposes `cmd` round-robin at
    /// connected live nodes until one accepts, then waits up to 2 s for
    /// `agreed(cluster, index)`. Without `retry`, the first 2 s wait that
    /// fails is fatal. Returns the index.
    pub(crate) fn one_where(
        &mut self,
        cmd: Bytes,
        retry: bool,
        mut agreed: impl FnMut(&Cluster, LogIndex) -> bool,
    ) -> LogIndex {
        let start = self.now();
        let n = self.len();
        let mut starts = 0;
        while self.now().saturating_since(start) < Duration::from_secs(10) {
            let mut index = None;
            for _ in 0..n {
                starts = (starts + 1) % n;
                let id = NodeId(starts as u64 + 1);
                if self.is_connected(id)
                    && self.is_up(id)
                    && let Ok(i) = self.propose(id, cmd.clone())
                {
                    index = Some(i);
                    break;
                }
            }
            match index {
                Some(index) => {
                    if self.run_until(|c| agreed(c, index), Duration::from_secs(2)) {
                        return index;
                    }
                    if !retry {
                        self.fail(format_args!("one({cmd:?}) failed to reach agreement"));
                    }
                }
                None => self.run_for(Duration::from_millis(50)),
            }
        }
        self.fail(format_args!("one({cmd:?}) failed to reach agreement in 10 s"))
    }
}
