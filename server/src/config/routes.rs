//! `[[routes]]`, `[[plugins]]`, `[[extensions]]` and `[[trunks]]`: where calls go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Forwarding, Quotas, Schedule};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// The carrier's SIP address (ip:port).
    pub address: std::net::SocketAddr,
    /// Digest credentials, when the carrier challenges.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Caller ID presented on this trunk (replaces the caller's).
    pub caller_id: Option<String>,
    /// Put in front of the dialled number (e.g. a country code or tech prefix).
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionConfig {
    /// The extension number (user part of its address).
    pub user: String,
    /// Digest password.
    pub password: String,
    /// Where calls to the extension go when it cannot take them.
    #[serde(default)]
    pub forward: Option<Forwarding>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    /// The component (`.wasm`). A version deployed over the API
    /// (`<data>/plugins/<name>.wasm`) takes precedence.
    pub path: PathBuf,
    /// What the operator lets this plugin use: "http:<host>" (or
    /// "http:*.domain"), "kv", "recording", "speech", "history",
    /// "hand-over:<plugin>" (or "hand-over:*"). A plugin whose manifest needs
    /// more is refused.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Config for calls handed over to this plugin (routes carry their own).
    #[serde(default = "empty_table")]
    pub config: toml::Value,
    /// Caps on what the plugin may make the node do (TTS, kv, logs, HTTP,
    /// counters); fields not named keep the built-in defaults. A manifest
    /// may ask for less, or for more up to these.
    #[serde(default)]
    pub quotas: Quotas,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// What the API calls the route (`/api/routes/{id}`); default its
    /// number (`100`, then `100~2` for a second route on 100).
    #[serde(default)]
    pub id: Option<String>,
    /// Dialled number: exact (`100`), prefix (`55*`) or anything (`*`).
    pub number: String,
    /// Caller's number, same patterns; default any.
    #[serde(default)]
    pub caller: Option<String>,
    /// Domain of the request URI (tenant), exact; default any.
    #[serde(default)]
    pub domain: Option<String>,
    /// Only match within this schedule (working hours); a later route with
    /// the same number catches the other times.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    pub plugin: String,
    /// Handed to the plugin as JSON.
    #[serde(default = "empty_table")]
    pub config: toml::Value,
    /// Calls on this route at once; 0 = only the node's limit.
    #[serde(default)]
    pub max_calls: usize,
    /// New calls per second on this route; 0 = only the node's limit.
    #[serde(default)]
    pub max_cps: u32,
    /// Record every call on this route (stereo WAV: caller left, what the
    /// caller hears right), listed in `GET /api/recordings`.
    #[serde(default)]
    pub record: bool,
    /// Where the call goes when the plugin fails (traps, exceeds its budget,
    /// returns an error) while the caller is still on.
    pub fallback: Option<FallbackConfig>,
}

/// A route's fallback: another plugin with its own config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    pub plugin: String,
    #[serde(default = "empty_table")]
    pub config: toml::Value,
}

fn empty_table() -> toml::Value {
    toml::Value::Table(Default::default())
}

/// `pattern`: exact, `prefix*`, or `*`.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// What a new call is routed by.
#[derive(Debug, Clone, Copy)]
pub struct CallKey<'a> {
    pub callee: &'a str,
    pub caller: &'a str,
    pub domain: &'a str,
    /// Unix time in seconds (for schedules).
    pub now_s: i64,
}

impl RouteConfig {
    /// Whether the dialled number matches (ignoring caller, domain, schedule).
    pub fn matches(&self, number: &str) -> bool {
        pattern_matches(&self.number, number)
    }

    pub fn matches_call(&self, k: &CallKey) -> bool {
        pattern_matches(&self.number, k.callee)
            && self
                .caller
                .as_deref()
                .is_none_or(|p| pattern_matches(p, k.caller))
            && self
                .domain
                .as_deref()
                .is_none_or(|d| d.eq_ignore_ascii_case(k.domain))
            && self.schedule.as_ref().is_none_or(|s| s.is_open(k.now_s))
    }
}
