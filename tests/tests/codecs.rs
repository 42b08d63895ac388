//! Codecs against a real peer: baresip callers and agents limited to one codec
//! (Opus, G.722, PCMU). The node answers in the caller's codec, plays prompts
//! in it, takes its keys, and bridges legs that share no codec by transcoding.

use std::time::Duration;

use hookline_tests::{
    audible_windows, longest_tone_s, read_heard, steps, tone, tone_windows, Baresip, TestNode,
};
use serde_json::Value;

const MENU: &str = r#"[[extensions]]
user = "202"
password = "two"

[[routes]]
number = "menu"
plugin = "ivr"
config = { menu = ["main_menu"], attempts = 1, timeout_ms = 6000, options = [{ digit = "1", name = "sales", prompts = ["sales"] }], fallback = { name = "operator", prompts = ["operator"] } }

[[routes]]
number = "agent"
plugin = "ivr"
config = { fallback = { name = "agent", dial = ["202"], dial_timeout_ms = 15000 } }
"#;

/// The WAV of what a baresip heard (its recorder runs at the codec's rate).
fn heard(b: &Baresip) -> std::path::PathBuf {
    b.heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", b.log()))
}

fn media_codec(call: &Value) -> &str {
    call["media"]["codec"].as_str().unwrap_or("")
}

#[test]
fn opus_and_g722_callers_hear_the_menu_and_their_keys_reach_the_plugin() {
    let node = TestNode::with_routes(MENU).unwrap();
    for (codec, name) in [("opus", "opus"), ("G722", "G722")] {
        let caller = Baresip::dial_with_codec(
            &format!("sip:menu@{}", node.sip),
            &vec![0; 8000 * 30],
            codec,
        )
        .unwrap();
        caller.press_when_answered(&node, "1");
        let call = node
            .wait_for_call(Duration::from_secs(20), |c| {
                c["hangup_cause"].is_string() && media_codec(c) == name
            })
            .unwrap_or_else(|e| panic!("{codec}: {e}\n{}\n{}", caller.log(), node.logs()));
        let path = steps(&call);
        assert!(
            path.contains(&"branch:sales"),
            "{codec}: {call:#}\n{}",
            caller.log()
        );
        let caller = caller.quit().unwrap();
        let (pcm, rate) = read_heard(&heard(&caller));
        // The start of the menu and the whole sales prompt, as speech: at
        // least as many speech-level 100 ms windows as the sales prompt
        // itself has (a fragment or silence has fewer).
        let (prompt, prompt_rate) = read_heard(&node.prompt_wav("sales"));
        let (got, want) = (
            audible_windows(&pcm, rate),
            audible_windows(&prompt, prompt_rate),
        );
        eprintln!("{codec}: {got} speech windows heard, the sales prompt has {want}");
        assert!(
            got >= want,
            "{codec}: the caller heard {got} speech windows; the sales prompt alone has {want}"
        );
        assert_eq!(call["media"]["lost"], 0, "{codec}: {call:#}");
    }
}

/// An Opus caller and a G.711-only agent share no codec: the node decodes,
/// resamples where needed and re-encodes each way; each hears the other's tone.
#[test]
fn opus_caller_is_transcoded_to_a_pcmu_agent_both_ways() {
    let node = TestNode::with_routes(MENU).unwrap();
    let agent = node
        .agent_with_codec("202", "two", &tone(1000.0, 8000, 60), "PCMU")
        .unwrap();
    let caller = Baresip::dial_with_codec(
        &format!("sip:agent@{}", node.sip),
        &tone(600.0, 8000, 8),
        "opus",
    )
    .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["parent"].is_null() && c["callee"] == "agent" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", caller.log(), node.logs()));
    assert_eq!(media_codec(&call), "opus", "{call:#}");
    let leg = node
        .wait_for_call(Duration::from_secs(5), |c| {
            c["parent"] == call["id"] && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("no agent leg: {e}"));
    let leg = &leg;
    assert_eq!(
        steps(leg),
        ["codec:PCMU"],
        "{leg:#}\n{}\n{}",
        agent.log(),
        node.logs()
    );
    assert!(leg["answered_at"].is_string(), "{leg:#}");

    // Each heard the other's tone for most of the ~8 s call (the caller's
    // microphone ends it), and neither its own.
    let caller = caller.quit().unwrap();
    let agent = agent.quit().unwrap();
    let (c, a) = (
        longest_tone_s(&heard(&caller), 1000.0),
        longest_tone_s(&heard(&agent), 600.0),
    );
    eprintln!("the caller heard 1 kHz for {c} s, the agent 600 Hz for {a} s");
    assert!(
        c >= 5.0,
        "the Opus caller heard the agent's 1 kHz for {c} s"
    );
    assert!(
        a >= 5.0,
        "the PCMU agent heard the caller's 600 Hz for {a} s"
    );
    let echoes = (
        tone_windows(&heard(&caller), 600.0),
        tone_windows(&heard(&agent), 1000.0),
    );
    assert_eq!(echoes, (0, 0), "own tone heard back (windows)");
    assert!(
        call["media"]["concealed"].as_u64().unwrap_or(0) < 25,
        "{call:#}"
    );
}
