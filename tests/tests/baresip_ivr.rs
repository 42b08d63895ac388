//! The IVR with baresip as the caller: a real softphone hears the menu, presses 1
//! (RFC 4733), and the node ends the call after the sales prompt.

use std::time::Duration;

use hookline_tests::{read_wav_i16, rms, steps, Baresip, NodeSpec, TestNode};

#[test]
fn baresip_hears_the_menu_and_reaches_sales() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let phone = Baresip::start(&format!("sip:100@{}", node.sip)).unwrap();
    // Press 1 once the call is up (the greeting is playing; barge-in cuts it).
    phone.press_when_answered(&node, "1");
    let call = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["caller"] == "bs" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\nbaresip log:\n{}", phone.log()));
    let path = steps(&call);
    assert!(path.contains(&"digits:1"), "{path:?}");
    assert!(path.contains(&"branch:sales"), "{path:?}");
    assert_eq!(call["hangup_cause"], "plugin-hangup");
    // baresip sends RTCP to our port + 1: its reports about our stream are in the record.
    assert!(
        call["media"]["rtcp_reports"].as_u64().unwrap_or(0) > 0,
        "no RTCP from baresip: {call:#}"
    );
    assert_eq!(call["media"]["peer_lost"], 0, "{call:#}");

    let phone = phone.quit().unwrap();
    let heard = phone
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", phone.log()));
    let pcm = read_wav_i16(&heard).unwrap();
    let speech: Vec<i16> = pcm
        .iter()
        .copied()
        .filter(|s| s.unsigned_abs() > 300)
        .collect();
    // The greeting (1.5 s) and the sales prompt (~4 s) reached the phone as audible audio.
    assert!(pcm.len() > 8000 * 3, "heard only {} samples", pcm.len());
    assert!(
        rms(&pcm) > 300.0,
        "what baresip heard is silence: RMS {}",
        rms(&pcm)
    );
    assert!(
        speech.len() > 8000,
        "too little speech-level audio: {} samples",
        speech.len()
    );
}
