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
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(), // [0, u64::MAX]: every value
        }
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
    fn below_range_and_between_reach_every_value_of_their_range_and_no_other() {
        let mut r = SplitMix64::new(11);
        let (mut below, mut range, mut between) = ([0u32; 5], [0u32; 5], [0u32; 5]);
        for _ in 0..5_000 {
            below[r.below(4) as usize] += 1;
            range[(r.range(10, 14) - 10) as usize] += 1;
            between[(r.between(10, 14) - 10) as usize] += 1;
        }
        // [0, 4), [10, 14) and [10, 14]: each value about equally often.
        for counts in [&below[..4], &range[..4]] {
            assert!(counts.iter().all(|&c| (1_000..1_500).contains(&c)), "{counts:?}");
        }
        assert_eq!((below[4], range[4]), (0, 0), "the upper bound of a half-open range was drawn");
        assert!(between.iter().all(|&c| (800..1_200).contains(&c)), "{between:?}");
        // An empty or inverted inclusive range is its lower bound.
        assert_eq!(r.between(7, 7), 7);
        assert_eq!(r.between(9, 3), 9);
    }

    #[test]
    fn between_covers_the_whole_u64_range() {
        // `hi - lo + 1` overflows here: it once panicked (debug) or always
        // returned `lo` (release).
        let mut r = SplitMix64::new(13);
        let draws: [u64; 64] = core::array::from_fn(|_| r.between(0, u64::MAX));
        assert!(draws.iter().any(|&x| x > u64::MAX / 2), "{draws:?}");
        assert!(draws.iter().any(|&x| x < u64::MAX / 2), "{draws:?}");
        assert_eq!(SplitMix64::new(13).between(0, u64::MAX), SplitMix64::new(13).next_u64());
        assert!(SplitMix64::new(13).between(1, u64::MAX) >= 1);
    }

    #[test]
    fn chance_comes_true_with_its_probability_and_draws_nothing_at_the_extremes() {
        let mut r = SplitMix64::new(21);
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_300..2_700).contains(&hits), "chance(0.25) came true {hits} times in 10000");
        let hits = (0..10_000).filter(|_| r.chance(0.75)).count();
        assert!((7_300..7_700).contains(&hits), "chance(0.75) came true {hits} times in 10000");
        // The draw is uniform in [0, 1) on a grid of 2^-53: chance(p) is true
        // for a draw strictly below p, so a draw equal to p is false.
        let step = 1.0 / (1u64 << 53) as f64;
        for seed in 0..100 {
            let x = (SplitMix64::new(seed).next_u64() >> 11) as f64 * step;
            assert!(!SplitMix64::new(seed).chance(x), "seed {seed}: a draw of {x} is below {x}");
            assert!(SplitMix64::new(seed).chance(x + step), "seed {seed}: a draw of {x} is not below {}", x + step);
        }
        for (p, expected) in [(0.0, false), (-1.0, false), (1.0, true), (2.0, true)] {
            let mut drawn = SplitMix64::new(5);
            assert_eq!(drawn.chance(p), expected, "chance({p})");
            assert_eq!(drawn.next_u64(), SplitMix64::new(5).next_u64(), "chance({p}) drew a number");
        }
    }

    #[test]
    fn pick_chooses_every_element_and_nothing_from_an_empty_slice() {
        let mut r = SplitMix64::new(8);
        let items = ['a', 'b', 'c'];
        let mut seen = [0u32; 3];
        for _ in 0..3_000 {
            let &c = r.pick(&items).unwrap();
            seen[(c as u8 - b'a') as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (850..1_150).contains(&n)), "{seen:?}");
        assert_eq!(r.pick::<u8>(&[]), None);
    }

    #[test]
    fn streams_of_one_seed_differ_and_a_stream_is_a_fixed_function_of_seed_and_stream() {
        // Hosts and the simulator record only the seed: the derivation must
        // neither collide nor change between runs.
        let first: [u64; 4] = core::array::from_fn(|k| SplitMix64::stream(7, k as u64).next_u64());
        for (i, a) in first.iter().enumerate() {
            assert!(first[i + 1..].iter().all(|b| a != b), "streams of seed 7 collide: {first:?}");
        }
        assert_ne!(SplitMix64::stream(7, 0).next_u64(), SplitMix64::stream(8, 0).next_u64());
        assert_ne!(SplitMix64::stream(0, 0).next_u64(), SplitMix64::new(0).next_u64());
        // stream(seed, k) is new(mix64(seed ^ mix64(k + 0xA076_1D64_78BD_642F))):
        // for seed 0 and stream 0 that is three applications of mix64.
        let seed = mix64(mix64(0xA076_1D64_78BD_642F));
        assert_eq!(SplitMix64::stream(0, 0).next_u64(), SplitMix64::new(seed).next_u64());
        let seed = mix64(5 ^ mix64(3u64.wrapping_add(0xA076_1D64_78BD_642F)));
        assert_eq!(SplitMix64::stream(5, 3).next_u64(), SplitMix64::new(seed).next_u64());
    }

    #[test]
    fn shuffle_reaches_every_order() {
        let mut r = SplitMix64::new(4);
        let mut seen = alloc::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut v = [1, 2, 3];
            r.shuffle(&mut v);
            seen.insert(v);
        }
        // Including the orders that leave an element in place.
        assert_eq!(seen.len(), 6, "{seen:?}");
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
