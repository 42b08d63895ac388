//! `[node]`: limits, timeouts and switches of the node itself.

use std::net::IpAddr;

use serde::Deserialize;

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
    /// How media workers send: `auto` (every datagram of a tick in one
    /// io_uring submission where the kernel allows, else `plain`) or `plain`
    /// (one `sendto` each). The choice is logged at start.
    #[serde(default)]
    pub media_io: MediaIo,
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
            media_io: MediaIo::Auto,
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

/// How media workers send (`node.media_io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaIo {
    /// io_uring when the kernel allows it, else `plain`.
    #[default]
    Auto,
    /// One `sendto` per datagram.
    Plain,
}
