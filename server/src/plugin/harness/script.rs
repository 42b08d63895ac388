//! The script a plugin test runs: the call, what the caller does, what the
//! outside world answers, and what is expected. See plugin-sdk/README.md.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole test script (`hookline plugin test PLUGIN.wasm SCRIPT.toml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    pub call: CallSpec,
    /// What the caller does, in order; each verb that waits on the caller
    /// takes the next (a verb finding none: the caller stays silent).
    pub caller: Vec<CallerStep>,
    /// Outcomes of `dial` (and `transfer`), in order; then `no-answer`.
    pub dial: Vec<String>,
    /// Outcomes of `enqueue`, in order; then `timeout`.
    pub queue: Vec<String>,
    /// Responses to `http-fetch`, in order; past them a request fails.
    pub http: Vec<HttpAnswer>,
    /// The plugin's key-value store before the call.
    pub kv: BTreeMap<String, String>,
    /// What `call-history` returns.
    pub history: Vec<PastCall>,
    pub expect: Expect,
}

/// The call; every field is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallSpec {
    pub caller: String,
    pub callee: String,
    pub caller_name: Option<String>,
    /// The route's config, as in `hookline.toml`.
    pub config: toml::Value,
    /// Hand-over arguments (JSON text), for a plugin handed a call.
    pub arguments: Option<String>,
    /// The wall clock when the call starts (RFC 3339).
    pub time: String,
}

impl Default for CallSpec {
    fn default() -> Self {
        CallSpec {
            caller: "5550100".into(),
            callee: "100".into(),
            caller_name: None,
            config: toml::Value::Table(Default::default()),
            arguments: None,
            time: "2026-01-05T10:00:00Z".into(),
        }
    }
}

/// One thing the caller does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallerStep {
    /// Presses these keys when the plugin next listens (after its prompts).
    pub keys: Option<String>,
    /// ... or already during the prompt before (a barge-in play stops, and
    /// the next collect skips its prompts, as on the node).
    pub early: bool,
    /// Says this (for `collect-speech`).
    pub say: Option<String>,
    /// Stays silent (a collect times out).
    pub silence: bool,
    /// Speaks a message this long (for `record`).
    pub message_ms: Option<u32>,
    /// Hangs up.
    pub hangup: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAnswer {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastCall {
    pub caller: String,
    pub callee: String,
    pub answered_by: Option<String>,
    #[serde(default)]
    pub duration_s: u32,
    #[serde(default)]
    pub started_ms: u64,
}

/// What must have happened; each part left out is not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The verbs the plugin issued, in order (see the README for how each is written).
    pub verbs: Option<Vec<String>>,
    /// The call record's path (`mark` steps), exactly.
    pub path: Option<Vec<String>>,
    /// These keys of the plugin's kv at the end (others not checked).
    pub kv: Option<BTreeMap<String, String>>,
    /// `ok`, `error` or `trap` (default `ok`), or `error:<reason>`.
    pub outcome: Option<String>,
}
