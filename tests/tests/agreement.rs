//! Log agreement scenarios (MIT 6.5840 2B equivalents, and 2C
//! UnreliableAgree), each over many seeds in the deterministic simulator.
//! The message budgets (RPCBytes, Count) are in `message_budgets.rs`.
//!
//! Our leaders append a no-op entry when elected, so where the MIT tester
//! expects a command at index `k`, we expect it right after the previous
//! command plus the no-ops of any leaders elected in between.
//!
//! `RAFT_SEEDS=K` sets how many seeds each scenario runs; `RAFT_SEED=N`
//! reruns just seed `N`. A failure names its seed.

mod common;

use common::{ELECTION_TIMEOUT, cmd, payload, plus, rand_cmd, secs, wait};
use raft_core::{LogIndex, Payload};
use raft_tests::sim::{Cluster, NetConfig, SimConfig, SimRng, for_each_seed};

/// Seeds per scenario unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 500;

fn cluster(n: usize, seed: u64) -> Cluster {
    Cluster::new(SimConfig::new(n, seed))
}

/// A seeded RNG for the test's own random choices (commands, victims).
fn test_rng(seed: u64) -> SimRng {
    SimRng::stream(seed, 200)
}

/// Every entry committed below `index` is a leader's no-op.
fn only_noops_below(c: &Cluster, index: LogIndex) -> bool {
    // A first leader logs the configuration instead of a no-op: neither is a command.
    (1..index.0).all(|i| {
        c.committed_entry(LogIndex(i)).is_none_or(|(_, p)| matches!(p, Payload::Noop | Payload::Membership(_)))
    })
}

#[test]
fn basic_agree() {
    for_each_seed(10_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        let mut last: Option<LogIndex> = None;
        for k in 1..=3u64 {
            // Nothing is committed where the command will go (before the
            // first command: nothing but no-ops).
            let committed_early = match last {
                None => !only_noops_below(&c, LogIndex(c.max_applied().0 + 1)),
                Some(prev) => c.n_committed(LogIndex(prev.0 + 1)).0 > 0,
            };
            assert!(!committed_early, "seed {seed}: some have committed before Start()");
            let index = c.one(cmd(k * 100), 3, false);
            if let Some(prev) = last {
                assert_eq!(index, LogIndex(prev.0 + 1), "seed {seed}: got index {index}, expected {}", prev.0 + 1);
            } else {
                assert!(only_noops_below(&c, index), "seed {seed}: the first command follows non-no-op entries");
            }
            last = Some(index);
        }
    });
}

#[test]
fn follower_failure() {
    for_each_seed(12_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        c.one(cmd(101), 3, false);

        // One follower disconnects: the two others still agree.
        let leader1 = c.check_one_leader();
        c.disconnect(plus(leader1, 1, 3));
        c.one(cmd(102), 2, false);
        c.run_for(ELECTION_TIMEOUT);
        let i103 = c.one(cmd(103), 2, false);

        // The remaining follower disconnects too: the leader accepts but cannot commit.
        let leader2 = c.check_one_leader();
        c.disconnect(plus(leader2, 1, 3));
        c.disconnect(plus(leader2, 2, 3));
        let index = c.propose(leader2, cmd(104));
        let index = index.unwrap_or_else(|e| panic!("seed {seed}: leader rejected Start(): {e}"));
        assert_eq!(index, LogIndex(i103.0 + 1), "seed {seed}: expected index {}", i103.0 + 1);
        c.run_for(ELECTION_TIMEOUT + ELECTION_TIMEOUT);
        let (n, _) = c.n_committed(index);
        assert_eq!(n, 0, "seed {seed}: {n} committed but no majority");
    });
}

#[test]
fn leader_failure() {
    for_each_seed(13_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        c.one(cmd(101), 3, false);

        // The leader disconnects: a new one is elected and commits.
        let leader1 = c.check_one_leader();
        c.disconnect(leader1);
        c.one(cmd(102), 2, false);
        c.run_for(ELECTION_TIMEOUT);
        let i103 = c.one(cmd(103), 2, false);

        // The new leader disconnects too: nothing commits anywhere.
        let leader2 = c.check_one_leader();
        c.disconnect(leader2);
        for id in c.ids() {
            let _ = c.propose(id, cmd(104));
        }
        c.run_for(ELECTION_TIMEOUT + ELECTION_TIMEOUT);
        let (n, _) = c.n_committed(LogIndex(i103.0 + 1));
        assert_eq!(n, 0, "seed {seed}: {n} committed but no majority");
    });
}

#[test]
fn fail_agree() {
    for_each_seed(14_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        c.one(cmd(101), 3, false);

        // A follower disconnects; the others go on.
        let leader = c.check_one_leader();
        c.disconnect(plus(leader, 1, 3));
        c.one(cmd(102), 2, false);
        c.one(cmd(103), 2, false);
        c.run_for(ELECTION_TIMEOUT);
        c.one(cmd(104), 2, false);
        c.one(cmd(105), 2, false);

        // It comes back and catches up.
        c.connect(plus(leader, 1, 3));
        c.one(cmd(106), 3, true);
        c.run_for(ELECTION_TIMEOUT);
        c.one(cmd(107), 3, true);
    });
}

