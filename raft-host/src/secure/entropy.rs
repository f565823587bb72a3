//! Where handshakes get their fresh randomness.
//!
//! Every handshake draws a 32-byte seed from an [`Entropy`] source the host
//! passes in, and snow takes its ephemeral keys from a generator keyed by
//! that seed ([`Drbg`], HMAC-SHA256 in counter mode). A production host
//! passes [`OsEntropy`]; a simulator passes [`SeededEntropy`] so that a run
//! replays from its seed. Nothing in this module reads a global RNG on its
//! own.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::fmt;

/// A source of unpredictable bytes for handshakes.
pub trait Entropy {
    /// Fills `dest` entirely.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError>;
}

/// The operating system's random source (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(dest).map_err(|_| EntropyError)
    }
}

/// A deterministic stream from a seed, for simulators and tests: anyone who
/// knows the seed knows every ephemeral key drawn from it, so a real
/// deployment never uses it.
#[derive(Clone)]
pub struct SeededEntropy(Drbg);

impl SeededEntropy {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        SeededEntropy(Drbg::new(key))
    }
}

impl fmt::Debug for SeededEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededEntropy")
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        self.0.fill(dest);
        Ok(())
    }
}

/// The random source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntropyError;

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the random source failed")
    }
}

impl std::error::Error for EntropyError {}

/// HMAC-SHA256(key, block counter) blocks: a PRF in counter mode, so the
/// output is unpredictable to whoever does not know `key`.
#[derive(Clone)]
pub(crate) struct Drbg {
    key: [u8; 32],
    block: u64,
}

impl Drbg {
    pub(crate) fn new(key: [u8; 32]) -> Drbg {
        Drbg { key, block: 0 }
    }

    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            // HMAC takes keys of any length: 32 bytes cannot fail.
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
            mac.update(&self.block.to_le_bytes());
            self.block = self.block.wrapping_add(1);
            chunk.copy_from_slice(&mac.finalize().into_bytes()[..chunk.len()]);
        }
    }
}

impl Random for Drbg {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.fill(dest);
        Ok(())
    }
}

/// snow's pure-Rust primitives with the ephemeral randomness of one
/// handshake coming from a seed the host supplied.
pub(crate) struct SeededResolver {
    seed: [u8; 32],
}

impl SeededResolver {
    /// Draws the seed of one handshake.
    pub(crate) fn draw(entropy: &mut dyn Entropy) -> Result<SeededResolver, EntropyError> {
        let mut seed = [0u8; 32];
        entropy.fill(&mut seed)?;
        Ok(SeededResolver { seed })
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Drbg::new(self.seed)))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_replay_and_differ_by_seed() {
        let (mut a, mut b, mut c) = (SeededEntropy::new(1), SeededEntropy::new(1), SeededEntropy::new(2));
        let (mut x, mut y, mut z) = ([0u8; 70], [0u8; 70], [0u8; 70]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        c.fill(&mut z).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, z);
        // Blocks do not repeat within a stream.
        assert_ne!(x[..32], x[32..64]);
        let mut next = [0u8; 32];
        a.fill(&mut next).unwrap();
        assert_ne!(next[..], x[..32]);
    }
}
