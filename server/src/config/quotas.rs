//! `[quotas]` caps: what one plugin may make the node do on its behalf
//! (how they are applied: `plugin::quotas`).

use serde::Deserialize;

/// Limits per plugin (per call where the name says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Characters of `say` text one call may have synthesised.
    pub tts_chars_per_call: u32,
    /// Characters of new (not cached) `say` text per minute, all calls of the plugin.
    pub tts_chars_per_minute: u32,
    /// Keys the plugin may keep in its key-value store.
    pub kv_keys: u32,
    /// Bytes of one value.
    pub kv_value_bytes: u32,
    /// Bytes of keys and values together.
    pub kv_bytes: u64,
    /// Log lines per second per call; the rest are counted and dropped.
    pub log_lines_per_s: u32,
    /// HTTP requests one call may make.
    pub http_requests_per_call: u32,
    /// Response bytes one call may receive over HTTP, all requests together.
    pub http_bytes_per_call: u64,
    /// Distinct counter names the plugin may create.
    pub counters: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            tts_chars_per_call: 20_000,
            tts_chars_per_minute: 100_000,
            kv_keys: 10_000,
            kv_value_bytes: 64 << 10,
            kv_bytes: 16 << 20,
            log_lines_per_s: 20,
            http_requests_per_call: 50,
            http_bytes_per_call: 8 << 20,
            counters: 100,
        }
    }
}
