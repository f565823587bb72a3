//! The fuzz targets as bounded property tests on stable: each target's body
//! runs on its checked-in seed corpus, then on seeded random inputs and on
//! seeded mutations of the corpus (byte flips, cuts, splices, insertions).
//!
//! `RAFT_FUZZ_CASES` sets how many generated inputs each target gets
//! (default 2000); `RAFT_FUZZ_SEED` sets the seed (default fixed, so CI is
//! reproducible). A failing input is printed in hex with the seed and the
//! case number; write it to a file and replay it with
//! `cargo +nightly fuzz run <target> <file>`, or paste it into a test.

use std::path::PathBuf;

/// Inputs per target unless `RAFT_FUZZ_CASES` says otherwise.
const CASES: u64 = 2000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

use raft_fuzz::rng::Rng;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no seed corpus at {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the seed corpus of {target} is empty");
    files.iter().map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))).collect()
}

/// A libFuzzer-style mutation of `base`, spliced with `other`.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let k = rng.below(v.len());
                v[k] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let k = rng.below(v.len());
                v[k] = [0, 1, 0x7f, 0x80, 0xff, 0xfb, 0xfc, 0xfd][rng.below(8)];
            }
            2 => {
                let k = rng.below(v.len() + 1);
                let n = 1 + rng.below(16);
                let extra = rng.bytes(n);
                v.splice(k..k, extra);
            }
            3 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = a + rng.below(v.len() - a + 1);
                v.drain(a..b);
            }
            4 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = a + rng.below(other.len() - a + 1);
                let k = rng.below(v.len() + 1);
                v.splice(k..k, other[a..b].iter().copied());
            }
            _ => v.truncate(rng.below(v.len() + 1)),
        }
    }
    v
}

fn check(target: &str, run: fn(&[u8]), salt: u64) {
    let seeds = corpus(target);
    for (k, input) in seeds.iter().enumerate() {
        let r = std::panic::catch_unwind(|| run(input));
        if r.is_err() {
            panic!("{target}: seed corpus file #{k} fails");
        }
    }
    let seed = env_u64("RAFT_FUZZ_SEED").unwrap_or(0x5EED_F022) ^ salt;
    let mut rng = Rng::new(seed);
    for case in 0..env_u64("RAFT_FUZZ_CASES").unwrap_or(CASES) {
        let input = if case % 4 == 0 {
            let len = rng.below(512);
            rng.bytes(len)
        } else {
            let base = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, base, other)
        };
        let r = std::panic::catch_unwind(|| run(&input));
        if r.is_err() {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!("{target}: case {case} (RAFT_FUZZ_SEED={seed_env}) fails on input {hex}", seed_env = seed ^ salt);
        }
    }
}

#[test]
fn codec() {
    check("codec", raft_fuzz::codec::run, 1);
}

#[test]
fn frame() {
    check("frame", raft_fuzz::frame::run, 2);
}

#[test]
fn udp_packet() {
    check("udp_packet", raft_fuzz::udp_packet::run, 3);
}

#[test]
fn fragments() {
    check("fragments", raft_fuzz::fragments::run, 4);
}

#[test]
fn disk_recovery() {
    check("disk_recovery", raft_fuzz::disk_recovery::run, 5);
}

#[test]
fn core_cluster() {
    check("core_cluster", raft_fuzz::core_cluster::run, 6);
}

/// Every target in the library has a test here and a libFuzzer binary.
#[test]
fn every_target_is_covered() {
    let names: Vec<&str> = raft_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["codec", "frame", "udp_packet", "fragments", "disk_recovery", "core_cluster"]);
    for name in names {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz_targets").join(format!("{name}.rs"));
        assert!(bin.exists(), "no fuzz target binary {}", bin.display());
    }
}

/// Random inputs for the core harness that elect, commit, restart and
/// restore snapshots: without them the invariants would hold vacuously.
#[test]
fn core_cluster_inputs_make_progress() {
    let mut rng = Rng::new(0xC0DE);
    let mut best = raft_fuzz::core_cluster::Reached::default();
    let (mut committed, mut restored, mut read) = (0, 0, 0);
    let cases = 200;
    for _ in 0..cases {
        let len = 256 + rng.below(2048);
        let r = raft_fuzz::core_cluster::explore(&rng.bytes(len));
        committed += u64::from(r.applied > 0);
        restored += u64::from(r.restored > 0);
        read += u64::from(r.reads > 0);
        best.applied = best.applied.max(r.applied);
    }
    println!(
        "core_cluster: of {cases} random inputs, {committed} applied entries, {restored} restored a snapshot, {read} had reads answered; best applied i{}",
        best.applied
    );
    assert!(committed >= cases / 10, "only {committed} of {cases} random inputs applied anything");
    assert!(restored > 0, "no random input restored a snapshot");
    assert!(read > 0, "no random input had a read answered");
}
