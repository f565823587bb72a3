//! The adapter conformance suite: every scenario of
//! `raft_conformance::scenarios` on every runtime and transport (tokio and
//! smol, TCP and UDP), plus interoperability (TCP clusters mixing tokio and
//! smol nodes: one frame format).

use raft_conformance::ClusterUnderTest;
use raft_conformance::inproc::{ALL, Adapter, InProcessCluster, RuntimeKind, TransportKind};
use raft_conformance::scenarios;

/// Three members of one kind (one runtime shared by the three).
fn cluster(runtime: RuntimeKind, transport: TransportKind) -> InProcessCluster {
    let a = Adapter::new(runtime, transport);
    InProcessCluster::new(vec![a.clone(), a.clone(), a])
}

/// Runs `scenario` on a fresh cluster of every kind, one after another.
fn on_every_kind(scenario: fn(&dyn ClusterUnderTest)) {
    for (runtime, transport) in ALL {
        let c = cluster(runtime, transport);
        eprintln!("-- {}", c.name());
        scenario(&c);
    }
}

#[test]
fn election() {
    on_every_kind(scenarios::election);
}

#[test]
fn replication() {
    on_every_kind(scenarios::replication);
}

#[test]
fn leader_kill_restart() {
    on_every_kind(scenarios::leader_kill_restart);
}

#[test]
fn follower_kill_restart() {
    on_every_kind(scenarios::follower_kill_restart);
}

#[test]
fn partition_heal() {
    on_every_kind(scenarios::partition_heal);
}

#[test]
fn transfer_leadership() {
    on_every_kind(scenarios::transfer_leadership);
}

#[test]
fn linearizable_history() {
    on_every_kind(scenarios::linearizable_history);
}

#[test]
fn hostile_frames() {
    on_every_kind(scenarios::hostile_frames);
}

#[test]
fn graceful_shutdown() {
    on_every_kind(scenarios::graceful_shutdown);
}

mod interop {
    use super::*;

    fn tokio() -> std::sync::Arc<Adapter> {
        Adapter::new(RuntimeKind::Tokio, TransportKind::Tcp)
    }

    fn smol() -> std::sync::Arc<Adapter> {
        Adapter::new(RuntimeKind::Smol, TransportKind::Tcp)
    }

    #[test]
    fn mixed_cluster_replicates_and_survives_a_leader_kill() {
        let t = tokio();
        let c = InProcessCluster::new(vec![t.clone(), smol(), t]);
        scenarios::replication(&c);
        scenarios::leader_kill_restart(&c);
    }

    #[test]
    fn mixed_cluster_partition_heal() {
        let t = tokio();
        let c = InProcessCluster::new(vec![smol(), t, smol()]);
        scenarios::partition_heal(&c);
    }
}
