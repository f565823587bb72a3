//! [`SplitMix64`]: the seeded generator behind every random choice in this
//! workspace.
//!
//! The core draws its election timeouts and its wire ids from one; the hosts
//! reuse the type for reconnect jitter, and the simulator and the fuzz inputs
//! draw every fault from it, so one `(seed, commit)` replays a whole run.
//!
//! It is not cryptographic: never use it for keys, nonces or anything an
//! attacker must not predict.

/// A deterministic pseudo-random generator (Steele, Lea and Flood's
/// SplitMix64). The same seed yields the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// The SplitMix64 finalizer applied to `z + golden gamma`: a good 64-bit
/// mixer for deriving seeds (every output bit depends on every input bit).
pub fn mix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// An independent generator for one purpose (`stream`), derived from
    /// `seed`: different streams of one seed do not share their sequences.
    pub fn stream(seed: u64, stream: u64) -> SplitMix64 {
        SplitMix64::new(mix64(seed ^ mix64(stream.wrapping_add(0xA076_1D64_78BD_642F))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let z = mix64(self.state);
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z
    }

    /// Uniform in `[0, n)`; 0 when `n == 0`. (Multiply-shift: the bias is
    /// below `n / 2^64`.)
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[lo, hi)`; `lo` when the range is empty.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }

    /// Uniform in `[lo, hi]` (inclusive); `lo` when `hi <= lo`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`. Draws no number when `p <= 0` or `p >= 1`,
    /// so a disabled fault costs nothing.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        // 53 random bits give an exact uniform double in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// A uniformly chosen element, or `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.below(items.len() as u64) as usize)
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SplitMix64, mix64};

    #[test]
    fn matches_the_reference_sequence() {
        // The first outputs of SplitMix64 seeded with 0 (reference values
        // from the published algorithm).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn same_seed_same_sequence_and_ranges_are_respected() {
        let (mut a, mut b) = (SplitMix64::new(42), SplitMix64::new(42));
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..10_000 {
            let x = a.range(300, 600);
            assert_eq!(x, b.range(300, 600));
            assert!((300..600).contains(&x));
            seen_low |= x < 330;
            seen_high |= x >= 570;
            let y = a.between(3, 7);
            assert_eq!(y, b.between(3, 7));
            assert!((3..=7).contains(&y));
        }
        assert!(seen_low && seen_high, "range not spread");
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
        assert_ne!(SplitMix64::stream(1, 0).next_u64(), SplitMix64::stream(1, 1).next_u64());
        assert_eq!(SplitMix64::new(5).range(7, 7), 7);
        assert_eq!(SplitMix64::new(5).range(9, 7), 9);
        assert_eq!(SplitMix64::new(1).below(0), 0);
        assert!(!SplitMix64::new(1).chance(0.0));
        assert!(SplitMix64::new(1).chance(1.0));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: [u32; 16] = core::array::from_fn(|i| i as u32);
        SplitMix64::new(3).shuffle(&mut v);
        let mut sorted = v;
        sorted.sort_unstable();
        assert_eq!(sorted, core::array::from_fn::<u32, 16, _>(|i| i as u32));
        assert_ne!(v, sorted, "seed 3 happens to leave 16 items in order");
    }
}
