//! Plugin template: greets the caller by text-to-speech, offers a one-key
//! menu and connects the choice. Build with
//! `cargo build --release --target wasm32-wasip2`, then
//! `hookline plugin check target/wasm32-wasip2/release/<name>.wasm`.

use hookline_sdk::menu::{Menu, MenuOutcome};
use hookline_sdk::routing::{DialOptions, DialTarget, RingStrategy};
use hookline_sdk::{data, field, media, routing, say, CallError, CallInfo, Manifest, Plugin};
use serde::Deserialize;

/// The route config this plugin reads (declared in the manifest below).
#[derive(Deserialize)]
struct Config {
    greeting: String,
    /// Extension to connect when the caller presses 1.
    agent: String,
}

struct Template;

impl Plugin for Template {
    fn manifest() -> Manifest {
        let mut m = hookline_sdk::manifest("template", env!("CARGO_PKG_VERSION"));
        // Capabilities the operator must grant: e.g. "kv", "http:crm.example.com".
        m.needs = vec![];
        m.config_schema = vec![
            field("greeting", "string", true, "spoken first"),
            field("agent", "string", true, "extension for key 1"),
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
        // A hang-up is the normal end of a call, not an error.
        hookline_sdk::finish(run(&config))
    }
}

fn run(config: &Config) -> Result<(), CallError> {
    media::answer()?;
    let prompts = [say(&config.greeting), say("Press 1 to talk to an agent.")];
    let menu = Menu {
        prompts: &prompts,
        choices: "1",
        attempts: 3,
        timeout_ms: 5000,
        invalid_prompts: &[say("Sorry, that is not an option.")],
        timeout_prompts: &[],
    };
    if menu.run()? == MenuOutcome::Chosen('1') {
        data::mark("template:agent");
        routing::dial(&DialOptions {
            targets: vec![DialTarget::Extension(config.agent.clone())],
            strategy: RingStrategy::Simultaneous,
            timeout_ms: 30_000,
            caller_id: None,
        })?;
    }
    routing::hangup()
}

hookline_sdk::export!(Template);
