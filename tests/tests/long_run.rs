//! A long-running simulation: 1,000,000 proposals through a 3-node cluster
//! with crashes, under a small snapshot policy. The host side
//! ([`raft_tests::sim::snapshots`], digest mode) takes a snapshot whenever
//! the core's policy asks for one (`Event::SnapshotWanted`).
//!
//! After every simulator step, every live node's in-memory log (`log_len`,
//! `log_bytes`) and every node's durable log stay under the bounds the
//! policy implies ([`LOG_LEN`], [`LOG_BYTES`]); every node's apply stream is
//! gap-free and agrees, index by index, with every other node's (a hash
//! chain over the applied commands, carried in the snapshots). Every
//! [`CHECK_EVERY`] proposals the encoded durable state is measured too.
//!
//! `RAFT_LONG_PROPOSALS=N` runs `N` proposals instead; `RAFT_SEEDS` /
//! `RAFT_SEED` choose the seeds as everywhere else.

use raft_core::{Bytes, Config, Duration, LogIndex, NodeId};
use raft_tests::sim::snapshots::{ApplierConfig, Appliers, Bounds, durable_size};
use raft_tests::sim::{Cluster, MsgKind, SimConfig, SimRng, for_each_seed};
use std::time::Instant as WallClock;

/// Proposals per run unless `RAFT_LONG_PROPOSALS` says otherwise.
const PROPOSALS: u64 = 1_000_000;
/// The policy: ask for a snapshot after this many applied entries...
const SNAPSHOT_ENTRIES: u64 = 1_000;
/// ...or once the in-memory log holds this many bytes (`Entry::size_bound`).
const SNAPSHOT_BYTES: usize = 32 << 10;
/// Bytes per command.
const COMMAND_BYTES: usize = 16;
/// An entry's `Entry::size_bound`.
const ENTRY_BOUND: usize = COMMAND_BYTES + raft_core::ENTRY_OVERHEAD_BYTES;
/// An entry's encoded size at most: term (up to 3 bytes), index (up to 5),
/// payload tag and length (1 each), command.
const ENTRY_ENCODED: usize = COMMAND_BYTES + 10;
/// How many applied entries the policy lets a node keep before it asks for
/// a snapshot: here the byte threshold binds first.
const POLICY_ENTRIES: usize = {
    let by_bytes = SNAPSHOT_BYTES.div_ceil(ENTRY_BOUND);
    if (SNAPSHOT_ENTRIES as usize) < by_bytes { SNAPSHOT_ENTRIES as usize } else { by_bytes }
};
/// Commands proposed per step (one `propose_batch`).
const BATCH: u64 = 64;
/// The driver proposes only while the leader holds fewer uncommitted entries.
const WINDOW: u64 = 256;
/// Most entries a node's log (in memory or durable) may hold. A node that
/// keeps up holds fewer than `POLICY_ENTRIES` applied entries past its
/// snapshot (the host compacts in the step that crosses the policy) plus
/// those not applied yet: at most `WINDOW + BATCH` uncommitted at the
/// leader. Its durable log lags by the snapshot write in flight, and a
/// crash can lose that write, so a node can restart with that much plus
/// what it appended meanwhile, and then append what the leader pipelines to
/// it before it learns the commit index and compacts: we allow twice the
/// steady-state bound.
const LOG_LEN: usize = 2 * (POLICY_ENTRIES + (WINDOW + BATCH) as usize);
/// The same in bytes (`Entry::size_bound`): every entry here is `ENTRY_BOUND` bytes.
const LOG_BYTES: usize = LOG_LEN * ENTRY_BOUND;
/// The encoded durable Raft state ([`durable_size`]): `LOG_LEN` entries plus
/// the hard state and snapshot metadata.
const DURABLE_BYTES: usize = LOG_LEN * ENTRY_ENCODED + 32;
/// A crash every this many proposals.
const CRASH_EVERY: u64 = 20_000;
/// Measure the encoded durable state every this many proposals.
const CHECK_EVERY: u64 = 1_000;

fn policy(c: &mut Config) {
    c.snapshot_after_entries = Some(SNAPSHOT_ENTRIES);
    c.snapshot_after_log_bytes = Some(SNAPSHOT_BYTES);
}

