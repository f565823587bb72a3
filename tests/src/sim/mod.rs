//! A deterministic cluster simulator for raft-core.
//!
//! [`Cluster`] runs `n` [`raft_core::Node`]s in virtual time over a simulated
//! network ([`network`]) and simulated disks ([`disk`]), using only the core's
//! public API. Every random choice (latency, loss, duplication, disk timing,
//! node seeds, helper sleeps) derives from [`SimConfig::seed`], so the same
//! seed and the same test code replay the same run exactly; no wall clock,
//! thread or global RNG is involved.
//!
//! After every input to a node the simulator drains its outputs and the
//! [`invariants`] checker verifies Raft's safety properties; a violation
//! panics with the seed, the invariant with its values, and the newest
//! [`trace`] lines. [`mit`] adds helpers with the MIT 6.5840 tester's
//! semantics (`check_one_leader`, `one`, ...).
//!
//! Membership: the `n` nodes of [`SimConfig::nodes`] bootstrap the cluster;
//! [`Cluster::add_node`] starts more (joining, empty disk), and [`members`]
//! changes the configuration through whichever node leads (add, promote,
//! remove, replace a crashed voter) and waits for it to settle.
//!
//! Transport: by default messages go from node to node as encoded bytes.
//! With [`SimConfig::transport`] they travel as frames of a [`transport`]
//! layer (transport v2's `raft_host::secure::Link`s, or a test-only unbound
//! framing as a negative control), handshakes included, and an
//! [`adversary`] on the network may record, replay and redirect them.
//! [`Cluster::record_violations`] turns invariant violations into records
//! instead of panics, for tests that show an attack breaks safety.
//!
//! ```
//! use raft_tests::sim::{Cluster, SimConfig};
//! use raft_core::Duration;
//!
//! let mut c = Cluster::new(SimConfig::new(3, 42));
//! let leader = c.check_one_leader();
//! c.disconnect(leader);
//! let next = c.check_one_leader();
//! assert_ne!(leader, next);
//! c.connect(leader);
//! c.run_for(Duration::from_secs(1));
//! assert_eq!(c.leaders().len(), 1);
//! ```

pub mod adversary;
pub mod clients;
pub mod clock;
mod cluster;
pub mod disk;
pub mod invariants;
pub mod kv;
pub mod members;
pub mod mit;
pub mod network;
pub mod rng;
pub mod schedule;
pub mod snapshots;
pub mod trace;
pub mod transport;
mod views;

pub use cluster::{
    Applied, ApplyHook, Cluster, CompactHook, Election, NodeStats, ReadDone, ReadHook, SimConfig, Stats, StepObserver,
    TransferDone,
};
pub use disk::{DiskConfig, DurableState};
pub use members::{ChangeFailed, ChangeTask, sim_addr};
pub use network::{MsgKind, MsgStats, NetConfig};
pub use rng::SimRng;
pub use trace::{ConfigSummary, TraceEvent, TraceKind};
pub use transport::{FrameMode, FrameStats, TransportConfig};

/// Reads the seeds a test should run: `RAFT_SEED=N` gives just `[N]`;
/// otherwise `RAFT_SEEDS=K` (default `default_count`) gives `0..K`, offset
/// by `base` so that different scenarios explore different seeds, and by
/// `RAFT_SEED_OFFSET` (default 0; the soak command's chunks set it).
pub fn seeds(base: u64, default_count: u64) -> Vec<u64> {
    if let Some(s) = env_u64("RAFT_SEED") {
        return vec![s];
    }
    let count = env_u64("RAFT_SEEDS").unwrap_or(default_count);
    let start = base.wrapping_add(env_u64("RAFT_SEED_OFFSET").unwrap_or(0));
    (0..count).map(|k| start.wrapping_add(k)).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Under `RAFT_SOAK=1` (set by the soak command, [`crate::soak`]), prints
/// how many seeds just passed, for the soak command to count.
pub fn soak_report(passed: usize) {
    if std::env::var_os("RAFT_SOAK").is_some_and(|v| v != "0") {
        eprintln!("{}{passed}", crate::soak::MARKER);
    }
}

/// Runs `f` for every seed of [`seeds`]`(base, default_count)`. If a run
/// panics, prints the seed and how to rerun just that seed, then re-raises
/// the panic.
pub fn for_each_seed(base: u64, default_count: u64, mut f: impl FnMut(u64)) {
    let seeds = seeds(base, default_count);
    for &seed in &seeds {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        if let Err(p) = r {
            eprintln!("FAILED with seed {seed}; rerun only this seed with RAFT_SEED={seed}");
            std::panic::resume_unwind(p);
        }
    }
    soak_report(seeds.len());
}
