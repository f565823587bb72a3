//! Majority arithmetic over one voter set: commit index, vote outcome, and
//! the highest value (a log index, a heartbeat round) a majority has reached.
//!
//! Everything here is a pure function of the voter set and a lookup, so a
//! configuration of several voter sets can combine the answers.

use crate::types::{LogIndex, NodeId};
use alloc::vec::Vec;

/// The outcome of an election so far.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused (or cannot grant any more).
    Lost,
    /// Neither yet.
    Pending,
}

/// A set of voters decided by simple majority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Majority {
    voters: Vec<NodeId>,
}

impl Majority {
    /// A voter set; duplicates are removed.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Majority {
        let mut voters: Vec<NodeId> = voters.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        Majority { voters }
    }

    /// The voters, sorted.
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// True if `id` votes.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index that a majority has reached, given each voter's
    /// acknowledged index. An empty set commits everything (`LogIndex(u64::MAX)`),
    /// so that a joint configuration with an empty half defers to the other half.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        LogIndex(self.quorum_value(|id| acked(id).0))
    }

    /// The largest value that at least a majority has reached, given each
    /// voter's value (`u64::MAX` for an empty set, as in [`Self::committed_index`]).
    pub fn quorum_value(&self, value: impl Fn(NodeId) -> u64) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        const SMALL: usize = 8;
        let q = self.quorum();
        if self.voters.len() <= SMALL {
            let mut buf = [0u64; SMALL];
            let v = &mut buf[..self.voters.len()];
            for (slot, &id) in v.iter_mut().zip(&self.voters) {
                *slot = value(id);
            }
            v.sort_unstable_by(|a, b| b.cmp(a));
            return v[q - 1];
        }
        let mut v: Vec<u64> = self.voters.iter().map(|&id| value(id)).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v[q - 1]
    }

    /// The outcome given each voter's answer (`None`: not answered yet).
    /// An empty set wins, for the same reason as in [`Self::committed_index`].
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let (mut yes, mut no) = (0, 0);
        for &id in &self.voters {
            match vote(id) {
                Some(true) => yes += 1,
                Some(false) => no += 1,
                None => {}
            }
        }
        let q = self.quorum();
        if self.voters.is_empty() || yes >= q {
            VoteResult::Won
        } else if self.voters.len() - no < q {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use quickcheck::quickcheck;

    fn set(n: u64) -> Majority {
        Majority::new((1..=n).map(NodeId))
    }

    #[test]
    fn a_voter_set_is_sorted_without_duplicates() {
        let m = Majority::new([3, 1, 3, 2].map(NodeId));
        assert_eq!(m.voters(), &[NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(m.quorum(), 2);
        assert!(m.contains(NodeId(1)) && m.contains(NodeId(3)));
        assert!(!m.contains(NodeId(4)) && !m.contains(NodeId(0)));
    }

    #[test]
    fn committed_index_examples() {
        let m = set(3);
        let acked = [0, 5, 7, 3];
        assert_eq!(m.committed_index(|id| LogIndex(acked[id.0 as usize])), LogIndex(5));
        let m = set(4);
        let acked = [0, 9, 8, 2, 1];
        assert_eq!(m.committed_index(|id| LogIndex(acked[id.0 as usize])), LogIndex(2));
        assert_eq!(set(1).committed_index(|_| LogIndex(4)), LogIndex(4));
        assert_eq!(Majority::new(vec![]).committed_index(|_| LogIndex(0)), LogIndex(u64::MAX));
    }

    #[test]
    fn vote_result_examples() {
        let m = set(5);
        let votes = |v: [Option<bool>; 5]| m.vote_result(|id| v[id.0 as usize - 1]);
        assert_eq!(votes([Some(true), Some(true), None, None, None]), VoteResult::Pending);
        assert_eq!(votes([Some(true), Some(true), Some(true), None, None]), VoteResult::Won);
        assert_eq!(votes([Some(true), Some(false), Some(false), Some(false), None]), VoteResult::Lost);
        assert_eq!(votes([Some(true), Some(false), Some(false), None, None]), VoteResult::Pending);
        assert_eq!(set(1).vote_result(|_| Some(true)), VoteResult::Won);
        assert_eq!(set(2).vote_result(|id| Some(id.0 == 1)), VoteResult::Lost);
    }

    quickcheck! {
        // The committed index computed by sorting equals the definition: the
        // largest index acknowledged by at least a majority.
        fn committed_index_matches_definition(acks: Vec<u8>) -> bool {
            let n = acks.len().min(9);
            let m = Majority::new((0..n as u64).map(NodeId));
            let got = m.committed_index(|id| LogIndex(u64::from(acks[id.0 as usize])));
            if n == 0 {
                return got == LogIndex(u64::MAX);
            }
            let best = (0..=255u64)
                .filter(|&i| acks[..n].iter().filter(|&&a| u64::from(a) >= i).count() > n / 2)
                .max()
                .unwrap_or(0);
            got == LogIndex(best)
        }

        // Won and Lost are final: answering the remaining voters never flips them,
        // and Pending always leaves both outcomes reachable.
        fn vote_result_is_monotone(answers: Vec<Option<bool>>) -> bool {
            let n = answers.len().min(9);
            let m = Majority::new((0..n as u64).map(NodeId));
            let map: BTreeMap<NodeId, Option<bool>> = (0..n).map(|i| (NodeId(i as u64), answers[i])).collect();
            let r = m.vote_result(|id| map[&id]);
            let all_yes = m.vote_result(|id| Some(map[&id].unwrap_or(true)));
            let all_no = m.vote_result(|id| Some(map[&id].unwrap_or(false)));
            match r {
                VoteResult::Won => all_no == VoteResult::Won,
                VoteResult::Lost => all_yes == VoteResult::Lost,
                VoteResult::Pending => all_yes == VoteResult::Won && all_no == VoteResult::Lost,
            }
        }
    }
}
