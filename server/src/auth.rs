//! Tokens and failed attempts, shared by every door that takes a bearer
//! token (the API, browser agents' signalling): the token is read from the
//! header, compared in constant time, and an address past its failures is
//! answered 429 for the rest of the minute.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::rate::PerKey;

/// Failed authentications one address may make per window.
pub const MAX_AUTH_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once (spoofed sources cannot grow it past this).
const MAX_TRACKED: usize = 10_000;

/// Failed authentications by source address, in fixed one-minute windows.
pub struct AuthFailures(Mutex<PerKey<IpAddr>>);

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures(Mutex::new(PerKey::new(WINDOW, MAX_TRACKED)))
    }
}

impl AuthFailures {
    fn lock(&self) -> std::sync::MutexGuard<'_, PerKey<IpAddr>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip` is over its failures now.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock().count(&ip, now) >= MAX_AUTH_FAILURES as u64
    }

    /// Counts one failure of `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        self.lock().add(&ip, now);
    }

    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

/// The token from `Authorization: Bearer …`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Compares without leaking where the first difference is.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The answer to an address past its failures.
pub fn too_many() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "60")],
        "too many failed authentications from this address; try again in a minute\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_an_address_for_the_rest_of_its_minute_only() {
        let f = AuthFailures::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_AUTH_FAILURES {
            assert!(!f.blocked(a, t0));
            f.failed(a, t0);
        }
        assert!(f.blocked(a, t0));
        assert!(!f.blocked(b, t0));
        assert!(!f.blocked(a, t0 + WINDOW));
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let f = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 500) {
            f.failed(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0);
        }
        assert!(f.tracked() <= MAX_TRACKED);
        // Once their minute is over, the old entries make room.
        f.failed("203.0.113.9".parse().unwrap(), t0 + WINDOW);
        assert!(f.tracked() <= MAX_TRACKED);
        assert!(!f.blocked("203.0.113.9".parse().unwrap(), t0 + WINDOW));
    }
}