#[test]
fn fail_no_agree() {
    for_each_seed(15_000, SEEDS, |seed| {
        let mut c = cluster(5, seed);
        let i10 = c.one(cmd(10), 5, false);

        // Three of five disconnect: the leader accepts but cannot commit.
        let leader = c.check_one_leader();
        for k in 1..=3 {
            c.disconnect(plus(leader, k, 5));
        }
        let index = c.propose(leader, cmd(20)).unwrap_or_else(|e| panic!("seed {seed}: leader rejected Start(): {e}"));
        assert_eq!(index, LogIndex(i10.0 + 1), "seed {seed}: expected index {}", i10.0 + 1);
        c.run_for(ELECTION_TIMEOUT + ELECTION_TIMEOUT);
        let (n, _) = c.n_committed(index);
        assert_eq!(n, 0, "seed {seed}: {n} committed but no majority");

        // Repair: the new leader's first command lands at MIT's "2 or 3"
        // (after the no-ops of leaders elected since), depending on whether it has "20".
        for k in 1..=3 {
            c.connect(plus(leader, k, 5));
        }
        let leader2 = c.check_one_leader();
        let index2 =
            c.propose(leader2, cmd(30)).unwrap_or_else(|e| panic!("seed {seed}: leader2 rejected Start(): {e}"));
        let node = c.node(leader2).unwrap();
        let noops = (i10.0 + 1..index2.0)
            .filter(|&i| node.log_entry(LogIndex(i)).is_some_and(|e| e.payload == Payload::Noop))
            .count() as u64;
        let mit_index = index2.0 - i10.0 + 1 - noops; // MIT numbering: "10" at index 1
        assert!(
            (2..=3).contains(&mit_index) && noops >= 1,
            "seed {seed}: unexpected index {index2} ({noops} no-ops after i{i10}; MIT index {mit_index})"
        );
        c.one(cmd(1000), 5, true);
    });
}

#[test]
fn concurrent_starts() {
    let mut retried = 0;
    for_each_seed(16_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        let mut success = false;
        'tries: for attempt in 0..5 {
            if attempt > 0 {
                retried += 1;
                c.run_for(secs(3));
            }
            let leader = c.check_one_leader();
            let term = c.node(leader).unwrap().term();
            if c.propose(leader, cmd(1)).is_err() {
                continue;
            }
            // Five proposals at the same instant, all in one term.
            let mut indexes = Vec::new();
            for i in 0..5u64 {
                match c.propose(leader, cmd(100 + i)) {
                    Ok(index) if c.node(leader).is_some_and(|n| n.term() == term) => indexes.push(index),
                    _ => continue 'tries,
                }
            }
            let mut got = Vec::new();
            for &index in &indexes {
                match wait(&mut c, index, 3, Some(term)) {
                    Some(p) => got.push(p),
                    None => continue 'tries, // the term moved on: try again
                }
            }
            for i in 0..5u64 {
                assert!(got.contains(&payload(100 + i)), "seed {seed}: cmd {} missing in {got:?}", 100 + i);
            }
            success = true;
            break;
        }
        assert!(success, "seed {seed}: term changed too often");
    });
    println!("concurrent starts: {retried} retries over all seeds");
}

#[test]
fn rejoin() {
    for_each_seed(17_000, SEEDS, |seed| {
        let mut c = cluster(3, seed);
        c.one(cmd(101), 3, true);

        // The leader is partitioned away and appends entries it cannot commit.
        let leader1 = c.check_one_leader();
        c.disconnect(leader1);
        for x in [102, 103, 104] {
            let _ = c.propose(leader1, cmd(x));
        }

        // A new leader commits, also at the old leader's indexes.
        c.one(cmd(103), 2, true);

        // The new leader fails; the old one returns and must follow.
        let leader2 = c.check_one_leader();
        c.disconnect(leader2);
        c.connect(leader1);
        c.one(cmd(104), 2, true);

        // All together now.
        c.connect(leader2);
        c.one(cmd(105), 3, true);

        // The stale leader's uncommitted entries were overwritten everywhere.
        let max = c.max_applied();
        for i in 1..=max.0 {
            let p = c.committed_entry(LogIndex(i)).map(|(_, p)| p.clone());
            assert_ne!(p, Some(payload(102)), "seed {seed}: the stale leader's entry 102 was committed at i{i}");
        }
    });
}

