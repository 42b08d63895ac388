//! An extension's `forward` table: where its calls go when it cannot take them.

use serde::Deserialize;

use super::Schedule;

/// An extension's forwarding rules. Targets are dial strings: an extension
/// or group, `tel:<number>` (out through the trunks), or `sip:<uri>`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Forwarding {
    /// Every call, without ringing the extension.
    pub always: Option<String>,
    /// Working hours of the extension; outside them calls go to `off_hours`.
    pub hours: Option<Schedule>,
    pub off_hours: Option<String>,
    /// Not registered (no phone, no browser logged in).
    pub unreachable: Option<String>,
    /// In a call already, or the phone said busy.
    pub busy: Option<String>,
    /// Rang `no_answer_s` seconds unanswered.
    pub no_answer: Option<String>,
    #[serde(default = "default_no_answer_s")]
    pub no_answer_s: u32,
    /// The last resort when the step before did not connect.
    pub reserve: Option<String>,
}

fn default_no_answer_s() -> u32 {
    20
}
