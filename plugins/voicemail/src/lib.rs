//! Voicemail: a greeting, a message recorded after the beep, kept when the
//! caller hangs up, listed in the mailbox (kv) and announced by webhook.
//!
//! Route config (or hand-over arguments, which take precedence):
//! `mailbox` (default: the dialled number), `greeting` (prompt ids) or
//! `greeting_text` (spoken), `max_ms`, `silence_ms`, `webhook` (URL).
//!
//! A message a node crash cut short comes back at the next start as an
//! ended call with `recovered` in the arguments: it is filed and announced
//! like any other, `ended_by: "node-restart"`.

use hookline_sdk::media::{RecordEnd, RecordOptions};
use hookline_sdk::{
    data, field, http_post_json, media, prompts, routing, say, CallError, CallInfo, Manifest,
    Plugin,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct Config {
    mailbox: Option<String>,
    #[serde(default)]
    greeting: Vec<String>,
    greeting_text: Option<String>,
    max_ms: Option<u32>,
    silence_ms: Option<u32>,
    webhook: Option<String>,
    /// Set by the node for a message a crash cut short.
    recovered: Option<Recovered>,
}

#[derive(Debug, Deserialize)]
struct Recovered {
    recording: String,
    duration_ms: u32,
}

/// Messages shorter than this are hang-ups at the beep, not messages.
const MIN_MESSAGE_MS: u32 = 500;

struct Voicemail;

impl Plugin for Voicemail {
    fn manifest() -> Manifest {
        let mut m = hookline_sdk::manifest("voicemail", env!("CARGO_PKG_VERSION"));
        m.needs = vec!["recording".into(), "kv".into(), "http:*".into()];
        m.config_schema = vec![
            field(
                "mailbox",
                "string",
                false,
                "mailbox id (default: dialled number)",
            ),
            field("greeting", "list", false, "prompt ids of the greeting"),
            field("greeting_text", "string", false, "greeting spoken by TTS"),
            field(
                "max_ms",
                "number",
                false,
                "longest message (default 120000)",
            ),
            field(
                "silence_ms",
                "number",
                false,
                "stop after this much silence (default 4000)",
            ),
            field(
                "webhook",
                "string",
                false,
                "URL that gets a JSON POST per message",
            ),
        ];
        m
    }

    /// Parses the route config before the call comes (the call then starts
    /// without parsing it).
    fn prepare(config: String) {
        hookline_sdk::prepare_config::<Config>(config);
    }

    fn handle_call(info: CallInfo) -> Result<(), String> {
        // Hand-over arguments (e.g. the IVR naming the mailbox) override the route's config.
        let config: Config = hookline_sdk::config(&info)?;
        hookline_sdk::finish(run(&config, &info))
    }
}

fn run(config: &Config, info: &CallInfo) -> Result<(), CallError> {
    let mailbox = config
        .mailbox
        .clone()
        .unwrap_or_else(|| info.callee.clone());
    if let Some(r) = &config.recovered {
        // The caller is long gone: file it, nothing to play.
        if r.duration_ms >= MIN_MESSAGE_MS {
            save(
                config,
                info,
                &mailbox,
                &r.recording,
                r.duration_ms,
                "node-restart",
            );
        }
        return Ok(());
    }
    media::answer()?;
    let greeting = match &config.greeting_text {
        Some(text) => vec![say(text)],
        None if !config.greeting.is_empty() => prompts(&config.greeting),
        None => vec![say("Please leave a message after the tone.")],
    };
    media::play(&greeting, true)?;
    let rec = match media::record(&RecordOptions {
        beep: true,
        max_ms: config.max_ms.unwrap_or(120_000),
        silence_ms: config.silence_ms.unwrap_or(4000),
        terminators: "#".into(),
    }) {
        Ok(rec) => rec,
        Err(CallError::Failed(why)) => {
            // The node cannot keep a message now (its disk is full): the
            // caller is told, not left talking to nobody.
            hookline_sdk::warn(&format!("no message taken: {why}"));
            data::mark("voicemail:refused");
            let sorry = "Sorry, we cannot take a message right now. Please call again later.";
            media::play(&[say(sorry)], false)?;
            routing::hangup()?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // From here the caller may be gone: saving is ordinary code all the same.
    if rec.duration_ms < MIN_MESSAGE_MS {
        data::mark("voicemail:empty");
    } else {
        let ended_by = match rec.end {
            RecordEnd::Terminator => "terminator",
            RecordEnd::Silence => "silence",
            RecordEnd::MaxLength => "max-length",
            RecordEnd::HungUp => "hung-up",
        };
        save(config, info, &mailbox, &rec.id, rec.duration_ms, ended_by);
    }
    if rec.end != RecordEnd::HungUp {
        media::play(&[say("Thank you. Goodbye.")], false)?;
        routing::hangup()?;
    }
    Ok(())
}

fn save(
    config: &Config,
    info: &CallInfo,
    mailbox: &str,
    recording: &str,
    duration_ms: u32,
    ended_by: &str,
) {
    let message = serde_json::json!({
        "mailbox": mailbox,
        "recording": recording,
        "duration_ms": duration_ms,
        "caller": info.caller,
        "call_id": info.call_id,
        "received_ms": data::now_ms(),
        "ended_by": ended_by,
    })
    .to_string();
    data::mark(&format!("voicemail:{mailbox}:{recording}"));
    if let Err(e) = data::kv_set(&format!("message:{mailbox}:{recording}"), &message, None) {
        hookline_sdk::warn(&format!("saving message: {e}"));
    }
    data::counter_add("messages", 1);
    if let Some(url) = &config.webhook {
        match http_post_json(url, &message, 5000) {
            Ok(status) if status < 300 => data::mark("voicemail:notified"),
            Ok(status) => hookline_sdk::warn(&format!("webhook answered {status}")),
            Err(e) => hookline_sdk::warn(&format!("webhook: {e}")),
        }
    }
}

hookline_sdk::export!(Voicemail);
