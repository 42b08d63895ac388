//! Sample auto-attendant: greeting, a one-key department menu with retries,
//! then a fallback branch. Everything the caller hears comes from the route's
//! config (see `plugins/ivr/README.md`), not from code.

use hookline_sdk::media::CollectOptions;
use hookline_sdk::menu::{Menu, MenuOutcome};
use hookline_sdk::routing::RingStrategy;
use hookline_sdk::routing::{DialOptions, DialStatus, DialTarget, EnqueueOptions, QueueEnd};
use hookline_sdk::{data, field, media, prompts, routing, CallError, CallInfo, Manifest, Plugin};
use serde::Deserialize;

/// The route config the IVR reads (JSON from `hookline.toml`).
#[derive(Debug, Deserialize)]
pub struct IvrConfig {
    #[serde(default)]
    pub greeting: Vec<String>,
    /// Without a menu (and options) the call goes straight to `fallback`: a
    /// route that only connects the caller somewhere.
    #[serde(default)]
    pub menu: Vec<String>,
    #[serde(default)]
    pub invalid: Vec<String>,
    #[serde(default)]
    pub no_input: Vec<String>,
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    #[serde(default)]
    pub options: Vec<MenuOption>,
    pub fallback: Branch,
    /// Let the caller hear ringing this long before answering.
    #[serde(default)]
    pub ring_ms: u32,
    /// A language menu before everything else: each entry is spoken in its
    /// own language ("For English, press 1", "Для русского нажмите 2");
    /// the choice sets the call's language for every prompt after it.
    #[serde(default)]
    pub languages: Vec<LanguageOption>,
    /// Callers may dial an extension of this many digits at any time during
    /// the greeting and the menu (0: keys are menu choices only). A single
    /// menu key followed by a pause still picks its option.
    #[serde(default)]
    pub extension_digits: u32,
    /// Pause that ends an extension being dialled.
    #[serde(default = "default_inter_digit_ms")]
    pub inter_digit_ms: u32,
}

fn default_inter_digit_ms() -> u32 {
    2500
}

/// One key of the language menu.
#[derive(Debug, Deserialize)]
pub struct LanguageOption {
    pub digit: char,
    /// BCP 47 tag: en, ru, uk, bg.
    pub language: String,
    /// What is said for this option, in that language.
    pub label: String,
}

/// One key of the menu: in the config, a branch with a `digit` (and `say`).
#[derive(Debug, Deserialize)]
#[serde(try_from = "Branch")]
pub struct MenuOption {
    pub digit: char,
    /// Phrases the caller may say instead of pressing the key ("sales").
    pub say: Vec<String>,
    pub branch: Branch,
}

impl TryFrom<Branch> for MenuOption {
    type Error = String;

    fn try_from(mut branch: Branch) -> Result<Self, String> {
        let digit = branch
            .digit
            .take()
            .ok_or_else(|| format!("option {:?} has no digit", branch.name))?;
        let say = std::mem::take(&mut branch.say);
        Ok(MenuOption { digit, say, branch })
    }
}

/// Where a choice leads: its name in the call record, what the caller hears,
/// and whom to connect them to.
#[derive(Debug, Deserialize)]
pub struct Branch {
    pub name: String,
    /// A menu option's key and phrases, read here so that an option is one
    /// flat object: `#[serde(flatten)]` buffered every option in a generic
    /// tree before reading it, 30 % of the guest's work at call start
    /// (perf). Ignored on a fallback.
    #[serde(default)]
    digit: Option<char>,
    #[serde(default)]
    say: Vec<String>,
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Extensions, ring groups (by name or number, rung by their strategy),
    /// SIP URIs (`sip:…`) or numbers via the trunks (`tel:…`), rung at once
    /// after the prompts. `{callee}` stands for the dialled number.
    #[serde(default)]
    pub dial: Vec<String>,
    #[serde(default = "default_dial_timeout_ms")]
    pub dial_timeout_ms: u32,
    /// Wait in this queue (after the prompts; instead of `dial`): the
    /// queue's music, announcements, leave and callback keys apply.
    #[serde(default)]
    pub enqueue: Option<String>,
    /// The caller's priority in that queue (the queue's own list may raise it).
    #[serde(default)]
    pub priority: u32,
    /// Played when nobody answers the dial or the handed-over plugin returns.
    #[serde(default)]
    pub unanswered: Vec<String>,
    /// Hand the call to another plugin (voicemail, crm-router) after the
    /// prompts, or, when the branch dials, as the no-answer action.
    #[serde(default)]
    pub hand_over: Option<String>,
    /// Arguments for the handed-over plugin (any JSON).
    #[serde(default)]
    pub hand_over_args: Option<serde_json::Value>,
}

