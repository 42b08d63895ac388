//! Conference: callers (SIP phones, trunk calls, browsers) who dial the
//! route meet in one room; an optional PIN keeps strangers out, and a
//! listen-only option joins them muted.
//!
//! Route config: `room` (default: the dialled number), `pin`, `greeting`
//! (text), `muted`, `attempts`.

use hookline_sdk::media::CollectOptions;
use hookline_sdk::{field, media, routing, say, CallError, CallInfo, Manifest, Plugin};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Config {
    room: Option<String>,
    pin: Option<String>,
    #[serde(default = "default_greeting")]
    greeting: String,
    #[serde(default)]
    muted: bool,
    #[serde(default = "default_attempts")]
    attempts: u32,
}

fn default_greeting() -> String {
    "You are joining the conference.".into()
}
fn default_attempts() -> u32 {
    3
}

struct Conference;

impl Plugin for Conference {
    fn manifest() -> Manifest {
        let mut m = hookline_sdk::manifest("conference", env!("CARGO_PKG_VERSION"));
        m.config_schema = vec![
            field(
                "room",
                "string",
                false,
                "room name (default: the dialled number)",
            ),
            field("pin", "string", false, "digits a caller must enter to join"),
            field(
                "greeting",
                "string",
                false,
                "spoken before joining (\"\" for none)",
            ),
            field("muted", "bool", false, "join listen-only"),
            field("attempts", "number", false, "PIN tries (default 3)"),
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
        let room = config.room.clone().unwrap_or_else(|| info.callee.clone());
        hookline_sdk::finish(run(&config, &room))
    }
}

fn run(config: &Config, room: &str) -> Result<(), CallError> {
    media::answer()?;
    if let Some(pin) = &config.pin {
        let len = pin.len() as u32;
        let got = media::collect_digits(&CollectOptions {
            prompts: vec![say(
                "Please enter the conference PIN, then press the pound key.",
            )],
            min_digits: len,
            max_digits: len,
            first_digit_timeout_ms: 8000,
            inter_digit_timeout_ms: 4000,
            terminator: Some("#".into()),
            attempts: config.attempts,
            valid: vec![pin.clone()],
            invalid_prompts: vec![say("That PIN is not correct.")],
            timeout_prompts: Vec::new(),
        })?;
        if !got.valid {
            media::play(&[say("Goodbye.")], false)?;
            return routing::hangup();
        }
    }
    if !config.greeting.is_empty() {
        media::play(&[say(&config.greeting)], false)?;
    }
    routing::conference(room, config.muted)
}

hookline_sdk::export!(Conference);
