//! Data services behind the host API: HTTP to granted hosts, the clock in a
//! time zone, plugin counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::hookline::call::data::{CivilTime, HttpRequest, HttpResponse};
use super::manifest::Grants;
use super::CallError;

/// Largest response body handed to a plugin.
pub const MAX_BODY: usize = 1 << 20;
/// Largest request body a plugin may send.
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// Distinct counters per node (a plugin inventing names cannot flood /metrics).
const MAX_COUNTERS: usize = 1000;

/// The HTTP client plugins share: no redirects (a redirect could lead off the
/// granted hosts), no proxies from the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Fetches a URL if its host is granted.
pub async fn http_fetch(
    client: &reqwest::Client,
    grants: &Grants,
    req: HttpRequest,
) -> Result<HttpResponse, CallError> {
    let url = reqwest::Url::parse(&req.url)
        .map_err(|e| CallError::InvalidArgument(format!("url {:?}: {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CallError::InvalidArgument(
            "only http:// and https:// URLs".into(),
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if !grants.allows_host(host) {
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
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_BODY {
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
    pub fn add(&self, plugin: &str, name: &str, delta: u64) {
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
        } else if len < MAX_COUNTERS {
            map.insert(key, delta);
        }
    }

    /// Prometheus text lines.
    pub fn render(&self) -> String {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines: Vec<String> = map
            .iter()
            .map(|((p, n), v)| {
                format!("hookline_plugin_counter{{plugin=\"{p}\",name=\"{n}\"}} {v}\n")
            })
            .collect();
        lines.sort();
        lines.concat()
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
        c.add("p", "calls answered", 2);
        c.add("p", "calls answered", 3);
        assert!(c.render().contains("name=\"calls_answered\"} 5"));
        for i in 0..2000 {
            c.add("p", &format!("n{i}"), 1);
        }
        assert_eq!(c.render().lines().count(), MAX_COUNTERS);
    }
}
