//! The sliding replay window over a direction's 64-bit counters (the
//! bitmap of RFC 6479, as WireGuard uses it): a frame may arrive late, out
//! of order, by up to [`REPLAY_WINDOW`] counters behind the newest one
//! accepted, and each counter is accepted once.
//!
//! The bitmap is a ring of 64-bit words: advancing the newest counter
//! clears only the words it moves over, so an update costs at most one pass
//! over the ring and usually one word. One word more than the window keeps
//! the oldest word of the window intact while the newest is being reused.

/// How far behind the newest accepted counter a frame may be and still be
/// accepted (once).
pub const REPLAY_WINDOW: u64 = 2048;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize + 1;
const RING_BITS: u64 = WORDS as u64 * 64;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Seen before.
    Replayed,
    /// Further behind the newest than the window reaches.
    TooOld,
}

/// The counters seen in one receiving direction.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    /// The newest counter accepted, if any.
    newest: Option<u64>,
    bits: [u64; WORDS],
}

impl ReplayWindow {
    pub(crate) fn new() -> ReplayWindow {
        ReplayWindow { newest: None, bits: [0; WORDS] }
    }

    /// Whether `counter` would be accepted; changes nothing, so a frame is
    /// checked before its (costlier) authentication and marked after.
    pub(crate) fn check(&self, counter: u64) -> Result<(), Refused> {
        let Some(newest) = self.newest else { return Ok(()) };
        if counter > newest {
            return Ok(());
        }
        if newest - counter >= REPLAY_WINDOW {
            return Err(Refused::TooOld);
        }
        let (word, bit) = Self::slot(counter);
        if self.bits[word] & bit != 0 { Err(Refused::Replayed) } else { Ok(()) }
    }

    /// Records `counter` as accepted. Call only after [`check`](Self::check)
    /// passed and the frame authenticated.
    pub(crate) fn mark(&mut self, counter: u64) {
        match self.newest {
            Some(newest) if counter <= newest => {}
            Some(newest) => {
                let (from, to) = (newest / 64, counter / 64);
                // Clear the words between the old newest and the new one;
                // a jump of a whole ring or more clears them all.
                let steps = (to - from).min(WORDS as u64);
                for i in 1..=steps {
                    self.bits[((from + i) % WORDS as u64) as usize] = 0;
                }
                self.newest = Some(counter);
            }
            None => {
                self.bits = [0; WORDS];
                self.newest = Some(counter);
            }
        }
        let (word, bit) = Self::slot(counter);
        self.bits[word] |= bit;
    }

    fn slot(counter: u64) -> (usize, u64) {
        let at = counter % RING_BITS;
        ((at / 64) as usize, 1u64 << (at % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn accept(w: &mut ReplayWindow, c: u64) -> Result<(), Refused> {
        w.check(c)?;
        w.mark(c);
        Ok(())
    }

    #[test]
    fn in_order_reordered_replayed_and_old() {
        let mut w = ReplayWindow::new();
        assert_eq!(accept(&mut w, 0), Ok(()));
        assert_eq!(accept(&mut w, 0), Err(Refused::Replayed));
        assert_eq!(accept(&mut w, 5), Ok(()));
        assert_eq!(accept(&mut w, 3), Ok(()));
        assert_eq!(accept(&mut w, 3), Err(Refused::Replayed));
        assert_eq!(accept(&mut w, 4), Ok(()));
        assert_eq!(accept(&mut w, 5 + REPLAY_WINDOW), Ok(()));
        assert_eq!(accept(&mut w, 5), Err(Refused::TooOld));
        assert_eq!(accept(&mut w, 6), Ok(()), "the oldest counter inside the window");
        assert_eq!(accept(&mut w, 6), Err(Refused::Replayed));
        assert_eq!(accept(&mut w, u64::MAX - 1), Ok(()));
        assert_eq!(accept(&mut w, 6 + REPLAY_WINDOW), Err(Refused::TooOld));
        assert_eq!(accept(&mut w, u64::MAX - REPLAY_WINDOW), Ok(()));
        assert_eq!(accept(&mut w, u64::MAX - REPLAY_WINDOW - 1), Err(Refused::TooOld));
    }

    #[test]
    fn a_failed_check_changes_nothing() {
        let mut w = ReplayWindow::new();
        w.mark(10);
        assert_eq!(w.check(11), Ok(()));
        assert_eq!(w.check(11), Ok(()), "check alone does not mark");
        assert_eq!(w.check(10), Err(Refused::Replayed));
    }

    /// The window against a model that remembers every counter: same
    /// answer for every counter of a random stream (small jumps, big
    /// jumps, replays of earlier counters).
    fn agrees_with_model(steps: Vec<(u8, u16)>) -> bool {
        let mut w = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        let mut newest: Option<u64> = None;
        let mut base = 0u64;
        for (kind, n) in steps {
            let c = match kind % 4 {
                0 => base + u64::from(n % 64),
                1 => base.saturating_sub(u64::from(n % 4096)),
                2 => {
                    base += u64::from(n);
                    base
                }
                _ => seen.iter().nth(usize::from(n) % seen.len().max(1)).copied().unwrap_or(0),
            };
            let expected = match newest {
                Some(top) if c <= top && top - c >= REPLAY_WINDOW => Err(Refused::TooOld),
                _ if seen.contains(&c) => Err(Refused::Replayed),
                _ => Ok(()),
            };
            if accept(&mut w, c) != expected {
                return false;
            }
            if expected.is_ok() {
                seen.insert(c);
                newest = newest.max(Some(c));
            }
        }
        true
    }

    quickcheck::quickcheck! {
        fn window_agrees_with_a_model_of_every_counter(steps: Vec<(u8, u16)>) -> bool {
            agrees_with_model(steps)
        }
    }
}
