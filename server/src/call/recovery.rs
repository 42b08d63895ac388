//! What a crash cut short, put right at the next start. A recording is
//! listed from its first frame (state `recording`); one still in that state
//! at a start was being made when the node died. Its WAV is repaired to
//! what reached the disk, it is transcribed, and a message is handed back
//! to the plugin that recorded it — a call that has already ended, with the
//! plugin's config and hand-over arguments of the time and
//! `{"recovered": {"recording", "duration_ms"}}` added to the arguments —
//! so the plugin indexes and announces it as it would have (the voicemail
//! plugin files it in the mailbox and calls its webhook). Then it is marked
//! `recovered`. The mark comes last: a second crash in the middle hands it
//! back again rather than losing it.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::blocking;
use super::Node;
use crate::plugin::CallInfo;
use crate::store::plugin_data::Unfinished;

/// Recovers every recording a crash left unfinished; run once at start.
pub async fn recover_recordings(node: Arc<Node>) {
    let data = node.plugin_data.clone();
    let unfinished = match blocking(move || data.recordings_unfinished()).await {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => return tracing::error!("recordings to recover: {e}"),
        Err(e) => return tracing::error!("recordings to recover: {e:?}"),
    };
    for u in unfinished {
        recover(&node, u).await;
    }
}

async fn recover(node: &Arc<Node>, u: Unfinished) {
    let id = u.row.id.clone();
    let path = PathBuf::from(&u.row.path);
    let file = path.clone();
    let duration_ms = match blocking(move || crate::media::recorder::repair(&file)).await {
        Ok(Ok((frames, rate))) => frames * 1000 / u64::from(rate.max(1)),
        Ok(Err(e)) => {
            // Nothing usable reached the disk (the file was never written).
            tracing::warn!(recording = %id, "recording cut by a crash is unreadable: {e}");
            0
        }
        Err(e) => return tracing::error!(recording = %id, "repairing: {e:?}"),
    };
    tracing::warn!(recording = %id, call = %u.row.call_id, duration_ms, "recording cut by a crash: repaired");
    if u.row.kind == "message" && duration_ms > 0 {
        super::record::transcribe(node, &node.config.prompts.language, id.clone(), path);
        hand_back(node, &u, duration_ms).await;
    }
    let data = node.plugin_data.clone();
    let marked = blocking(move || data.recording_recovered(&id, duration_ms)).await;
    if !matches!(marked, Ok(Ok(()))) {
        tracing::error!(recording = %u.row.id, "marking recovered: {marked:?}");
    }
}

/// The plugin that made the recording gets it back, on an ended call.
async fn hand_back(node: &Arc<Node>, u: &Unfinished, duration_ms: u64) {
    let Some(plugin) = node.plugins.get(&u.row.plugin) else {
        return tracing::warn!(recording = %u.row.id, "no plugin {:?} to hand it back to", u.row.plugin);
    };
    let mut arguments: serde_json::Value = u
        .arguments
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    arguments["recovered"] = serde_json::json!({
        "recording": u.row.id,
        "duration_ms": duration_ms,
    });
    let info = CallInfo {
        call_id: u.row.call_id.clone(),
        caller: u.caller.clone(),
        callee: u.callee.clone(),
        caller_name: None,
        domain: String::new(),
        config: u.config.clone(),
        arguments: Some(arguments.to_string()),
    };
    let (session, _sip) = super::ended_session(node, &plugin.name, info.clone());
    let (outcome, _) = node.plugins.run(&plugin, session, info).await;
    tracing::info!(recording = %u.row.id, plugin = %plugin.name, "recovered recording handed back: {outcome:?}");
}
