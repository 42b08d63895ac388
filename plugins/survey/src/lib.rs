//! Survey: questions from config, each answered by one key in a range,
//! validated with retries; the answers are stored (kv) and posted (webhook).
//!
//! Route config: `questions` = [{ id, text | prompts, min, max }], `intro_text`,
//! `thanks_text`, `webhook`.

use hookline_sdk::media::{CollectOptions, PlayItem};
use hookline_sdk::{
    data, field, http_post_json, media, prompts, routing, say, CallError, CallInfo, Manifest,
    Plugin,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Config {
    questions: Vec<Question>,
    intro_text: Option<String>,
    thanks_text: Option<String>,
    webhook: Option<String>,
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default = "default_timeout")]
    timeout_ms: u32,
}

#[derive(Debug, Deserialize)]
struct Question {
    id: String,
    text: Option<String>,
    #[serde(default)]
    prompts: Vec<String>,
    #[serde(default = "one")]
    min: u8,
    #[serde(default = "five")]
    max: u8,
}

fn default_attempts() -> u32 {
    2
}
fn default_timeout() -> u32 {
    5000
}
fn one() -> u8 {
    1
}
fn five() -> u8 {
    5
}

struct Survey;

impl Plugin for Survey {
    fn manifest() -> Manifest {
        let mut m = hookline_sdk::manifest("survey", env!("CARGO_PKG_VERSION"));
        m.needs = vec!["kv".into(), "http:*".into()];
        m.config_schema = vec![
            field(
                "questions",
                "list",
                true,
                "[{id, text or prompts, min, max}]",
            ),
            field(
                "intro_text",
                "string",
                false,
                "spoken before the first question",
            ),
            field("thanks_text", "string", false, "spoken at the end"),
            field(
                "webhook",
                "string",
                false,
                "URL that gets the answers as JSON",
            ),
            field(
                "attempts",
                "number",
                false,
                "tries per question (default 2)",
            ),
            field(
                "timeout_ms",
                "number",
                false,
                "wait for a key (default 5000)",
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
        let config: Config = hookline_sdk::config(&info)?;
        let mut answers = serde_json::Map::new();
        let outcome = run(&config, &mut answers);
        // Whatever was answered is kept, also when the caller hung up midway.
        let complete = outcome.is_ok() && answers.len() == config.questions.len();
        let result = serde_json::json!({
            "call_id": info.call_id,
            "caller": info.caller,
            "answers": answers,
            "complete": complete,
        })
        .to_string();
        if let Err(e) = data::kv_set(&format!("result:{}", info.call_id), &result, None) {
            hookline_sdk::warn(&format!("saving answers: {e}"));
        }
        data::counter_add(if complete { "completed" } else { "partial" }, 1);
        if let Some(url) = &config.webhook {
            if let Err(e) = http_post_json(url, &result, 5000) {
                hookline_sdk::warn(&format!("webhook: {e}"));
            }
        }
        hookline_sdk::finish(outcome)
    }
}

fn run(
    config: &Config,
    answers: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), CallError> {
    media::answer()?;
    if let Some(intro) = &config.intro_text {
        media::play(&[say(intro)], true)?;
    }
    for q in &config.questions {
        let ask: Vec<PlayItem> = match &q.text {
            Some(t) => vec![say(t)],
            None => prompts(&q.prompts),
        };
        let valid: Vec<String> = (q.min..=q.max.min(9)).map(|d| d.to_string()).collect();
        let got = media::collect_digits(&CollectOptions {
            prompts: ask,
            min_digits: 1,
            max_digits: 1,
            first_digit_timeout_ms: config.timeout_ms,
            inter_digit_timeout_ms: config.timeout_ms,
            terminator: None,
            attempts: config.attempts,
            valid,
            invalid_prompts: vec![say(&format!(
                "Please press a key from {} to {}.",
                q.min, q.max
            ))],
            timeout_prompts: Vec::new(),
        })?;
        if got.valid {
            data::mark(&format!("answer:{}={}", q.id, got.digits));
            answers.insert(q.id.clone(), got.digits.parse::<u32>().unwrap_or(0).into());
        } else {
            data::mark(&format!("answer:{}=none", q.id));
        }
    }
    let thanks = config
        .thanks_text
        .clone()
        .unwrap_or_else(|| "Thank you for your answers.".into());
    media::play(&[say(&thanks)], false)?;
    routing::hangup()
}

hookline_sdk::export!(Survey);
