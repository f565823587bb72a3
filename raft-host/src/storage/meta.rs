//! Which node and cluster a data directory belongs to.

use super::error::StorageError;
use super::files;
use super::fs::Fs;
use raft_core::NodeId;
use serde::{Deserialize, Serialize};
use std::path::Path;

const META_FILE: &str = "meta";
const META_MAGIC: &[u8; 8] = b"RAFTMETA";
const META_VERSION: u32 = 1;

/// The identity a data directory is stamped with when it is created.
///
/// [`DiskLog::open`](super::DiskLog::open) refuses a directory stamped with
/// another node or cluster, so a misconfigured host cannot start from (and
/// corrupt the cluster with) someone else's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeMeta {
    /// This node's id in the cluster.
    pub node_id: NodeId,
    /// An id shared by every member of one cluster and by no other cluster.
    pub cluster_id: u64,
}

impl NodeMeta {
    /// A node `node_id` of cluster `cluster_id`.
    pub fn new(node_id: NodeId, cluster_id: u64) -> NodeMeta {
        NodeMeta { node_id, cluster_id }
    }
}

/// Reads the stamp; `None` for a directory never stamped.
pub(super) fn read(fs: &dyn Fs, dir: &Path) -> Result<Option<NodeMeta>, StorageError> {
    files::remove_leftover_tmp(fs, dir, META_FILE)?;
    files::read_small(fs, dir, META_FILE, META_MAGIC, META_VERSION)
}

/// Stamps the directory, atomically and durably.
pub(super) fn write(fs: &dyn Fs, dir: &Path, meta: &NodeMeta) -> Result<(), StorageError> {
    files::write_small(fs, dir, META_FILE, META_MAGIC, META_VERSION, meta)
}

/// Checks a stamp against what the caller expects.
pub(super) fn check(dir: &Path, expected: &NodeMeta, found: &NodeMeta) -> Result<(), StorageError> {
    if found.cluster_id != expected.cluster_id {
        return Err(StorageError::WrongCluster {
            dir: dir.to_path_buf(),
            expected: expected.cluster_id,
            found: found.cluster_id,
        });
    }
    if found.node_id != expected.node_id {
        return Err(StorageError::WrongNode {
            dir: dir.to_path_buf(),
            expected: expected.node_id,
            found: found.node_id,
        });
    }
    Ok(())
}