fn default_dial_timeout_ms() -> u32 {
    30_000
}

fn default_attempts() -> u32 {
    3
}

fn default_timeout_ms() -> u32 {
    5000
}

struct Ivr;

impl Plugin for Ivr {
    fn manifest() -> Manifest {
        let mut m = hookline_sdk::manifest("ivr", env!("CARGO_PKG_VERSION"));
        // Branches may hand calls to any plugin the operator allows.
        m.needs = vec!["hand-over:*".into(), "speech".into()];
        m.config_schema = vec![
            field("greeting", "list", false, "prompt ids played first"),
            field("menu", "list", false, "prompt ids announcing the choices"),
            field("invalid", "list", false, "prompt ids after a wrong key"),
            field("no_input", "list", false, "prompt ids after silence"),
            field("attempts", "number", false, "times the menu is offered"),
            field("timeout_ms", "number", false, "wait for a key"),
            field(
                "options",
                "list",
                false,
                "{digit, say, name, prompts, dial}: say = phrases spoken instead of the key",
            ),
            field("fallback", "object", true, "branch when no choice was made"),
            field("ring_ms", "number", false, "ringing before answer"),
            field(
                "languages",
                "list",
                false,
                "{digit, language, label}: language menu first",
            ),
            field(
                "extension_digits",
                "number",
                false,
                "dial an extension of this many digits at any time (0 = off)",
            ),
            field(
                "inter_digit_ms",
                "number",
                false,
                "pause that ends an extension (default 2500)",
            ),
        ];
        m
    }

    /// Parses the route config before the call comes (the call then starts
    /// without parsing it).
    fn prepare(config: String) {
        hookline_sdk::prepare_config::<IvrConfig>(config);
    }

    fn handle_call(info: CallInfo) -> Result<(), String> {
        // Neither is freed at the end: the instance serves this one call and
        // its memory is reset after it, so freeing the config's hundred-odd
        // allocations one by one was wasted work: three quarters of the
        // instructions the guest ran for a call that hangs up at once
        // (10,700 of 14,000, callgrind of `plugin_instantiate`).
        let info = std::mem::ManuallyDrop::new(info);
        let config = std::mem::ManuallyDrop::new(hookline_sdk::config::<IvrConfig>(&info)?);
        hookline_sdk::finish(run(&config, &info.callee))
    }
}

