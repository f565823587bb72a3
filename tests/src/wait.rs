//! Polling until a condition holds, for the tests that run real networks
//! (the conformance suite, raft-udp's end-to-end tests).

use std::time::{Duration, Instant};

/// Polls `f` every 10 ms until it returns `Some`, for at most `limit`.
///
/// # Panics
///
/// With `what` in the message, if time runs out.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    poll_until(limit, Duration::from_millis(10), what, || f().ok_or_else(|| "not yet".to_owned()))
}

/// Polls `f` every `every` until it returns `Ok`, for at most `limit`: the
/// one deadline loop of the real-network tests (these are liveness limits,
/// generous on purpose, not speed checks).
///
/// # Panics
///
/// If time runs out, with `what` and the last `Err` (what was seen) in the message.
pub fn poll_until<T>(limit: Duration, every: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let seen = match f() {
            Ok(t) => return t,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}; last seen: {seen}");
        }
        std::thread::sleep(every);
    }
}
