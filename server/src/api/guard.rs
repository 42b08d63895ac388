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
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{bearer, same, too_many};
use crate::call::Node;

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
