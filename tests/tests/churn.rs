//! Churn (MIT 6.5840 2C ReliableChurn / UnreliableChurn): three clients keep
//! proposing on every server while, every 700 ms, a random server is
//! disconnected, reconnected (restarted if down) or crashed, 20 times. At
//! the end every server has applied every index, and every value a client
//! saw committed is in the log.
//!
//! Each seed covers about 18 s of virtual time; the default seed count is
//! lower than for the short scenarios. `RAFT_SEEDS=K` raises it, and
//! `RAFT_SEED=N` reruns just seed `N`.

mod common;

use common::{ELECTION_TIMEOUT, churn_step, cmd, committed_log, ms, revive_all, value, wait};
use raft_core::{Duration, Instant, LogIndex};
use raft_tests::sim::{Cluster, NetConfig, SimConfig, SimRng, for_each_seed};
use std::collections::HashSet;

/// Seeds per scenario unless `RAFT_SEEDS` says otherwise.
const SEEDS: u64 = 150;

/// MIT's `cfn` client: proposes a fresh value on every live server; if one
/// accepted, polls `n_committed` at +0, 10, 30, 80 and 180 ms and records
/// the value if it was committed at that index; then starts over (after
/// `79 + 17 * me` ms if nobody accepted).
struct ChurnClient {
    me: u64,
    wake: Instant,
    /// Waiting for `(index, value)`, at poll number `k`.
    polling: Option<(LogIndex, u64, usize)>,
    values: Vec<u64>,
    /// Set by the test: finish the current round, then stop.
    stopped: bool,
}

const POLLS_MS: [u64; 5] = [10, 20, 50, 100, 200];

impl ChurnClient {
    fn poll(&mut self, c: &mut Cluster, rng: &mut SimRng) {
        let now = c.now();
        if self.wake > now {
            return;
        }
        if let Some((index, x, k)) = self.polling {
            let (nd, e) = c.n_committed(index);
            if nd > 0 {
                if e.and_then(|e| value(&e.payload)) == Some(x) {
                    self.values.push(x);
                }
                self.polling = None;
            } else if k + 1 < POLLS_MS.len() {
                self.polling = Some((index, x, k + 1));
                self.wake = now + ms(POLLS_MS[k + 1]);
                return;
            } else {
                self.polling = None;
            }
        }
        if self.stopped {
            self.wake = Instant::from_micros(u64::MAX);
            return;
        }
        // Start over: a fresh value on every live server.
        let x = rng.next_u64() >> 1;
        let mut index = None;
        for id in c.ids() {
            if c.is_up(id)
                && let Ok(i) = c.propose(id, cmd(x))
            {
                index = Some(i);
            }
        }
        match index {
            Some(i) => {
                self.polling = Some((i, x, 0));
                self.wake = now + ms(POLLS_MS[0]);
                // MIT checks once before the first sleep; nothing commits within propose.
            }
            None => self.wake = now + ms(79 + self.me * 17),
        }
    }
}

/// Runs the clients and the cluster for `d`.
fn run_clients(c: &mut Cluster, clients: &mut [ChurnClient], rng: &mut SimRng, d: Duration) {
    let end = c.now() + d;
    loop {
        for cl in clients.iter_mut() {
            cl.poll(c, rng);
        }
        let next = clients.iter().map(|cl| cl.wake).min().map_or(end, |w| w.min(end));
        if c.now() >= end {
            return;
        }
        c.run_for(next.saturating_since(c.now()).max(Duration::from_micros(1)));
    }
}

fn churn(seed: u64, unreliable: bool) -> (usize, LogIndex) {
    let mut cfg = SimConfig::new(5, seed);
    if unreliable {
        cfg.net = NetConfig::unreliable();
    }
    let mut c = Cluster::new(cfg);
    let mut rng = SimRng::stream(seed, 400);
    let mut crng = SimRng::stream(seed, 401);
    let mut clients: Vec<ChurnClient> =
        (0..3).map(|me| ChurnClient { me, wake: c.now(), polling: None, values: Vec::new(), stopped: false }).collect();
    for _ in 0..20 {
        churn_step(&mut c, &mut rng);
        run_clients(&mut c, &mut clients, &mut crng, ms(700));
    }
    run_clients(&mut c, &mut clients, &mut crng, ELECTION_TIMEOUT);
    *c.net_config_mut() = NetConfig::reliable();
    revive_all(&mut c);
    // Stop the clients: each finishes its current round (at most 380 ms).
    for cl in &mut clients {
        cl.stopped = true;
    }
    run_clients(&mut c, &mut clients, &mut crng, ms(400));
    assert!(clients.iter().all(|cl| cl.polling.is_none()), "seed {seed}: a client did not stop");
    let values: Vec<u64> = clients.iter().flat_map(|cl| cl.values.iter().copied()).collect();
    c.run_for(ELECTION_TIMEOUT);
    let last = c.one(cmd(rng.next_u64() >> 1), 5, true);
    for i in 1..=last.0 {
        wait(&mut c, LogIndex(i), 5, None);
    }
    common::check_final_state(&mut c).unwrap_or_else(|e| panic!("{e}"));
    let log = committed_log(&c, last);
    let present: HashSet<u64> = log.iter().filter_map(value).collect();
    for v in &values {
        assert!(present.contains(v), "seed {seed}: acknowledged value {v} is not in the log");
    }
    (values.len(), last)
}

#[test]
fn reliable_churn() {
    let (mut acked, mut indexes) = (0, 0);
    for_each_seed(40_000, SEEDS, |seed| {
        let (v, last) = churn(seed, false);
        acked += v;
        indexes += last.0;
    });
    println!("reliable churn: {acked} acknowledged values, {indexes} indexes over all seeds");
}

#[test]
fn unreliable_churn() {
    let (mut acked, mut indexes) = (0, 0);
    for_each_seed(41_000, SEEDS, |seed| {
        let (v, last) = churn(seed, true);
        acked += v;
        indexes += last.0;
    });
    println!("unreliable churn: {acked} acknowledged values, {indexes} indexes over all seeds");
}
