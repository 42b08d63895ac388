//! Rules of the host API that every host follows alike: the node's
//! (`call::host_api`) and the test harness's (`plugin::harness`), so a
//! script's expectations mean what a call does.

use super::hookline::call::media::{CollectOptions, PlayItem};

/// The step a played item leaves in the call's path (tones and silence leave none).
pub fn played_step(item: &PlayItem) -> Option<String> {
    match item {
        PlayItem::Prompt(id) => Some(format!("prompt:{id}")),
        PlayItem::Say(_) => Some("say".into()),
        PlayItem::Recording(id) => Some(format!("play-recording:{id}")),
        PlayItem::Tone(_) | PlayItem::Silence(_) => None,
    }
}

/// Whether an entry of keys answers a collect: long enough, and on the
/// valid list if there is one.
pub fn entry_is_valid(o: &CollectOptions, digits: &str) -> bool {
    digits.len() as u32 >= o.min_digits
        && (o.valid.is_empty() || o.valid.iter().any(|v| v == digits))
}