fn proposals() -> u64 {
    std::env::var("RAFT_LONG_PROPOSALS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(PROPOSALS)
}

fn command(n: u64) -> Bytes {
    Bytes::from(format!("{n:016x}").into_bytes())
}

fn leader(c: &Cluster) -> Option<NodeId> {
    c.leaders().into_iter().max_by_key(|&(_, t)| t).map(|(id, _)| id)
}

/// What one run saw.
#[derive(Debug, Default)]
struct Summary {
    proposed: u64,
    committed: LogIndex,
    crashes: u32,
    max_durable_bytes: usize,
}

fn run(seed: u64, total: u64) -> Summary {
    let mut cfg = SimConfig::new(3, seed);
    cfg.configure = policy;
    cfg.trace_capacity = 256;
    let mut c = Cluster::new(cfg);
    let bounds = Bounds {
        durable_bytes: None, // re-encoding a large log every step is too slow: see CHECK_EVERY
        durable_entries: Some(LOG_LEN),
        log_len: Some(LOG_LEN),
        log_bytes: Some(LOG_BYTES),
    };
    let a = Appliers::install(&mut c, ApplierConfig { bounds, ..ApplierConfig::policy() });
    let mut rng = SimRng::stream(seed, 300);
    let mut s = Summary::default();
    let mut down: Vec<NodeId> = Vec::new();
    let mut restart_at = 0;
    let mut next_crash = CRASH_EVERY;
    let mut next_check = CHECK_EVERY;
    while s.proposed < total {
        if !down.is_empty() && s.proposed >= restart_at {
            for id in down.drain(..) {
                c.restart(id);
            }
        }
        if down.is_empty() && s.proposed >= next_crash {
            next_crash += CRASH_EVERY;
            s.crashes += 1;
            // Usually one node (the leader half of the time) stays down for
            // a few policy thresholds; every fifth time all three crash.
            down = if s.crashes.is_multiple_of(5) {
                c.ids()
            } else if rng.chance(0.5)
                && let Some(l) = leader(&c)
            {
                vec![l]
            } else {
                vec![NodeId(1 + rng.below(3))]
            };
            for &id in &down {
                c.crash(id);
            }
            restart_at = if down.len() == 3 { s.proposed } else { s.proposed + 2_000 + rng.below(6_000) };
        }
        if let Some(l) = leader(&c)
            && let Some(n) = c.node(l)
            && n.last_log_index().0 - n.commit_index().0 < WINDOW
        {
            let k = BATCH.min(total - s.proposed);
            let first = s.proposed;
            if c.propose_batch(l, (first..first + k).map(command)).is_ok() {
                s.proposed += k;
            }
        }
        if s.proposed >= next_check {
            next_check += CHECK_EVERY;
            for id in c.ids() {
                s.max_durable_bytes = s.max_durable_bytes.max(durable_size(c.durable(id)));
            }
            let max = s.max_durable_bytes;
            assert!(max <= DURABLE_BYTES, "seed {seed}: durable state of {max} bytes > {DURABLE_BYTES}");
        }
        c.run_for(Duration::from_millis(1));
    }
    for id in down.drain(..) {
        c.restart(id);
    }
    // Every node catches up with everything committed.
    let caught_up = c.run_until(
        |c| {
            let Some(l) = leader(c).and_then(|l| c.node(l)) else { return false };
            let commit = l.commit_index();
            c.ids().into_iter().all(|id| a.last_applied(id) == commit)
        },
        Duration::from_secs(60),
    );
    assert!(caught_up, "seed {seed}: the nodes did not converge after the run\n{}", c.trace_tail());
    s.committed = a.last_applied(NodeId(1));
    a.check(&c);
    assert!(a.digest_at(s.committed).is_some(), "seed {seed}: no agreed state at the end");
    let st = a.stats();
    let installs = c.stats().total().of_kind(MsgKind::InstallSnapshot);
    let per_node = s.committed.0 / POLICY_ENTRIES as u64;
    assert!(st.taken >= per_node, "seed {seed}: only {} snapshots for {} entries", st.taken, s.committed);
    assert!(s.crashes == 0 || (st.restored > 0 && installs > 0), "seed {seed}: no snapshot was ever installed");
    println!(
        "long run seed {seed}: {} proposals, {} committed, {} crashes, virtual {:?}, {} steps; {st:?}; \
         InstallSnapshot chunks {installs}; largest durable state {} bytes (bounds: {LOG_LEN} entries, {LOG_BYTES} bytes, {DURABLE_BYTES} encoded)",
        s.proposed,
        s.committed,
        s.crashes,
        c.now(),
        c.steps(),
        s.max_durable_bytes
    );
    s
}

#[test]
fn long_run_bounded_log() {
    let total = proposals();
    for_each_seed(30_000, 1, |seed| {
        let t0 = WallClock::now();
        let s = run(seed, total);
        assert_eq!(s.proposed, total);
        assert!(s.committed.0 >= total * 9 / 10, "seed {seed}: only {} of {total} committed", s.committed);
        println!("long run seed {seed}: {:.1} s wall", t0.elapsed().as_secs_f64());
    });
}
