//! The API's door: who may change the node, from which page, how often a
//! wrong token may be tried.
//!
//! - Changes (PUT, POST, DELETE, PATCH) always need the API token: the one
//!   in `node.api_token`, or the one the node generated at first start and
//!   keeps in `<data>/api-token` (mode 0600).
//! - Reads need it too when a token is configured; without one they are
//!   open, which the node allows only on a loopback listener (or with
//!   `--insecure-api`).
//! - The `Host` header must name an IP address, `localhost`, or one of
//!   `node.api_hosts`: a web page on a rebinding domain cannot reach an API
//!   on localhost through the victim's browser.
//! - Ten failed authentications per minute from one address, then 429
//!   until the minute is over (API tokens and browser agents' tokens alike).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::call::Node;
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

/// The configured token, or the one kept in the data directory (made at
/// first start, readable by the node's user only).
pub fn load_or_create_token(
    configured: Option<&str>,
    data: &Path,
) -> std::io::Result<(String, Option<PathBuf>)> {
    if let Some(t) = configured {
        return Ok((t.to_string(), None));
    }
    let path = data.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if t.len() >= 16 {
            return Ok((t, Some(path)));
        }
    }
    let token = format!("{:032x}", rand::random::<u128>());
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok((token, Some(path)))
}

/// Whether a `Host` header may reach this API.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|h| h.parse::<IpAddr>().is_ok())
        }
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn peer(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// The Host check, for every route (the softphone and its signalling too).
pub async fn check_host(
    State(node): State<std::sync::Arc<Node>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    // Health probes (load balancers, monitors) name the node however they like.
    let probe = req.uri().path() == "/health";
    if let Some(h) = host.filter(|_| !probe) {
        if !host_allowed(&h, &node.config.node.api_hosts) {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "unknown Host (add it to node.api_hosts)\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The token check for the admin API.
pub async fn auth(State(node): State<std::sync::Arc<Node>>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let needs_token = changes || node.config.node.api_token.is_some();
    if !needs_token {
        return next.run(req).await;
    }
    let ip = peer(&req);
    let now = Instant::now();
    if node.auth_failures.blocked(ip, now) {
        return too_many();
    }
    if bearer(req.headers()).is_some_and(|t| same(t, &node.api_token)) {
        return next.run(req).await;
    }
    node.auth_failures.failed(ip, now);
    let why = if changes && node.config.node.api_token.is_none() {
        "changes need the API token (Authorization: Bearer <token>; the node keeps it in <data>/api-token)\n"
    } else {
        "missing or wrong bearer token\n"
    };
    (StatusCode::UNAUTHORIZED, why).into_response()
}

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
    fn hosts_are_addresses_localhost_or_named() {
        let names = vec!["pbx.example.com".to_string()];
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "10.0.0.5",
            "PBX.example.com:443",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "rebind.attacker.net",
            "localhost.evil.net",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }

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

    #[test]
    fn a_generated_token_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (t1, path) = load_or_create_token(None, &dir).unwrap();
        let path = path.unwrap();
        assert_eq!(t1.len(), 32);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (t2, _) = load_or_create_token(None, &dir).unwrap();
        assert_eq!(t1, t2);
        let (t3, none) = load_or_create_token(Some("configured-token"), &dir).unwrap();
        assert_eq!((t3.as_str(), none), ("configured-token", None));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