#[test]
fn backup() {
    let mut slowest = raft_core::Duration::ZERO;
    for_each_seed(18_000, SEEDS, |seed| {
        let mut c = cluster(5, seed);
        let mut rng = test_rng(seed);
        c.one(cmd(rand_cmd(&mut rng)), 5, true);

        // The leader and one follower in a partition; 50 entries that cannot commit.
        let leader1 = c.check_one_leader();
        for k in 2..=4 {
            c.disconnect(plus(leader1, k, 5));
        }
        for _ in 0..50 {
            let _ = c.propose(leader1, cmd(rand_cmd(&mut rng)));
        }
        c.run_for(raft_core::Duration::from_millis(500));
        c.disconnect(leader1);
        c.disconnect(plus(leader1, 1, 5));

        // The other three recover and commit 50 entries.
        for k in 2..=4 {
            c.connect(plus(leader1, k, 5));
        }
        for _ in 0..50 {
            c.one(cmd(rand_cmd(&mut rng)), 3, true);
        }

        // Another leader with one follower; 50 more entries that cannot commit.
        let leader2 = c.check_one_leader();
        let mut other = plus(leader1, 2, 5);
        if leader2 == other {
            other = plus(leader2, 1, 5);
        }
        c.disconnect(other);
        for _ in 0..50 {
            let _ = c.propose(leader2, cmd(rand_cmd(&mut rng)));
        }
        c.run_for(raft_core::Duration::from_millis(500));

        // The original leader's partition comes back with `other`: they must
        // back up over the conflicting entries.
        for id in c.ids() {
            c.disconnect(id);
        }
        c.connect(leader1);
        c.connect(plus(leader1, 1, 5));
        c.connect(other);
        let t0 = c.now();
        for _ in 0..50 {
            c.one(cmd(rand_cmd(&mut rng)), 3, true);
        }
        // Everyone.
        for id in c.ids() {
            c.connect(id);
        }
        c.one(cmd(rand_cmd(&mut rng)), 5, true);
        common::check_final_state(&mut c).unwrap_or_else(|e| panic!("{e}"));
        slowest = slowest.max(c.now().saturating_since(t0));
    });
    println!("backup: slowest recovery (51 one() calls after healing) {slowest:?}");
}

/// MIT `one` as a state machine, so that several can run at once in
/// virtual time (MIT runs them in goroutines).
struct OneCall {
    cmd: raft_core::Bytes,
    expected: usize,
    started: raft_core::Instant,
    starts: u64,
    /// Waiting for agreement at this index until this time.
    waiting: Option<(LogIndex, raft_core::Instant)>,
    next_at: raft_core::Instant,
    done: bool,
}

impl OneCall {
    fn new(c: &Cluster, x: u64, expected: usize) -> OneCall {
        OneCall { cmd: cmd(x), expected, started: c.now(), starts: 0, waiting: None, next_at: c.now(), done: false }
    }

    /// Does what is due now (with `retry`: a failed 2 s wait proposes again).
    fn poll(&mut self, c: &mut Cluster) {
        let now = c.now();
        if self.done || self.next_at > now {
            return;
        }
        if now.saturating_since(self.started) >= secs(10) {
            c.fail(format_args!("one({:?}) failed to reach agreement in 10 s", self.cmd));
        }
        if let Some((index, until)) = self.waiting {
            let (nd, e) = c.n_committed(index);
            if nd > 0 && nd >= self.expected && e.is_some_and(|e| e.payload == Payload::Command(self.cmd.clone())) {
                self.done = true;
                return;
            }
            if now < until {
                self.next_at = now + common::ms(20);
                return;
            }
            self.waiting = None;
        }
        let n = c.len() as u64;
        for _ in 0..n {
            self.starts = (self.starts + 1) % n;
            let id = raft_core::NodeId(self.starts + 1);
            if c.is_connected(id)
                && c.is_up(id)
                && let Ok(index) = c.propose(id, self.cmd.clone())
            {
                self.waiting = Some((index, now + secs(2)));
                self.next_at = now;
                return;
            }
        }
        self.next_at = now + common::ms(50);
    }
}

/// Runs `calls` until `calls[main]` is done (every call progresses meanwhile).
fn run_calls(c: &mut Cluster, calls: &mut [OneCall], main: Option<usize>) {
    loop {
        for call in calls.iter_mut() {
            call.poll(c);
        }
        let finished = match main {
            Some(k) => calls[k].done,
            None => calls.iter().all(|call| call.done),
        };
        if finished {
            return;
        }
        let next = calls.iter().filter(|call| !call.done).map(|call| call.next_at).min();
        if let Some(next) = next {
            let wait = next.saturating_since(c.now());
            c.run_for(wait.max(raft_core::Duration::from_micros(1)));
        }
    }
}

#[test]
fn unreliable_agree() {
    for_each_seed(24_000, SEEDS, |seed| {
        let mut cfg = SimConfig::new(5, seed);
        cfg.net = NetConfig::unreliable();
        let mut c = Cluster::new(cfg);
        let mut background: Vec<OneCall> = Vec::new();
        for iter in 1..50u64 {
            for j in 0..4 {
                background.push(OneCall::new(&c, 100 * iter + j, 1));
            }
            background.push(OneCall::new(&c, iter, 1));
            let main = background.len() - 1;
            run_calls(&mut c, &mut background, Some(main));
            background.retain(|call| !call.done);
        }
        *c.net_config_mut() = NetConfig::reliable();
        run_calls(&mut c, &mut background, None);
        c.one(cmd(100), 5, true);
        common::check_final_state(&mut c).unwrap_or_else(|e| panic!("{e}"));
    });
}
