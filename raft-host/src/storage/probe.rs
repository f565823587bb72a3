//! How long one durable append takes on a file system, at best: the
//! fdatasync that benchmarks compare the log's group commit with.
//!
//! [`fdatasync_samples`] writes a file the way [`DiskLog`](super::DiskLog)
//! writes a segment (blocks preallocated with zeros and synced once), then
//! overwrites one record at a time in place and times each record's
//! fdatasync. No file-size metadata is written, so this is the cheapest
//! durable write the file system offers for a record of that size.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes preallocated for the probe's file.
const PREALLOCATED: u64 = 4 << 20;

/// `samples` fdatasync times of a `record_bytes` overwrite in a preallocated
/// file created in `dir` (removed afterwards).
///
/// # Errors
/// Creating, writing or syncing the file failed; the error names the file.
pub fn fdatasync_samples(dir: &Path, record_bytes: usize, samples: usize) -> std::io::Result<Vec<Duration>> {
    let path = dir.join(format!(".raft-fdatasync-probe-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
        let zeros = vec![0u8; 64 << 10];
        for _ in 0..PREALLOCATED / zeros.len() as u64 {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
        let record = vec![0x5au8; record_bytes.clamp(1, zeros.len())];
        let mut taken = Vec::with_capacity(samples);
        let mut offset = 0u64;
        for _ in 0..samples {
            if offset + record.len() as u64 > PREALLOCATED {
                offset = 0;
            }
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(&record)?;
            let started = Instant::now();
            file.sync_data()?;
            taken.push(started.elapsed());
            offset += record.len() as u64;
        }
        Ok(taken)
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The median of `samples` (zero if there are none).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_taken_and_the_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = fdatasync_samples(dir.path(), 128, 5).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the probe's file is left behind");
    }

    #[test]
    fn the_median_is_the_middle_sample() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        assert_eq!(median(ms(&[5, 1, 4, 2, 3])), Duration::from_millis(3));
        assert_eq!(median(ms(&[9, 1, 7, 3])), Duration::from_millis(7), "the upper middle of an even count");
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = fdatasync_samples(&missing, 128, 1).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn median_takes_the_middle() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }
}
