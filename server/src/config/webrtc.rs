//! `[webrtc]`: browser softphones.

use std::net::IpAddr;

use serde::Deserialize;

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
