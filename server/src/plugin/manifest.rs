//! Plugin manifests and the grants an operator gives: what a plugin asks for
//! is checked against what the node's config allows before the plugin takes
//! a call, and each verb checks the granted set again at call time.

use std::collections::BTreeSet;

use thiserror::Error;

use super::hookline::call::types::{ConfigField, Manifest};
use super::quotas::Quotas;

/// Host API versions this node implements: every 0.1.x up to this one.
pub const API_VERSION: (u32, u32, u32) = (0, 1, 2);

/// Most memory a plugin may ask for per call.
pub const MAX_MEMORY_MIB: u32 = 256;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("api-version {0:?} is not semver (expected e.g. \"0.1.0\")")]
    BadApiVersion(String),
    #[error("built against host API {found}, this node implements hookline:call 0.1.0 ..= {}.{}.{}", API_VERSION.0, API_VERSION.1, API_VERSION.2)]
    IncompatibleApi { found: String },
    #[error("manifest name {0:?} must be 1-64 characters of a-z, 0-9, '-' or '_'")]
    BadName(String),
    #[error("unknown capability {0:?} (known: http:<host>[:<port>], kv, recording, speech, history, hand-over:<plugin>, quota:<name>=<n>)")]
    UnknownCapability(String),
    #[error("needs {0:?}, which the node's config does not grant this plugin (add it to the plugin's `grants`)")]
    NotGranted(String),
    #[error("asks for {asked} MiB of memory; the node allows at most {allowed} MiB")]
    TooMuchMemory { asked: u32, allowed: u32 },
    #[error("config field {field:?}: {message}")]
    Config { field: String, message: String },
    #[error("asks for quota {name} = {asked}; the node allows at most {cap} (raise it in the plugin's `quotas`)")]
    QuotaAboveCap { name: String, asked: u64, cap: u64 },
}

/// One capability a plugin can be granted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// HTTP fetch to a host; `*.example.com` covers its subdomains.
    Http(String),
    Kv,
    Recording,
    Speech,
    History,
    HandOver(String),
}

impl Capability {
    /// As written in a grant list (`kv`, `http:example.com`, `hand-over:voicemail`).
    pub fn as_grant(&self) -> String {
        match self {
            Capability::Http(host) => format!("http:{host}"),
            Capability::Kv => "kv".into(),
            Capability::Recording => "recording".into(),
            Capability::Speech => "speech".into(),
            Capability::History => "history".into(),
            Capability::HandOver(p) => format!("hand-over:{p}"),
        }
    }

    pub fn parse(s: &str) -> Result<Capability, ManifestError> {
        let unknown = || ManifestError::UnknownCapability(s.to_string());
        Ok(match s.split_once(':') {
            Some(("http", host)) if !host.is_empty() => Capability::Http(host.to_ascii_lowercase()),
            Some(("hand-over", p)) if !p.is_empty() => Capability::HandOver(p.to_string()),
            Some(_) => return Err(unknown()),
            None => match s {
                "kv" => Capability::Kv,
                "recording" => Capability::Recording,
                "speech" => Capability::Speech,
                "history" => Capability::History,
                _ => return Err(unknown()),
            },
        })
    }

    /// Whether this capability (as granted) covers `wanted`.
    fn covers(&self, wanted: &Capability) -> bool {
        match (self, wanted) {
            (Capability::Http(g), Capability::Http(w)) => grant_matches(g, w),
            (Capability::HandOver(g), Capability::HandOver(w)) => g == "*" || g == w,
            (g, w) => g == w,
        }
    }
}

/// Splits `host[:port]` (IPv6 literals in brackets); the port when one is named.
pub fn split_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (s, None),
        },
        _ => (s, None),
    }
}

/// A grant `host[:port]` covers `host:port` (a grant without a port covers
/// every port of its hosts).
fn grant_matches(pattern: &str, wanted: &str) -> bool {
    let (gh, gp) = split_port(pattern);
    let (wh, wp) = split_port(wanted);
    host_matches(gh, wh) && (gp.is_none() || gp == wp)
}

/// `pattern` is a host, `*.domain` (subdomains of domain) or `*` (any host).
fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        None => pattern == host,
    }
}

/// Whether host pattern `inner` names only hosts that `outer` also names.
fn pattern_within(inner: &str, outer: &str) -> bool {
    match (outer, inner.strip_prefix("*.")) {
        ("*", _) => true,
        (o, Some(d)) => o
            .strip_prefix("*.")
            .is_some_and(|od| d == od || host_matches(o, d)),
        (o, None) => host_matches(o, inner),
    }
}

