//! Parsers for command-line values. Each error is one line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// `HOST:PORT` or `IP:PORT`, resolved now (IPv4 preferred when a name has both).
pub(crate) fn addr(text: &str) -> Result<SocketAddr, String> {
    let all: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve address {text:?} (expected HOST:PORT): {e}"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("address {text:?} resolves to nothing"))
}

/// `ID=ADDR`.
pub(crate) fn peer(text: &str) -> Result<(u64, SocketAddr), String> {
    let (id, a) = text.split_once('=').ok_or_else(|| format!("expected ID=ADDR, found {text:?}"))?;
    let id = id.trim().parse::<u64>().map_err(|_| format!("peer id {id:?} is not a non-negative integer"))?;
    Ok((id, addr(a.trim())?))
}

/// `MIN-MAX` in milliseconds, `0 < MIN < MAX`.
pub(crate) fn ms_range(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("expected MIN-MAX in milliseconds with 0 < MIN < MAX, found {text:?}");
    let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
    let lo = lo.trim().parse::<u64>().map_err(|_| bad())?;
    let hi = hi.trim().parse::<u64>().map_err(|_| bad())?;
    if lo == 0 || lo >= hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// A duration: `10s`, `1.5s`, `500ms`, `2m`, or a plain number of seconds.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("expected a duration like 10s or 500ms, found {text:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown duration unit {unit:?} in {text:?} (use ms, s or m)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("duration {text:?} must be above zero and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A strictly positive integer.
pub(crate) fn positive(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive integer, found {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(peer("2=127.0.0.1:7002").unwrap(), (2, "127.0.0.1:7002".parse().unwrap()));
        assert!(peer("x=127.0.0.1:1").unwrap_err().contains("peer id"));
        assert!(peer("127.0.0.1:1").unwrap_err().contains("ID=ADDR"));
        assert!(addr("nonsense").is_err());
        assert!(addr("localhost:80").unwrap().ip().is_loopback());
        assert_eq!(ms_range("300-600").unwrap(), (300, 600));
        assert!(ms_range("600-300").is_err() && ms_range("0-1").is_err() && ms_range("5").is_err());
        assert_eq!(duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("3").unwrap(), Duration::from_secs(3));
        assert!(duration("0s").is_err() && duration("5h").is_err() && duration("-1s").is_err());
        assert!(positive("0").is_err() && positive("3").is_ok());
    }
}
