//! A small seeded PRNG (SplitMix64). The core's only source of randomness.

/// Deterministic generator: the same seed always yields the same sequence.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`; returns `lo` when the range is empty.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        // Multiply-shift: bias below 2^-64 * span, irrelevant for timeouts.
        lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence_and_range_is_respected() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..10_000 {
            let x = a.range(300, 600);
            assert_eq!(x, b.range(300, 600));
            assert!((300..600).contains(&x));
            seen_low |= x < 330;
            seen_high |= x >= 570;
        }
        assert!(seen_low && seen_high, "range not spread");
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert_eq!(Rng::new(5).range(7, 7), 7);
    }
}
