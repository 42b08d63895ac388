//! Speech end to end with real peers: baresip callers whose microphone is a
//! neural voice (Piper) talking to the node, and what the node said checked
//! by an independent recognizer (PyPI pocketsphinx).

use std::time::Duration;

use hookline_tests::{
    piper_say, pocketsphinx_words, steps, words_found, Baresip, NodeSpec, TestNode,
};

fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 8]
}

/// The IVR on 200: the caller picks English with a key, then *says* the
/// department instead of pressing it, and the plugin takes that branch.
#[test]
fn a_caller_picks_a_language_then_says_the_department() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let greeting =
        hookline_tests::wav_duration_ms(&node.prompt_wav_in("en", "welcome")).unwrap() as usize;
    // Key 1 (English) goes at ~2 s; talk during the menu prompt after the
    // greeting (barge-in by voice).
    let mut mic = silence(2000 + greeting + 2500);
    mic.extend(piper_say("technical support").unwrap());
    mic.extend(silence(20_000));
    let phone = Baresip::start_with_mic(&format!("sip:200@{}", node.sip), &mic).unwrap();
    phone.press_when_answered(&node, "1");
    let call = node
        .wait_for_call(Duration::from_secs(60), |c| {
            c["caller"] == "bs" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\nbaresip log:\n{}", phone.log()));
    let path = steps(&call);
    assert!(path.contains(&"digits:1"), "the language key: {path:?}");
    assert!(path.contains(&"listen:en"), "{path:?}");
    assert!(path.contains(&"speech:technical support"), "{path:?}");
    assert!(path.contains(&"branch:support"), "{path:?}");
}

/// A voicemail spoken by the caller gets a transcript stored with its record.
#[test]
fn a_voicemail_gets_a_transcript() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let message = "please call me back tomorrow about my order";
    // The greeting is about 6 s, then the beep: speak after it.
    let mut mic = silence(9000);
    mic.extend(piper_say(message).unwrap());
    mic.extend(silence(8000));
    let phone = Baresip::start_with_mic(&format!("sip:800@{}", node.sip), &mic).unwrap();
    node.wait_for_call(Duration::from_secs(60), |c| {
        c["caller"] == "bs" && c["hangup_cause"].is_string()
    })
    .unwrap_or_else(|e| panic!("{e}\nbaresip log:\n{}", phone.log()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let transcript = loop {
        let recs = node.recordings().unwrap();
        if let Some(t) = recs
            .iter()
            .find(|r| r["kind"] == "message")
            .and_then(|r| r["transcript"].as_str())
        {
            break t.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no transcript: {recs:#?}\n{}",
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let found = words_found(message, &transcript);
    assert!(found >= 0.6, "{transcript:?} has {found:.2} of {message:?}");
}

/// What the node says (a `say` prompt from the survey) is recognised back by
/// an engine the node does not use.
#[test]
fn the_nodes_speech_is_recognised_back_from_the_rtp_it_sent() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let phone = Baresip::start(&format!("sip:801@{}", node.sip)).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let phone = phone.quit().unwrap();
    let heard = phone
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", phone.log()));
    let words = pocketsphinx_words(&heard).unwrap();
    // The survey's first question (Piper's voice through G.711 and RTP).
    let expected = "how would you rate the call quality";
    let found = words_found(expected, &words);
    assert!(found >= 0.8, "heard {words:?}: {found:.2} of {expected:?}");
}
