//! Address cookies: a node answers an address with more bytes than it
//! sent only once the address has proven it receives datagrams sent to it.
//!
//! As DTLS's HelloVerifyRequest and QUIC's Retry token do, a node hands out
//! a cookie (a MAC of the client's address and an expiry time under a secret
//! random to this node's process) in a reply no larger than the request that
//! asked for it, and keeps no state. A request carrying a cookie that verifies
//! for its source address proves that whoever sent it received the cookie
//! there. A cookie works at the node that issued it until it expires
//! ([`COOKIE_LIFETIME`]), and never after that node restarts.

use crate::packet::Cookie;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a cookie is valid after it is issued.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(120);

/// Issues and checks cookies. Holds a random secret; no per-client state.
pub struct CookieJar {
    secret: [u8; 32],
    /// Expiry times count seconds from here.
    epoch: Instant,
    lifetime: Duration,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar").field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

impl CookieJar {
    /// A jar with a fresh secret from the operating system's generator.
    pub fn new(lifetime: Duration) -> CookieJar {
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&crate::random_u64().to_le_bytes());
        }
        CookieJar::with_secret(secret, Instant::now(), lifetime)
    }

    /// A jar with a given secret whose expiry times count from `epoch`.
    pub fn with_secret(secret: [u8; 32], epoch: Instant, lifetime: Duration) -> CookieJar {
        CookieJar { secret, epoch, lifetime }
    }

    fn tag(&self, addr: SocketAddr, expires: u64) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        let ip = match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(ip) => ip.octets(),
        };
        mac.update(&ip);
        mac.update(&addr.port().to_le_bytes());
        mac.update(&expires.to_le_bytes());
        mac
    }

    fn seconds(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// A cookie for `addr`, valid until `now` + the lifetime.
    pub fn issue(&self, addr: SocketAddr, now: Instant) -> Cookie {
        let expires = self.seconds(now) + self.lifetime.as_secs().max(1);
        let full = self.tag(addr, expires).finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        Cookie { expires, tag }
    }

    /// Whether `cookie` was issued by this jar for `addr` and is still valid
    /// at `now`. The tag comparison takes the same time wherever it differs.
    pub fn check(&self, addr: SocketAddr, cookie: &Cookie, now: Instant) -> bool {
        let s = self.seconds(now);
        if cookie.expires <= s || cookie.expires > s + self.lifetime.as_secs().max(1) {
            return false;
        }
        self.tag(addr, cookie.expires).verify_truncated_left(&cookie.tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_proves_one_address_for_a_bounded_time() {
        let t0 = Instant::now();
        let jar = CookieJar::with_secret([7; 32], t0, Duration::from_secs(60));
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let c = jar.issue(a, t0);
        assert!(jar.check(a, &c, t0));
        assert!(jar.check(a, &c, t0 + Duration::from_secs(59)));
        assert!(!jar.check(a, &c, t0 + Duration::from_secs(60)), "expired");
        assert!(!jar.check("10.0.0.1:4001".parse().unwrap(), &c, t0), "another port");
        assert!(!jar.check("10.0.0.2:4000".parse().unwrap(), &c, t0), "another host");
        assert!(!jar.check("[::1]:4000".parse().unwrap(), &c, t0));
        // A forged expiry (further out, or beyond the lifetime) fails.
        assert!(!jar.check(a, &Cookie { expires: c.expires + 1, ..c }, t0));
        assert!(!jar.check(a, &Cookie { expires: 10_000, ..c }, t0));
        // Any flipped bit of the tag fails.
        for i in 0..128 {
            let mut bad = c;
            bad.tag[i / 8] ^= 1 << (i % 8);
            assert!(!jar.check(a, &bad, t0));
        }
        // Another process's jar (another secret) does not accept it.
        let other = CookieJar::with_secret([8; 32], t0, Duration::from_secs(60));
        assert!(!other.check(a, &c, t0));
    }
}
