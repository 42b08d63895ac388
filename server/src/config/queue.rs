//! `[[queues]]`: callers waiting in order for a department.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A queue in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// The queue's own number (dial it, or its name).
    pub number: Option<String>,
    /// The `[[groups]]` entry whose agents take the calls, by its strategy.
    pub group: String,
    /// Prompts looped while waiting; default: the node's hold music.
    #[serde(default = "default_music")]
    pub music: Vec<String>,
    /// Position and estimated wait every this many seconds (0 = never).
    #[serde(default = "default_announce_s")]
    pub announce_s: u64,
    /// Longest wait; then the dial returns no-answer to the plugin.
    #[serde(default = "default_max_wait_s")]
    pub max_wait_s: u64,
    /// Callers beyond this are not queued: the dial returns busy.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// The key that leaves the queue (the dial returns no-answer).
    pub leave_digit: Option<char>,
    /// How long each offer rings the agents.
    #[serde(default = "default_ring_s")]
    pub ring_s: u64,
    /// The key that asks for a callback: the caller hangs up and keeps
    /// their place; when it comes up an agent is called first, then them.
    pub callback_digit: Option<char>,
    /// A callback not served within this long: the node calls the customer,
    /// apologises, and hands them to `callback_voicemail`.
    #[serde(default = "default_callback_window_s")]
    pub callback_window_s: u64,
    /// The plugin that takes a message when the callback window passed
    /// (its `mailbox` argument is the queue's name).
    #[serde(default = "default_callback_voicemail")]
    pub callback_voicemail: String,
    /// Callers served ahead of others: caller number (or prefix ending in
    /// `*`) -> priority; higher first, equal ones first come, first served.
    #[serde(default)]
    pub priorities: BTreeMap<String, u32>,
}

impl QueueConfig {
    /// A caller's priority: an exact number, else the longest matching prefix.
    pub fn priority_of(&self, caller: &str) -> u32 {
        if let Some(p) = self.priorities.get(caller) {
            return *p;
        }
        self.priorities
            .iter()
            .filter_map(|(k, p)| Some((k.strip_suffix('*')?, p)))
            .filter(|(prefix, _)| caller.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(0, |(_, p)| *p)
    }
}

fn default_callback_window_s() -> u64 {
    600
}
fn default_callback_voicemail() -> String {
    "voicemail".into()
}

fn default_music() -> Vec<String> {
    vec!["hold_music".into()]
}
fn default_announce_s() -> u64 {
    30
}
fn default_max_wait_s() -> u64 {
    600
}
fn default_max_len() -> usize {
    100
}
fn default_ring_s() -> u64 {
    20
}
