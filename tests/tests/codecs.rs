//! Codecs against a real peer: baresip callers and agents limited to one codec
//! (Opus, G.722, PCMU). The node answers in the caller's codec, plays prompts
//! in it, takes its keys, and bridges legs that share no codec by transcoding.

use std::time::Duration;

use hookline_tests::{read_wav_i16, rms, steps, tone, wav_rate, Baresip, TestNode};
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

/// The frequency of a pure tone, from its zero crossings.
fn tone_hz(pcm: &[i16], rate: u32) -> f64 {
    let z = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    z as f64 / 2.0 / (pcm.len() as f64 / rate as f64)
}

/// What a baresip heard, with its sample rate (its recorder runs at the codec's rate).
fn heard(b: &Baresip) -> (Vec<i16>, u32) {
    let path = b
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", b.log()));
    (read_wav_i16(&path).unwrap(), wav_rate(&path).unwrap())
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
        let (pcm, rate) = heard(&caller);
        // The menu and the sales prompt are speech: seconds of it, well above line noise.
        let loud = pcm.iter().filter(|s| s.unsigned_abs() > 1000).count();
        assert!(
            loud as u32 > rate / 2,
            "{codec}: the caller heard {loud} loud samples at {rate} Hz, RMS {:.0}",
            rms(&pcm)
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

    // The caller (Opus) heard the agent's 1 kHz tone.
    let caller = caller.quit().unwrap();
    let (pcm, rate) = heard(&caller);
    let tail = &pcm[pcm.len().saturating_sub(rate as usize * 3)..pcm.len() - rate as usize / 2];
    assert!(
        rms(tail) > 2000.0,
        "caller heard no agent: RMS {:.0}",
        rms(tail)
    );
    let hz = tone_hz(tail, rate);
    assert!(
        (950.0..1050.0).contains(&hz),
        "caller heard {hz:.0} Hz, not 1 kHz"
    );

    // The agent (PCMU) heard the caller's 600 Hz tone.
    let agent = agent.quit().unwrap();
    let (pcm, rate) = heard(&agent);
    let voiced: Vec<i16> = pcm
        .chunks(rate as usize / 10)
        .filter(|c| rms(c) > 2000.0)
        .flatten()
        .copied()
        .collect();
    assert!(
        voiced.len() > rate as usize * 3,
        "agent heard {} voiced samples at {rate} Hz",
        voiced.len()
    );
    let hz = tone_hz(&voiced, rate);
    assert!(
        (570.0..630.0).contains(&hz),
        "agent heard {hz:.0} Hz, not 600"
    );
    assert!(
        call["media"]["concealed"].as_u64().unwrap_or(0) < 25,
        "{call:#}"
    );
}