fn run(config: &IvrConfig, callee: &str) -> Result<(), CallError> {
    if config.ring_ms > 0 {
        media::sleep(config.ring_ms)?;
    }
    let says_nothing = config.languages.is_empty()
        && config.greeting.is_empty()
        && config.menu.is_empty()
        && config.options.is_empty();
    if says_nothing {
        // Straight to the fallback: a dial answers the caller when a callee
        // answers (the caller hears ringing until then).
        return take(&config.fallback, callee);
    }
    media::answer()?;
    if !config.languages.is_empty() {
        choose_language(config)?;
    }
    if !config.greeting.is_empty() {
        media::play(&prompts(&config.greeting), true)?;
    }
    if config.menu.is_empty() && config.options.is_empty() {
        return take(&config.fallback, callee);
    }
    let choices: String = config.options.iter().map(|o| o.digit).collect();
    let (menu_prompts, invalid, no_input) = (
        prompts(&config.menu),
        prompts(&config.invalid),
        prompts(&config.no_input),
    );
    let menu = Menu {
        prompts: &menu_prompts,
        choices: &choices,
        attempts: config.attempts,
        timeout_ms: config.timeout_ms,
        invalid_prompts: &invalid,
        timeout_prompts: &no_input,
    };
    if config.extension_digits > 0 {
        return menu_or_extension(config, &menu, callee);
    }
    let spoken: Vec<(String, char)> = config
        .options
        .iter()
        .flat_map(|o| o.say.iter().map(move |p| (p.clone(), o.digit)))
        .collect();
    let branch = match menu.run_spoken(&spoken)? {
        MenuOutcome::Chosen(key) => config
            .options
            .iter()
            .find(|o| o.digit == key)
            .map(|o| &o.branch)
            .unwrap_or(&config.fallback),
        MenuOutcome::NoChoice => &config.fallback,
    };
    take(branch, callee)
}

/// The menu where the caller may also dial an extension (keys only; a key
/// pressed during the greeting counts, type-ahead). One valid menu key then
/// a pause picks its option; `extension_digits` keys dial that extension.
fn menu_or_extension(config: &IvrConfig, menu: &Menu, callee: &str) -> Result<(), CallError> {
    for attempt in 1..=config.attempts.max(1) {
        let got = media::collect_digits(&CollectOptions {
            prompts: menu.prompts.to_vec(),
            min_digits: 1,
            max_digits: config.extension_digits,
            first_digit_timeout_ms: config.timeout_ms,
            inter_digit_timeout_ms: config.inter_digit_ms,
            terminator: Some("#".into()),
            attempts: 1,
            valid: Vec::new(),
            invalid_prompts: Vec::new(),
            timeout_prompts: Vec::new(),
        })?;
        let digits = got.digits.as_str();
        let mut keys = digits.chars();
        if let (Some(k), None) = (keys.next(), keys.next()) {
            if let Some(o) = config.options.iter().find(|o| o.digit == k) {
                return take(&o.branch, callee);
            }
        }
        if digits.len() as u32 == config.extension_digits
            && digits.chars().all(|c| c.is_ascii_digit())
        {
            let branch = Branch {
                name: format!("extension:{digits}"),
                digit: None,
                say: Vec::new(),
                prompts: Vec::new(),
                dial: vec![digits.to_string()],
                dial_timeout_ms: default_dial_timeout_ms(),
                enqueue: None,
                priority: 0,
                unanswered: config.fallback.unanswered.clone(),
                hand_over: config.fallback.hand_over.clone(),
                hand_over_args: config.fallback.hand_over_args.clone(),
            };
            return take(&branch, callee);
        }
        if attempt < config.attempts.max(1) {
            let retry = if digits.is_empty() {
                menu.timeout_prompts
            } else {
                menu.invalid_prompts
            };
            media::play(retry, true)?;
        }
    }
    take(&config.fallback, callee)
}

fn queue_end_name(end: QueueEnd) -> &'static str {
    match end {
        QueueEnd::Answered => "answered",
        QueueEnd::Timeout => "timeout",
        QueueEnd::Full => "full",
        QueueEnd::Left => "left",
        QueueEnd::Callback => "callback",
    }
}

/// Offers the language menu; no valid key keeps the node's default language.
fn choose_language(config: &IvrConfig) -> Result<(), CallError> {
    let prompts: Vec<_> = config
        .languages
        .iter()
        .map(|l| hookline_sdk::say_in(&l.label, &l.language))
        .collect();
    let choices: String = config.languages.iter().map(|l| l.digit).collect();
    let menu = Menu {
        prompts: &prompts,
        choices: &choices,
        attempts: 2,
        timeout_ms: config.timeout_ms,
        invalid_prompts: &[],
        timeout_prompts: &[],
    };
    if let MenuOutcome::Chosen(key) = menu.run()? {
        if let Some(l) = config.languages.iter().find(|l| l.digit == key) {
            media::set_language(&l.language)?;
        }
    }
    Ok(())
}