/// A set of capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(BTreeSet<Capability>);

impl Grants {
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Grants, ManifestError> {
        list.iter()
            .map(|s| Capability::parse(s.as_ref()))
            .collect::<Result<_, _>>()
            .map(Grants)
    }

    pub fn allows(&self, wanted: &Capability) -> bool {
        self.0.iter().any(|g| g.covers(wanted))
    }

    /// The capabilities as manifest strings, comma-separated.
    pub fn describe(&self) -> String {
        self.list().join(", ")
    }

    /// The capabilities as manifest strings.
    pub fn list(&self) -> Vec<String> {
        self.0.iter().map(describe).collect()
    }

    /// May this call fetch from `host` on `port`?
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.allows(&Capability::Http(host_port(host, port)))
    }

    /// Whether a grant names exactly this host and this port (no pattern,
    /// no port-less grant): what the node's own services, loopback and
    /// link-local addresses need.
    pub fn names_exactly(&self, host: &str, port: u16) -> bool {
        let want = host_port(host, port);
        self.0
            .iter()
            .any(|g| matches!(g, Capability::Http(h) if *h == want))
    }
}

/// `host:port` as grants spell it (IPv6 in brackets).
fn host_port(host: &str, port: u16) -> String {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A checked manifest: what the node grants the plugin, and its limits.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub version: String,
    pub api_version: String,
    /// What the plugin asked for (all of it granted).
    pub grants: Grants,
    pub memory_mib: u32,
    pub cpu_ms: u32,
    pub schema: Vec<ConfigField>,
    /// What the plugin may make the node do (its asks within the node's caps).
    pub quotas: Quotas,
}

/// Checks a manifest against the operator's grants; the plugin may use only
/// what it asked for (even when the operator granted more).
pub fn check(
    m: &Manifest,
    granted: &Grants,
    max_memory_mib: u32,
    caps: &Quotas,
) -> Result<Checked, ManifestError> {
    if m.name.is_empty()
        || m.name.len() > 64
        || !m
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(ManifestError::BadName(m.name.clone()));
    }
    check_api_version(&m.api_version)?;
    let (asks, needs): (Vec<&String>, Vec<&String>) =
        m.needs.iter().partition(|n| n.starts_with("quota:"));
    let asks: Vec<&str> = asks.iter().map(|a| &a["quota:".len()..]).collect();
    let quotas = caps.with_asks(&asks)?;
    let needs = Grants::parse(&needs)?;
    let mut effective = BTreeSet::new();
    for n in &needs.0 {
        match n {
            // A pattern ("http:*", "http:*.example.com", "hand-over:*") asks for
            // whatever the operator grants within it: hosts from the route's
            // config (a webhook, a CRM) are the operator's to name.
            Capability::Http(p) if p.starts_with('*') => {
                let within: Vec<_> = granted
                    .0
                    .iter()
                    .filter(|g| matches!(g, Capability::Http(h) if pattern_within(h, p)))
                    .cloned()
                    .collect();
                if within.is_empty() {
                    return Err(ManifestError::NotGranted(describe(n)));
                }
                effective.extend(within);
            }
            Capability::HandOver(p) if p == "*" => {
                let within: Vec<_> = granted
                    .0
                    .iter()
                    .filter(|g| matches!(g, Capability::HandOver(_)))
                    .cloned()
                    .collect();
                if within.is_empty() {
                    return Err(ManifestError::NotGranted(describe(n)));
                }
                effective.extend(within);
            }
            n if granted.allows(n) => {
                effective.insert(n.clone());
            }
            n => return Err(ManifestError::NotGranted(describe(n))),
        }
    }
    let needs = Grants(effective);
    let allowed = max_memory_mib.min(MAX_MEMORY_MIB);
    if m.memory_mib > allowed {
        return Err(ManifestError::TooMuchMemory {
            asked: m.memory_mib,
            allowed,
        });
    }
    for f in &m.config_schema {
        if !matches!(
            f.kind.as_str(),
            "string" | "number" | "bool" | "list" | "object" | "any"
        ) {
            return Err(ManifestError::Config {
                field: f.name.clone(),
                message: format!("unknown kind {:?}", f.kind),
            });
        }
    }
    Ok(Checked {
        name: m.name.clone(),
        version: m.version.clone(),
        api_version: m.api_version.clone(),
        grants: needs,
        memory_mib: if m.memory_mib == 0 {
            32.min(allowed)
        } else {
            m.memory_mib
        },
        cpu_ms: m.cpu_ms,
        schema: m.config_schema.clone(),
        quotas,
    })
}

