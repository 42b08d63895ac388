//! Browser legs with a real browser: headless Chromium (Debian's chromium,
//! driven by playwright-core) opens the node's softphone page at `/phone`.
//! It calls the IVR and presses a key; and, logged in as agent 301, it
//! answers a SIP caller bridged to it. Audio is checked at both ends: the
//! page's inbound-rtp audio level, and what baresip recorded.

use std::process::Command;
use std::time::Duration;

use hookline_tests::{
    http_get, http_post, secs_of, steps, tone, tone_bursts, tone_windows, wait_until,
    workspace_root, write_wav_i16, Baresip, TestNode,
};
use serde_json::Value;

const TOKEN: &str = "demo-301-change-me";

const ROUTES: &str = r#"[[routes]]
number = "menu"
plugin = "ivr"
config = { menu = ["main_menu"], attempts = 1, timeout_ms = 6000, options = [{ digit = "1", name = "sales", prompts = ["sales"] }], fallback = { name = "operator", prompts = ["operator"] } }

[[routes]]
number = "agent"
plugin = "ivr"
config = { fallback = { name = "agent", dial = ["301"], dial_timeout_ms = 20000 } }
"#;

/// Runs the page driver; returns what it printed as JSON, with its log.
fn softphone(args: &[String]) -> (Value, String) {
    let script = workspace_root().join("tests/browser/softphone.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .output()
        .expect("node (apt nodejs; scripts/setup.sh --test installs it and playwright-core)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stdout.lines().last().unwrap_or("{}");
    let json = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("softphone printed {stdout:?}: {e}\n{log}"));
    (json, log)
}

#[test]
fn browser_calls_the_ivr_and_its_key_reaches_the_plugin() {
    let node = TestNode::with_routes(ROUTES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mic = dir.path().join("mic.wav");
    write_wav_i16(&mic, 8000, &vec![0; 8000 * 20]).unwrap();
    let (page, log) = softphone(&[
        "call".into(),
        format!("http://{}", node.http),
        TOKEN.into(),
        "menu".into(),
        "1".into(),
        mic.display().to_string(),
        "6".into(),
    ]);
    assert_eq!(page["connected"], true, "{page}\n{log}\n{}", node.logs());
    // The page heard the menu (speech), not silence.
    let level = page["maxLevel"].as_f64().unwrap_or(0.0);
    assert!(level > 0.02, "inbound audio level {level}: {page}");
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["callee"] == "menu" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(call["caller"], "301", "{call:#}");
    assert!(
        steps(&call).contains(&"branch:sales"),
        "the key did not reach the plugin: {call:#}\n{log}\n{}",
        node.logs()
    );
    assert_eq!(call["media"]["codec"], "opus", "{call:#}");
}

#[test]
fn wrong_token_and_garbage_offers_are_refused() {
    let node = TestNode::with_routes(ROUTES).unwrap();
    let post = |token: &str, body: &str| {
        http_post(node.http, "/webrtc/call/menu", Some(token), body)
            .unwrap()
            .0
    };
    assert_eq!(post("nope-nope-nope", "v=0"), 401);
    assert_eq!(post(TOKEN, "not sdp at all"), 400);
    // Nothing was admitted: no call record, capacity free.
    assert!(node.calls().unwrap().is_empty());
}

#[test]
fn sip_caller_is_bridged_to_a_browser_agent_both_ways() {
    let node = TestNode::with_routes(ROUTES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mic = dir.path().join("agent.wav");
    write_wav_i16(&mic, 8000, &tone_bursts(1000.0, 8000, 30)).unwrap();
    let base = format!("http://{}", node.http);
    let agent = std::thread::spawn(move || {
        softphone(&[
            "agent".into(),
            base,
            TOKEN.into(),
            mic.display().to_string(),
            "8".into(),
        ])
    });
    // Logged in: the node lists the browser as online.
    let online = || {
        let (_, body) = http_get(node.http, "/api/agents", node.token.as_deref()).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        v["browsers"]
            .as_array()
            .is_some_and(|b| b.iter().any(|u| u == "301"))
    };
    assert!(
        wait_until(Duration::from_secs(30), online),
        "the browser agent never logged in\n{}",
        node.logs()
    );
    let caller =
        Baresip::start_with_mic(&format!("sip:agent@{}", node.sip), &tone(600.0, 8000, 10))
            .unwrap();
    let (page, log) = agent.join().unwrap();
    assert_eq!(page["connected"], true, "{page}\n{log}\n{}", node.logs());
    assert_eq!(page["from"], "bs", "{page}");
    let level = page["maxLevel"].as_f64().unwrap_or(0.0);
    assert!(level > 0.02, "the agent heard nothing: level {level}");

    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["callee"] == "agent" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", caller.log()));
    let leg = node
        .wait_for_call(Duration::from_secs(5), |c| {
            c["parent"] == call["id"] && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(leg["callee"], "301", "{leg:#}");
    assert!(leg["answered_at"].is_string(), "{leg:#}");
    assert_eq!(steps(&leg), ["codec:opus"], "{leg:#}");

    // The SIP caller heard the browser's 1 kHz bursts (Opus -> PCMU) in
    // most of the windows they could be in (half of the talk time), and
    // never its own 600 Hz.
    let caller = caller.quit().unwrap();
    let heard = caller.heard().expect("baresip recorded");
    let talk_s = secs_of(&call, "ended_at") - secs_of(&call, "answered_at");
    let possible = (talk_s * 10.0 / 2.0) as usize;
    let got = tone_windows(&heard, 1000.0);
    eprintln!("the caller heard the browser in {got} of {possible} possible windows");
    assert!(
        got * 2 >= possible,
        "the caller heard the browser's tone in {got} × 100 ms of {possible} possible"
    );
    assert_eq!(tone_windows(&heard, 600.0), 0, "the caller heard itself");
}
