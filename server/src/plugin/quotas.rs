//! What a plugin may make the node do on its behalf, beyond its own memory and
//! CPU: speech synthesis, key-value storage, log lines, HTTP requests and
//! counters. Each is a number the node's config caps (`[quotas]`, raised or
//! lowered per plugin in `[[plugins]] quotas`) and a manifest may ask for
//! within the cap (`needs = ["quota:kv-bytes=1048576"]`). Going over is an
//! error the plugin sees (`failed("quota-exceeded: ...")`), never a node-wide
//! effect.

use super::manifest::ManifestError;
pub use crate::config::Quotas;

impl Quotas {
    /// No cap at all (`plugin check` without a config: every ask is within).
    pub fn unlimited() -> Quotas {
        Quotas {
            tts_chars_per_call: u32::MAX,
            tts_chars_per_minute: u32::MAX,
            kv_keys: u32::MAX,
            kv_value_bytes: u32::MAX,
            kv_bytes: u64::MAX,
            log_lines_per_s: u32::MAX,
            http_requests_per_call: u32::MAX,
            http_bytes_per_call: u64::MAX,
            counters: u32::MAX,
        }
    }

    fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "tts-chars-per-call" => self.tts_chars_per_call.into(),
            "tts-chars-per-minute" => self.tts_chars_per_minute.into(),
            "kv-keys" => self.kv_keys.into(),
            "kv-value-bytes" => self.kv_value_bytes.into(),
            "kv-bytes" => self.kv_bytes,
            "log-lines-per-s" => self.log_lines_per_s.into(),
            "http-requests-per-call" => self.http_requests_per_call.into(),
            "http-bytes-per-call" => self.http_bytes_per_call,
            "counters" => self.counters.into(),
            _ => return None,
        })
    }

    fn set(&mut self, name: &str, v: u64) {
        let small = v.min(u32::MAX as u64) as u32;
        match name {
            "tts-chars-per-call" => self.tts_chars_per_call = small,
            "tts-chars-per-minute" => self.tts_chars_per_minute = small,
            "kv-keys" => self.kv_keys = small,
            "kv-value-bytes" => self.kv_value_bytes = small,
            "kv-bytes" => self.kv_bytes = v,
            "log-lines-per-s" => self.log_lines_per_s = small,
            "http-requests-per-call" => self.http_requests_per_call = small,
            "http-bytes-per-call" => self.http_bytes_per_call = v,
            "counters" => self.counters = small,
            _ => {}
        }
    }

    /// Applies a manifest's `quota:<name>=<n>` asks to the node's caps: an
    /// ask within the cap is what the plugin gets; above it, the plugin is
    /// refused (the operator raises the cap in the plugin's `quotas`).
    pub fn with_asks(mut self, asks: &[&str]) -> Result<Quotas, ManifestError> {
        for ask in asks {
            let bad = || ManifestError::UnknownCapability(format!("quota:{ask}"));
            let (name, n) = ask.split_once('=').ok_or_else(bad)?;
            let n: u64 = n.trim().parse().map_err(|_| bad())?;
            let cap = self.get(name.trim()).ok_or_else(bad)?;
            if n > cap {
                return Err(ManifestError::QuotaAboveCap {
                    name: name.trim().into(),
                    asked: n,
                    cap,
                });
            }
            self.set(name.trim(), n);
        }
        Ok(self)
    }
}

/// The error a plugin sees past a quota.
pub fn exceeded(what: impl std::fmt::Display) -> super::CallError {
    super::CallError::Failed(format!("quota-exceeded: {what}"))
}

/// What one call has used of its per-call quotas.
#[derive(Debug, Default)]
pub struct CallUse {
    pub tts_chars: u64,
    pub http_requests: u32,
    pub http_bytes: u64,
    /// Grant refusals said so far (see `granted`).
    pub refusals: u8,
}

/// The one line that says how many of a call's log lines were dropped.
pub fn dropped_line(n: u64, per_s: u32) -> String {
    format!("{n} log lines dropped (log-lines-per-s = {per_s})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn asks_within_the_cap_are_kept_and_above_it_refused() {
        let caps = Quotas::default();
        let q = caps.with_asks(&["kv-bytes=1024", "counters=5"]).unwrap();
        assert_eq!(q.kv_bytes, 1024);
        assert_eq!(q.counters, 5);
        assert_eq!(q.kv_keys, caps.kv_keys);
        let e = caps.with_asks(&["kv-bytes=999999999999"]).unwrap_err();
        assert!(e.to_string().contains("kv-bytes"), "{e}");
        assert!(caps.with_asks(&["no-such=1"]).is_err());
        assert!(caps.with_asks(&["kv-keys=lots"]).is_err());
    }

    #[test]
    fn the_log_budget_lets_n_lines_a_second_and_reports_the_rest_once() {
        use crate::rate::LogBudget;
        use std::time::Instant;
        let t0 = Instant::now();
        let mut b = LogBudget::new(t0);
        let admitted = (0..100).filter(|_| b.admit(t0, 20).0).count();
        assert_eq!(admitted, 20);
        assert_eq!(b.dropped, 80);
        let (ok, dropped) = b.admit(t0 + Duration::from_millis(1001), 20);
        assert!(ok);
        assert_eq!(dropped, Some(80));
        assert_eq!(b.admit(t0 + Duration::from_millis(1002), 20), (true, None));
        assert_eq!(b.dropped, 0);
    }
}
