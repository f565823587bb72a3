//! The cluster key file, and the cluster id derived from its incarnation.

use raft_host::secure::{KeyFile, MAX_KEY_FILE_BYTES};
use std::io::Read as _;
use std::path::Path;

/// Reads a key file (format version 2: the key and the cluster
/// incarnation, as `raft-udp keygen` prints; see
/// [`raft_host::secure::KeyFile`]). The error is one line naming the file
/// and what is wrong.
pub fn read_key(path: &Path) -> Result<KeyFile, String> {
    let cannot = |e: std::io::Error| format!("cannot read key file {}: {e}", path.display());
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(cannot)?;
    file.take(MAX_KEY_FILE_BYTES as u64 + 1).read_to_string(&mut text).map_err(cannot)?;
    KeyFile::parse(&text).map_err(|e| format!("key file {}: {e}", path.display()))
}

/// The id a data directory is stamped with: the first 8 bytes of the
/// cluster incarnation, so every node of one cluster derives the same id, a
/// cluster rebuilt with a new key file refuses the old data directories, and
/// a key rotated within the same incarnation keeps them. It reveals nothing
/// about the key.
pub fn cluster_id(keys: &KeyFile) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&keys.incarnation.as_bytes()[..8]);
    u64::from_le_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_host::ClusterKey;

    #[test]
    fn cluster_id_depends_on_the_incarnation_only() {
        use raft_host::secure::Incarnation;
        let a = KeyFile::new(ClusterKey::from_bytes([1; 32]), Incarnation::from_bytes([1; 16]));
        let rotated = KeyFile::new(ClusterKey::from_bytes([2; 32]), a.incarnation);
        let rebuilt = KeyFile::new(a.key.clone(), Incarnation::from_bytes([2; 16]));
        assert_eq!(cluster_id(&a), cluster_id(&rotated));
        assert_ne!(cluster_id(&a), cluster_id(&rebuilt));
    }

    #[test]
    fn key_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        assert!(read_key(&missing).unwrap_err().contains("nope.key"));
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex").unwrap();
        let e = read_key(&bad).unwrap_err();
        assert!(e.contains("bad.key") && e.contains("raft-key-file v2"), "{e}");
        let v1 = dir.path().join("v1.key");
        std::fs::write(&v1, format!("{}\n", ClusterKey::generate().unwrap().to_hex())).unwrap();
        let e = read_key(&v1).unwrap_err();
        assert!(e.contains("v1.key") && e.contains("version 1"), "{e}");
        let good = dir.path().join("good.key");
        let k = KeyFile::generate(&mut raft_host::secure::OsEntropy).unwrap();
        std::fs::write(&good, k.format()).unwrap();
        assert_eq!(read_key(&good).unwrap(), k);
    }
}