/// Runs a branch: its prompts, its dial, then the end of the call.
fn take(branch: &Branch, callee: &str) -> Result<(), CallError> {
    data::mark(&format!("branch:{}", branch.name));
    if !branch.prompts.is_empty() {
        media::play(&prompts(&branch.prompts), false)?;
    }
    let mut connected = false;
    if let Some(queue) = &branch.enqueue {
        let end = routing::enqueue(
            queue,
            EnqueueOptions {
                priority: branch.priority,
                max_wait_ms: 0,
            },
        )?;
        data::mark(&format!("queue-end:{}", queue_end_name(end)));
        match end {
            // The caller asked to be called back: the node has said goodbye.
            QueueEnd::Callback => return Ok(()),
            QueueEnd::Answered => connected = true,
            QueueEnd::Timeout | QueueEnd::Full | QueueEnd::Left => {
                if !branch.unanswered.is_empty() {
                    media::play(&prompts(&branch.unanswered), false)?;
                }
            }
        }
    } else if !branch.dial.is_empty() {
        let targets = branch
            .dial
            .iter()
            .map(|t| t.replace("{callee}", callee))
            .map(|t| {
                if t.starts_with("sip:") {
                    DialTarget::Uri(t)
                } else if let Some(number) = t.strip_prefix("tel:") {
                    DialTarget::Number(number.to_string())
                } else {
                    DialTarget::Extension(t)
                }
            })
            .collect();
        let result = routing::dial(&DialOptions {
            targets,
            strategy: RingStrategy::Simultaneous,
            timeout_ms: branch.dial_timeout_ms,
            caller_id: None,
        })?;
        connected = result.status == DialStatus::Completed;
        if !connected && !branch.unanswered.is_empty() {
            media::play(&prompts(&branch.unanswered), false)?;
        }
    }
    // The hand-over is the no-answer action when the branch dials first.
    if let Some(plugin) = branch.hand_over.as_ref().filter(|_| !connected) {
        let args = branch
            .hand_over_args
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "{}".into());
        let done = routing::hand_over(plugin, &args)?;
        if !done.ok {
            hookline_sdk::warn(&format!("{plugin}: {}", done.reason.unwrap_or_default()));
        }
        if !branch.unanswered.is_empty() && branch.dial.is_empty() && branch.enqueue.is_none() {
            media::play(&prompts(&branch.unanswered), false)?;
        }
    }
    routing::hangup()
}

hookline_sdk::export!(Ivr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_is_one_flat_object_with_its_key_phrases_and_branch() {
        let config: IvrConfig = serde_json::from_str(
            r#"{"options": [{"digit": "2", "say": ["support", "technical support"],
                 "name": "support", "prompts": ["support"], "dial": ["200"],
                 "hand_over": "voicemail", "hand_over_args": {"box": "200"}}],
                "fallback": {"name": "operator", "prompts": ["operator"]}}"#,
        )
        .unwrap();
        let o = &config.options[0];
        assert_eq!(o.digit, '2');
        assert_eq!(o.say, ["support", "technical support"]);
        assert_eq!(o.branch.name, "support");
        assert_eq!(o.branch.dial, ["200"]);
        assert_eq!(o.branch.hand_over.as_deref(), Some("voicemail"));
        assert_eq!(
            o.branch.hand_over_args,
            Some(serde_json::json!({"box": "200"}))
        );
        assert_eq!(o.branch.dial_timeout_ms, 30_000);
        assert_eq!(config.fallback.name, "operator");
    }

    #[test]
    fn an_option_without_a_digit_is_a_config_error_that_names_it() {
        let e = serde_json::from_str::<IvrConfig>(
            r#"{"options": [{"name": "sales"}], "fallback": {"name": "operator"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"sales\" has no digit"), "{e}");
    }
}
