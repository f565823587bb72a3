//! The cluster key file, and the cluster id derived from the key.

use raft_host::ClusterKey;
use std::path::Path;

/// Reads a key file (64 hex digits, as `raft-udp keygen` prints). The error
/// is one line naming the file and what is wrong.
pub fn read_key(path: &Path) -> Result<ClusterKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    ClusterKey::from_hex(&text).map_err(|e| format!("key file {}: {e}", path.display()))
}

/// The id a data directory is stamped with: the first 8 bytes of an
/// HMAC-SHA256 under the key (of a fixed label), so every node holding the
/// key derives the same id, and the id reveals nothing about the key.
pub fn cluster_id(key: &ClusterKey) -> u64 {
    let frame = key.seal(0, b"raft-udp cluster id");
    let tag = &frame[frame.len() - 32..];
    let mut id = [0u8; 8];
    id.copy_from_slice(&tag[..8]);
    u64::from_le_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_depends_on_the_key_only() {
        let a = ClusterKey::from_bytes([1; 32]);
        let b = ClusterKey::from_bytes([2; 32]);
        assert_eq!(cluster_id(&a), cluster_id(&a.clone()));
        assert_ne!(cluster_id(&a), cluster_id(&b));
    }

    #[test]
    fn key_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        assert!(read_key(&missing).unwrap_err().contains("nope.key"));
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex").unwrap();
        let e = read_key(&bad).unwrap_err();
        assert!(e.contains("bad.key") && e.contains("hex"), "{e}");
        let good = dir.path().join("good.key");
        let k = ClusterKey::generate().unwrap();
        std::fs::write(&good, format!("{}\n", k.to_hex())).unwrap();
        assert_eq!(read_key(&good).unwrap(), k);
    }
}
