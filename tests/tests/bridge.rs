//! Outbound legs and bridging with real peers: baresip registers as extension
//! 201 and auto-answers; a SIPp caller presses 1 in the IVR and is connected.
//! Audio is checked at both ends: what one sends, the other hears.

use std::time::Duration;

use hookline_tests::{
    alaw_to_linear, longest_run_s, longest_tone_s, read_wav_i16, rms, sipp, steps, tone,
    tone_flags, tone_windows, Baresip, RtpSink, TestNode,
};
use serde_json::Value;

const SETUP: &str = r#"[[extensions]]
user = "201"
password = "agent"

[[routes]]
number = "sales"
plugin = "ivr"
config = { menu = ["main_menu"], attempts = 2, timeout_ms = 3000, options = [{ digit = "1", name = "sales", dial = ["201"], dial_timeout_ms = 15000, unanswered = ["operator"] }], fallback = { name = "operator", prompts = ["operator"] } }
"#;

/// A 1 kHz tone: what the agent says.
fn agent_voice(seconds: usize) -> Vec<i16> {
    (0..8000 * seconds)
        .map(|n| ((n as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 8000.0).sin() * 8000.0) as i16)
        .collect()
}

#[test]
fn caller_is_bridged_to_a_registered_agent_with_audio_both_ways() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let agent = node.agent("201", "agent", &agent_voice(60)).unwrap();

    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_bridge.xml",
        "sales",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    let packets = sink.finish();

    let caller = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "bridged" && c["parent"].is_null() && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = steps(&caller);
    assert!(
        path.contains(&"branch:sales"),
        "{caller:#}\n{}",
        node.logs()
    );
    assert!(path.contains(&"dial:201"), "{path:?}");
    assert_eq!(caller["hangup_cause"], "caller-bye", "{caller:#}");
    let calls = node.calls().unwrap();
    let leg: &Value = calls
        .iter()
        .find(|c| c["parent"] == caller["id"])
        .unwrap_or_else(|| panic!("no leg record linked to the call: {calls:#?}"));
    assert_eq!(leg["callee"], "201");
    assert!(leg["answered_at"].is_string(), "{leg:#}");
    assert_eq!(leg["hangup_cause"], "caller-bye");

    // The caller heard the agent: a 1 kHz tone (A-law, as the caller negotiated).
    let pcm: Vec<i16> = packets
        .iter()
        .filter(|p| p.payload_type == 8)
        .flat_map(|p| p.payload.iter().map(|b| alaw_to_linear(*b)))
        .collect();
    // The bridge's last 4 s: the agent's tone throughout, not a few blips.
    let last_4s = &pcm[pcm.len().saturating_sub(8000 * 4)..];
    let heard = longest_run_s(&tone_flags(last_4s, 8000, 1000.0, 0.5));
    assert!(
        heard >= 3.5,
        "the caller heard the agent's 1 kHz for {heard} s of the last 4 (RMS {})",
        rms(last_4s)
    );

    // The agent heard the caller's speech (SIPp's g711a.pcap).
    let agent = agent.quit().unwrap();
    let heard = agent
        .heard()
        .unwrap_or_else(|| panic!("agent recorded nothing\n{}", agent.log()));
    // Its own voice never came back to it (a relay that echoes would).
    let echo = tone_windows(&heard, 1000.0);
    assert_eq!(echo, 0, "the agent heard its own tone in {echo} windows");
    let heard = read_wav_i16(&heard).unwrap();
    // SIPp's speech (g711a.pcap) at speech level for most of the seconds
    // the two were connected.
    let talking = heard.chunks_exact(800).filter(|w| rms(w) > 300.0).count();
    assert!(
        talking >= 30,
        "agent heard the caller in {talking} × 100 ms, RMS {}",
        rms(&heard)
    );
}

#[test]
fn two_registered_phones_call_each_other_and_hear_each_other() {
    let setup = r#"[[extensions]]
user = "201"
password = "one"

[[extensions]]
user = "202"
password = "two"

[[routes]]
number = "2*"
plugin = "ivr"
config = { fallback = { name = "extension", dial = ["{callee}"], dial_timeout_ms = 15000 } }
"#;
    let node = TestNode::with_routes(setup).unwrap();
    let callee = node.agent("202", "two", &tone(1000.0, 8000, 60)).unwrap();
    // 201 registers too and dials 202 by its extension; the mic plays 600 Hz for 8 s, then silence.
    let mut mic = tone(600.0, 8000, 8);
    mic.extend(vec![0i16; 8000 * 50]);
    let caller = Baresip::register_and_dial(
        &format!("<sip:201@{}>;auth_pass=one;regint=600", node.sip),
        &format!("sip:202@{}", node.sip),
        &mic,
    )
    .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["callee"] == "202" && c["parent"].is_null() && c["answered_at"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\ncaller:\n{}\ncallee:\n{}", caller.log(), callee.log()));
    assert_eq!(call["caller"], "201");
    std::thread::sleep(Duration::from_secs(6));
    let caller = caller.quit().unwrap();
    let callee = callee.quit().unwrap();
    let leg = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["parent"] == call["id"] && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert!(leg["answered_at"].is_string(), "{leg:#}");

    // Each heard the other for the whole ~6 s they talked (1 kHz at the
    // caller, 600 Hz at the callee), and neither heard itself.
    let caller_heard = caller.heard().expect("caller recorded nothing");
    let callee_heard = callee.heard().expect("callee recorded nothing");
    let (a, b) = (
        longest_tone_s(&caller_heard, 1000.0),
        longest_tone_s(&callee_heard, 600.0),
    );
    assert!(a >= 4.5, "the caller heard the callee's 1 kHz for {a} s");
    assert!(b >= 4.5, "the callee heard the caller's 600 Hz for {b} s");
    let (echo_a, echo_b) = (
        tone_windows(&caller_heard, 600.0),
        tone_windows(&callee_heard, 1000.0),
    );
    assert_eq!((echo_a, echo_b), (0, 0), "own voice heard back (windows)");
}
