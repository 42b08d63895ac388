//! CRM router ("intelligent contact manager"): finds the caller's responsible
//! manager in an ordered list of sources — the node's call history (who took
//! this caller's last answered call), then CRM endpoints over HTTP — and
//! connects them. Exceptions skip the lookup; a default target catches the
//! rest; when the manager does not answer the plugin returns, so the scenario
//! that handed the call over goes on (or the default target rings).
//!
//! Route config: `sources` (["history", "crm"]), `crm_urls` (templates with
//! `{number}`; the answer is JSON `{"manager": "<target>"}`), `exceptions`
//! (numbers), `country_code`, `city_code`, `national_length`, `trunk_prefix`
//! (local-number normalisation), `default` (target), `ring_ms`, `unanswered_text`.
//! A target is an extension, `sip:` URI or `tel:` number.

mod normalize;

use hookline_sdk::routing::{DialOptions, DialStatus, DialTarget, RingStrategy};
use hookline_sdk::{
    data, field, http_get, media, routing, say, CallError, CallInfo, Manifest, Plugin,
};
use serde::Deserialize;

pub use normalize::Numbering;

#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default = "default_sources")]
    sources: Vec<String>,
    #[serde(default)]
    crm_urls: Vec<String>,
    #[serde(default)]
    exceptions: Vec<String>,
    #[serde(flatten)]
    numbering: Numbering,
    default: Option<String>,
    #[serde(default = "default_ring")]
    ring_ms: u32,
    unanswered_text: Option<String>,
}

fn default_sources() -> Vec<String> {
    vec!["history".into(), "crm".into()]
}
fn default_ring() -> u32 {
    20_000
}

struct CrmRouter;

impl Plugin for CrmRouter {
    fn manifest() -> Manifest {
        let mut m = hookline_sdk::manifest("crm-router", env!("CARGO_PKG_VERSION"));
        m.needs = vec!["history".into(), "http:*".into()];
        m.config_schema = vec![
            field("sources", "list", false, "lookup order: history, crm"),
            field("crm_urls", "list", false, "URL templates with {number}"),
            field("exceptions", "list", false, "numbers that skip the lookup"),
            field("country_code", "string", false, "e.g. 7"),
            field("city_code", "string", false, "e.g. 3812"),
            field(
                "trunk_prefix",
                "string",
                false,
                "dialled before national numbers, e.g. 8",
            ),
            field(
                "national_length",
                "number",
                false,
                "digits after the country code",
            ),
            field(
                "default",
                "string",
                false,
                "target when no manager is found",
            ),
            field("ring_ms", "number", false, "ring time per target"),
            field(
                "unanswered_text",
                "string",
                false,
                "spoken when nobody answers",
            ),
        ];
        m
    }

    /// Parses the route config before the call comes (the call then starts
    /// without parsing it).
    fn prepare(config: String) {
        hookline_sdk::prepare_config::<Config>(config);
    }

    fn handle_call(info: CallInfo) -> Result<(), String> {
        // Hand-over arguments override the plugin's config key by key.
        let config: Config = hookline_sdk::config(&info)?;
        hookline_sdk::finish(run(&config, &info))
    }
}

fn run(config: &Config, info: &CallInfo) -> Result<(), CallError> {
    let number = config.numbering.normalize(&info.caller);
    data::mark(&format!("crm:caller:{number}"));
    let exception = config
        .exceptions
        .iter()
        .any(|e| config.numbering.normalize(e) == number);
    let found = if exception {
        data::mark("crm:exception");
        None
    } else {
        lookup(config, &number)
    };
    if let Some((source, manager)) = &found {
        data::mark(&format!("crm:{source}:{manager}"));
        if connect(manager, config.ring_ms)? {
            return routing::hangup();
        }
        data::mark("crm:manager-unanswered");
    }
    if let Some(default) = &config.default {
        if found.as_ref().is_none_or(|(_, m)| m != default) {
            data::mark(&format!("crm:default:{default}"));
            if connect(default, config.ring_ms)? {
                return routing::hangup();
            }
        }
    }
    // Nobody took it: back to the scenario (the plugin that handed the call over,
    // or the route's end).
    if let Some(text) = &config.unanswered_text {
        media::play(&[say(text)], false)?;
    }
    Ok(())
}

/// The first source that knows the caller's manager.
fn lookup(config: &Config, number: &str) -> Option<(String, String)> {
    for source in &config.sources {
        let found = match source.as_str() {
            "history" => from_history(&config.numbering.variants(number)),
            "crm" => config.crm_urls.iter().find_map(|u| from_crm(u, number)),
            other => {
                hookline_sdk::warn(&format!("unknown source {other:?}"));
                None
            }
        };
        if let Some(manager) = found {
            return Some((source.clone(), manager));
        }
    }
    None
}

/// Who answered the caller's latest answered call, under any form of the number.
fn from_history(forms: &[String]) -> Option<String> {
    let mut calls = Vec::new();
    for n in forms {
        match data::call_history(n, 20) {
            Ok(c) => calls.extend(c),
            Err(e) => hookline_sdk::warn(&format!("call history: {e}")),
        }
    }
    calls.sort_by_key(|c| std::cmp::Reverse(c.started_ms));
    calls.into_iter().find_map(|c| c.answered_by)
}

fn from_crm(template: &str, number: &str) -> Option<String> {
    let url = template.replace("{number}", number.trim_start_matches('+'));
    match http_get(&url, 3000) {
        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
            .ok()?
            .get("manager")?
            .as_str()
            .map(String::from),
        Ok(_) => None,
        Err(e) => {
            hookline_sdk::warn(&format!("CRM {url}: {e}"));
            None
        }
    }
}

/// Rings a target; true when they answered and talked.
fn connect(target: &str, ring_ms: u32) -> Result<bool, CallError> {
    let target = if target.starts_with("sip:") {
        DialTarget::Uri(target.into())
    } else if let Some(n) = target.strip_prefix("tel:") {
        DialTarget::Number(n.into())
    } else {
        DialTarget::Extension(target.into())
    };
    let r = routing::dial(&DialOptions {
        targets: vec![target],
        strategy: RingStrategy::Simultaneous,
        timeout_ms: ring_ms,
        caller_id: None,
    })?;
    Ok(r.status == DialStatus::Completed)
}

hookline_sdk::export!(CrmRouter);
