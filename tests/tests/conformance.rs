//! The adapter conformance suite: every scenario of
//! `raft_tests::conformance::scenarios` against raft-tokio and raft-smol,
//! plus interoperability (clusters mixing tokio and smol nodes: one frame
//! format).

use raft_tests::conformance::inproc::{Adapter, InProcessCluster, SmolAdapter, TokioAdapter};
use raft_tests::conformance::scenarios;
use std::sync::Arc;

fn tokio() -> Arc<dyn Adapter> {
    TokioAdapter::new()
}

fn smol() -> Arc<dyn Adapter> {
    Arc::new(SmolAdapter)
}

/// Three members of one kind (one runtime shared by the three).
fn cluster(make: fn() -> Arc<dyn Adapter>) -> InProcessCluster {
    let a = make();
    InProcessCluster::new(vec![a.clone(), a.clone(), a])
}

macro_rules! conformance {
    ($adapter:ident) => {
        mod $adapter {
            use super::*;

            #[test]
            fn election() {
                scenarios::election(&cluster(super::$adapter));
            }

            #[test]
            fn replication() {
                scenarios::replication(&cluster(super::$adapter));
            }

            #[test]
            fn leader_kill_restart() {
                scenarios::leader_kill_restart(&cluster(super::$adapter));
            }

            #[test]
            fn follower_kill_restart() {
                scenarios::follower_kill_restart(&cluster(super::$adapter));
            }

            #[test]
            fn partition_heal() {
                scenarios::partition_heal(&cluster(super::$adapter));
            }

            #[test]
            fn linearizable_history() {
                scenarios::linearizable_history(&cluster(super::$adapter));
            }

            #[test]
            fn hostile_frames() {
                scenarios::hostile_frames(&cluster(super::$adapter));
            }

            #[test]
            fn graceful_shutdown() {
                scenarios::graceful_shutdown(&cluster(super::$adapter));
            }
        }
    };
}

conformance!(tokio);
conformance!(smol);

mod interop {
    use super::*;

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
