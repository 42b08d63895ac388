//! Data services behind the host API: HTTP to granted hosts, the clock in a
//! time zone, plugin counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::hookline::call::data::{CivilTime, HttpRequest, HttpResponse};
use super::manifest::Grants;
use super::net_guard::NetGuard;
use super::CallError;

/// Largest response body handed to a plugin.
pub const MAX_BODY: usize = 1 << 20;
/// Largest request body a plugin may send.
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// Distinct counters per node (a plugin inventing names cannot flood /metrics;
/// each plugin has its own, smaller quota within this).
const MAX_COUNTERS: usize = 1000;

/// The HTTP client plugins share: no redirects (a redirect could lead off the
/// granted hosts or to a refused address; the plugin sees the 3xx and may
/// fetch the new URL, which is checked like any other), no proxies from the
/// environment.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap_or_default()
}

fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
}

/// Fetches a URL if its host and port are granted and the address is one a
/// plugin may reach (see [`super::net_guard`]); at most `room` bytes of body
/// are taken.
pub async fn http_fetch(
    client: &reqwest::Client,
    guard: &NetGuard,
    grants: &Grants,
    req: HttpRequest,
    room: u64,
) -> Result<HttpResponse, CallError> {
    let url = reqwest::Url::parse(&req.url)
        .map_err(|e| CallError::InvalidArgument(format!("url {:?}: {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CallError::InvalidArgument(
            "only http:// and https:// URLs".into(),
        ));
    }
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    if !grants.allows_host(&host, port) {
        return Err(CallError::NotAllowed);
    }
    let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|m| ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&m.as_str()))
        .ok_or_else(|| CallError::InvalidArgument(format!("method {:?}", req.method)))?;
    let timeout = match req.timeout_ms {
        0 => Duration::from_secs(5),
        ms => Duration::from_millis(ms.clamp(100, 30_000).into()),
    };
    // Where the request would really go, checked before it is sent.
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    let addrs: Vec<std::net::SocketAddr> = match literal {
        Some(ip) => vec![std::net::SocketAddr::new(ip, port)],
        None => tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| CallError::Failed("http: name lookup timed out".into()))?
            .map_err(|_| CallError::Failed(format!("http: cannot resolve {host:?}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(CallError::Failed(format!("http: cannot resolve {host:?}")));
    }
    if !grants.names_exactly(&host, port) {
        if let Some(why) = addrs.iter().find_map(|a| guard.refuses(*a)) {
            tracing::warn!("plugin HTTP to {host}:{port} refused: {why}");
            return Err(CallError::NotAllowed);
        }
    }
    // A name is pinned to the addresses just checked (no second lookup).
    let pinned;
    let client = match literal {
        Some(_) => client,
        None => {
            pinned = http_client_builder()
                .resolve_to_addrs(&host, &addrs)
                .build()
                .map_err(|e| CallError::Failed(format!("http: {e}")))?;
            &pinned
        }
    };
    let mut builder = client.request(method, url).timeout(timeout);
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if let Some(body) = req.body {
        if body.len() > MAX_REQUEST_BODY {
            return Err(CallError::InvalidArgument(
                "request body above 1 MiB".into(),
            ));
        }
        builder = builder.body(body);
    }
    let mut resp = builder
        .send()
        .await
        .map_err(|e| CallError::Failed(format!("http: {}", without_url(&e))))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .take(100)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let max = (MAX_BODY as u64).min(room) as usize;
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let left = max - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(left)]);
                if body.len() >= max {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return Err(CallError::Failed(format!("http body: {}", without_url(&e)))),
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        return "cannot connect".into();
    }
    e.to_string()
}

/// The wall clock in an IANA zone.
pub fn civil_time(zone: &str, now_ms: i64) -> Result<CivilTime, CallError> {
    let tz = jiff::tz::TimeZone::get(zone)
        .map_err(|_| CallError::InvalidArgument(format!("unknown time zone {zone:?}")))?;
    let ts =
        jiff::Timestamp::from_millisecond(now_ms).map_err(|e| CallError::Failed(e.to_string()))?;
    let z = ts.to_zoned(tz);
    Ok(CivilTime {
        year: z.year() as i32,
        month: z.month() as u8,
        day: z.day() as u8,
        hour: z.hour() as u8,
        minute: z.minute() as u8,
        second: z.second() as u8,
        weekday: z.weekday().to_monday_one_offset() as u8,
        utc_offset_s: z.offset().seconds(),
    })
}

/// Counters plugins keep, for /metrics.
#[derive(Default)]
pub struct Counters(Mutex<HashMap<(String, String), u64>>);

impl Counters {
    /// Adds to a counter; a plugin past `per_plugin` distinct names gets no new ones.
    pub fn add(&self, plugin: &str, name: &str, delta: u64, per_plugin: u32) {
        let name: String = name
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let len = map.len();
        let key = (plugin.to_string(), name);
        if let Some(v) = map.get_mut(&key) {
            *v = v.saturating_add(delta);
        } else if len < MAX_COUNTERS
            && map.keys().filter(|(p, _)| p == plugin).count() < per_plugin as usize
        {
            map.insert(key, delta);
        }
    }

    /// Every plugin's counters, labelled by plugin and name.
    pub fn metrics(&self, m: &mut crate::metrics::Scrape) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = map.iter().collect();
        all.sort();
        for ((p, n), v) in all {
            m.counter_with(
                "hookline_plugin_counter",
                "Counters plugins keep (the counter verb).",
                &[("plugin", p.as_str()), ("name", n.as_str())],
                *v,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_follows_the_zone_and_rejects_unknown_ones() {
        // 2026-11-23T03:30:00Z is Monday 09:30 in Omsk (UTC+6).
        let ms = "2026-11-23T03:30:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let t = civil_time("Asia/Omsk", ms).unwrap();
        assert_eq!(
            (t.hour, t.minute, t.weekday, t.utc_offset_s),
            (9, 30, 1, 6 * 3600)
        );
        assert!(matches!(
            civil_time("Nowhere/Land", ms),
            Err(CallError::InvalidArgument(_))
        ));
    }

    #[test]
    fn counters_sanitise_names_and_cap_their_number() {
        let c = Counters::default();
        c.add("p", "calls answered", 2, 100);
        c.add("p", "calls answered", 3, 100);
        assert!(
            crate::metrics::render_with(|m| c.metrics(m)).contains("name=\"calls_answered\"} 5")
        );
        for i in 0..2000 {
            c.add("p", &format!("n{i}"), 1, u32::MAX);
        }
        assert_eq!(
            crate::metrics::render_with(|m| c.metrics(m))
                .matches("hookline_plugin_counter_total{")
                .count(),
            MAX_COUNTERS
        );
    }

    #[test]
    fn one_plugin_cannot_take_every_counter() {
        let c = Counters::default();
        for i in 0..500 {
            c.add("greedy", &format!("n{i}"), 1, 100);
        }
        c.add("other", "calls", 1, 100);
        let text = crate::metrics::render_with(|m| c.metrics(m));
        assert_eq!(text.matches("plugin=\"greedy\"").count(), 100);
        assert!(text.contains("plugin=\"other\",name=\"calls\"} 1"));
    }
}