fn describe(c: &Capability) -> String {
    match c {
        Capability::Http(h) => format!("http:{h}"),
        Capability::Kv => "kv".into(),
        Capability::Recording => "recording".into(),
        Capability::Speech => "speech".into(),
        Capability::History => "history".into(),
        Capability::HandOver(p) => format!("hand-over:{p}"),
    }
}

/// A plugin built against 0.1.z runs here when z is not newer than ours.
pub fn check_api_version(v: &str) -> Result<(), ManifestError> {
    let parts: Vec<u32> = v
        .split('.')
        .map(|p| p.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| ManifestError::BadApiVersion(v.into()))?;
    let [major, minor, patch] = parts[..] else {
        return Err(ManifestError::BadApiVersion(v.into()));
    };
    let (a, b, c) = API_VERSION;
    if major != a || minor != b || patch > c {
        return Err(ManifestError::IncompatibleApi { found: v.into() });
    }
    Ok(())
}

/// Checks a route's config (JSON) against a plugin's schema.
pub fn check_config(
    schema: &[ConfigField],
    config: &serde_json::Value,
) -> Result<(), ManifestError> {
    let empty = serde_json::Map::new();
    let obj = config.as_object().unwrap_or(&empty);
    // A key the plugin does not declare is a typo or a stale setting: it
    // would be silently ignored, so it is refused, naming the nearest key.
    // (A plugin that declares no schema takes any config.)
    if !schema.is_empty() {
        for key in obj.keys() {
            if schema.iter().any(|f| &f.name == key) {
                continue;
            }
            let nearest = schema
                .iter()
                .map(|f| (strsim::jaro_winkler(key, &f.name), &f.name))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let message = match nearest {
                Some((_, name)) => format!("unknown key; did you mean {name:?}?"),
                None => {
                    let known: Vec<&str> = schema.iter().map(|f| f.name.as_str()).collect();
                    format!("unknown key; the plugin takes {}", known.join(", "))
                }
            };
            return Err(ManifestError::Config {
                field: key.clone(),
                message,
            });
        }
    }
    for f in schema {
        let err = |message: String| ManifestError::Config {
            field: f.name.clone(),
            message,
        };
        match obj.get(&f.name) {
            None if f.required => return Err(err("required but missing".into())),
            None => {}
            Some(v) => {
                let ok = match f.kind.as_str() {
                    "string" => v.is_string(),
                    "number" => v.is_number(),
                    "bool" => v.is_boolean(),
                    "list" => v.is_array(),
                    "object" => v.is_object(),
                    _ => true,
                };
                if !ok {
                    return Err(err(format!("expected {}, found {v}", f.kind)));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_grants_with_a_port_cover_that_port_only() {
        let g =
            Grants::parse(&["http:127.0.0.1:9000", "http:crm.example", "http:[::1]:8443"]).unwrap();
        assert!(g.allows_host("127.0.0.1", 9000));
        assert!(!g.allows_host("127.0.0.1", 8080));
        assert!(g.allows_host("crm.example", 8080));
        assert!(g.allows_host("::1", 8443));
        assert!(!g.allows_host("::1", 80));
        assert!(g.names_exactly("127.0.0.1", 9000));
        assert!(!g.names_exactly("crm.example", 80));
        assert_eq!(split_port("[::1]:8443"), ("::1", Some(8443)));
        assert_eq!(split_port("example.com"), ("example.com", None));
    }

    #[test]
    fn quota_asks_in_needs_are_not_capabilities() {
        let granted = Grants::parse(&["kv"]).unwrap();
        let ok = check(
            &manifest(&["kv", "quota:kv-bytes=4096"]),
            &granted,
            64,
            &Quotas::default(),
        )
        .unwrap();
        assert_eq!(ok.quotas.kv_bytes, 4096);
        assert_eq!(ok.grants.list(), vec!["kv".to_string()]);
        let caps = Quotas {
            kv_bytes: 1000,
            ..Quotas::default()
        };
        let e = check(
            &manifest(&["kv", "quota:kv-bytes=4096"]),
            &granted,
            64,
            &caps,
        )
        .unwrap_err();
        assert!(matches!(e, ManifestError::QuotaAboveCap { .. }), "{e}");
    }

    fn manifest(needs: &[&str]) -> Manifest {
        Manifest {
            name: "vm".into(),
            version: "1.0.0".into(),
            api_version: "0.1.0".into(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            memory_mib: 16,
            cpu_ms: 100,
            config_schema: vec![ConfigField {
                name: "greeting".into(),
                kind: "list".into(),
                required: true,
                description: String::new(),
            }],
        }
    }

    #[test]
    fn grants_cover_what_was_asked_and_nothing_else() {
        let granted = Grants::parse(&["kv", "http:*.crm.example", "hand-over:*"]).unwrap();
        let ok = check(
            &manifest(&["kv", "http:api.crm.example", "hand-over:voicemail"]),
            &granted,
            64,
            &Quotas::default(),
        )
        .unwrap();
        assert!(ok.grants.allows_host("api.crm.example", 80));
        assert!(!ok.grants.allows_host("crm.example.evil.net", 80));
        assert!(!ok.grants.allows(&Capability::Recording));
        assert_eq!(
            check(&manifest(&["recording"]), &granted, 64, &Quotas::default()).unwrap_err(),
            ManifestError::NotGranted("recording".into())
        );
        assert!(matches!(
            check(
                &manifest(&["http:other.example"]),
                &granted,
                64,
                &Quotas::default()
            ),
            Err(ManifestError::NotGranted(_))
        ));
        assert!(matches!(
            check(&manifest(&["files"]), &granted, 64, &Quotas::default()),
            Err(ManifestError::UnknownCapability(_))
        ));
        // Kv granted by the operator but not asked for: not usable.
        let none = check(&manifest(&[]), &granted, 64, &Quotas::default()).unwrap();
        assert!(!none.grants.allows(&Capability::Kv));
    }

    #[test]
    fn a_pattern_gets_what_the_operator_granted_within_it() {
        let granted = Grants::parse(&["http:127.0.0.1", "http:crm.example", "kv"]).unwrap();
        let ok = check(
            &manifest(&["http:*", "kv"]),
            &granted,
            64,
            &Quotas::default(),
        )
        .unwrap();
        assert!(ok.grants.allows_host("127.0.0.1", 80));
        assert!(ok.grants.allows_host("crm.example", 80));
        assert!(!ok.grants.allows_host("evil.example", 80));
        let sub = check(
            &manifest(&["http:*.example"]),
            &granted,
            64,
            &Quotas::default(),
        )
        .unwrap();
        assert!(sub.grants.allows_host("crm.example", 80));
        assert!(!sub.grants.allows_host("127.0.0.1", 80));
        // Nothing granted within the pattern: refused.
        assert!(check(
            &manifest(&["http:*"]),
            &Grants::default(),
            64,
            &Quotas::default()
        )
        .is_err());
    }

    #[test]
    fn subdomain_patterns_need_a_real_subdomain() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert!(host_matches("127.0.0.1", "127.0.0.1"));
    }

    #[test]
    fn api_versions_within_0_1_up_to_ours() {
        assert!(check_api_version("0.1.0").is_ok());
        assert!(check_api_version("0.1.1").is_ok());
        assert!(check_api_version("0.1.2").is_ok());
        assert!(check_api_version("0.1.3").is_err());
        assert!(check_api_version("0.1.9").is_err());
        assert!(check_api_version("0.2.0").is_err());
        assert!(check_api_version("1.0").is_err());
    }

    #[test]
    fn config_is_checked_against_the_schema() {
        let m = manifest(&[]);
        let schema = &m.config_schema;
        assert!(check_config(schema, &serde_json::json!({"greeting": ["hi"]})).is_ok());
        assert!(check_config(schema, &serde_json::json!({})).is_err());
        assert!(check_config(schema, &serde_json::json!({"greeting": "hi"})).is_err());
        // A typo is named, with the key meant.
        let e = check_config(
            schema,
            &serde_json::json!({"greeting": ["hi"], "greting": 1}),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "config field \"greting\": unknown key; did you mean \"greeting\"?"
        );
        let e = check_config(schema, &serde_json::json!({"greeting": ["hi"], "zzz": 1}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"zzz\": unknown key; the plugin takes greeting"),
            "{e}"
        );
    }

    #[test]
    fn memory_above_the_node_limit_is_refused() {
        let mut m = manifest(&[]);
        m.memory_mib = 512;
        assert!(matches!(
            check(&m, &Grants::default(), 64, &Quotas::default()),
            Err(ManifestError::TooMuchMemory { .. })
        ));
    }
}
