//! Outbound legs and bridging with real peers: baresip registers as extension
//! 201 and auto-answers; a SIPp caller presses 1 in the IVR and is connected.
//! Audio is checked at both ends: what one sends, the other hears.

use std::time::Duration;

use hookline_tests::{
    alaw_to_linear, read_wav_i16, rms, sipp, steps, tone, Baresip, RtpSink, TestNode,
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

fn zero_crossings_per_second(pcm: &[i16]) -> f64 {
    let z = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    z as f64 / (pcm.len() as f64 / 8000.0)
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
    let last_4s = &pcm[pcm.len().saturating_sub(8000 * 4)..];
    assert!(
        rms(last_4s) > 2000.0,
        "caller heard no agent: RMS {}",
        rms(last_4s)
    );
    let zc = zero_crossings_per_second(last_4s);
    assert!(
        (1900.0..2100.0).contains(&zc),
        "not the agent's 1 kHz tone: {zc} crossings/s"
    );

    // The agent heard the caller's speech (SIPp's g711a.pcap).
    let agent = agent.quit().unwrap();
    let heard = agent
        .heard()
        .unwrap_or_else(|| panic!("agent recorded nothing\n{}", agent.log()));
    let heard = read_wav_i16(&heard).unwrap();
    let loud = heard.iter().filter(|s| s.unsigned_abs() > 1000).count();
    assert!(
        loud > 8000,
        "agent heard too little of the caller: {loud} loud samples, RMS {}",
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

    // Each heard the other: 1 kHz at the caller, 600 Hz at the callee.
    let heard_by_caller = read_wav_i16(&caller.heard().expect("caller recorded nothing")).unwrap();
    let heard_by_callee = read_wav_i16(&callee.heard().expect("callee recorded nothing")).unwrap();
    let loudest_second = |pcm: &[i16]| -> Vec<i16> {
        pcm.chunks(8000)
            .max_by_key(|c| c.iter().map(|s| s.unsigned_abs() as u64).sum::<u64>())
            .unwrap_or(&[])
            .to_vec()
    };
    let a = loudest_second(&heard_by_caller);
    let b = loudest_second(&heard_by_callee);
    assert!(
        rms(&a) > 2000.0 && rms(&b) > 2000.0,
        "RMS caller {} callee {}",
        rms(&a),
        rms(&b)
    );
    let (za, zb) = (zero_crossings_per_second(&a), zero_crossings_per_second(&b));
    assert!(
        (1900.0..2100.0).contains(&za),
        "caller heard {za} crossings/s, not 1 kHz"
    );
    assert!(
        (1100.0..1300.0).contains(&zb),
        "callee heard {zb} crossings/s, not 600 Hz"
    );
}
