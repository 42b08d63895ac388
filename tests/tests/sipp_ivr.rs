//! The IVR end to end with SIPp as the caller (a real SIP peer).

use std::time::Duration;

use hookline_tests::{
    alaw_to_linear, path_of, rms, sipp, talkspurts, ulaw_to_linear, wav_duration_ms, NodeSpec,
    RtpSink, TestNode,
};

#[test]
fn caller_presses_2_hears_support_and_the_record_shows_it() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_ivr_dtmf.xml",
        "100",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    let packets = sink.finish();

    let call = node
        .wait_for_call(Duration::from_secs(10), |c| c["hangup_cause"].is_string())
        .unwrap();
    let path = path_of(&call);
    assert_eq!(call["caller"], "sipp");
    assert_eq!(call["callee"], "100");
    assert_eq!(call["plugin"], "ivr");
    assert!(
        call["answered_at"].is_string() && call["ended_at"].is_string(),
        "{call:#}"
    );
    assert!(path.contains(&"digits:2".to_string()), "{path:?}");
    assert!(path.contains(&"branch:support".to_string()), "{path:?}");
    assert_eq!(
        path.last().map(String::as_str),
        Some("prompt:support"),
        "{path:?}"
    );
    assert_eq!(call["hangup_cause"], "plugin-hangup");
    // Media counters of the leg: what the node sent and the DTMF it received, no loss.
    let media = &call["media"];
    assert!(media["packets_sent"].as_u64().unwrap() > 100, "{call:#}");
    assert!(media["packets_received"].as_u64().unwrap() > 0, "{call:#}");
    assert_eq!(media["lost"], 0, "{call:#}");

    // What the caller heard: the greeting (cut by the key press), then the support prompt in full.
    let spurts = talkspurts(&packets, 8);
    assert!(
        spurts.len() >= 2,
        "expected greeting and support prompt, got {} talkspurts",
        spurts.len()
    );
    let support = spurts.last().unwrap();
    let pcm: Vec<i16> = support
        .iter()
        .flat_map(|p| p.payload.iter().map(|b| alaw_to_linear(*b)))
        .collect();
    let heard_ms = support.len() as u64 * 20;
    let prompt_ms = wav_duration_ms(&node.prompt_wav("support")).unwrap();
    assert!(
        heard_ms.abs_diff(prompt_ms) <= 60,
        "support prompt is {prompt_ms} ms, the caller heard {heard_ms} ms"
    );
    assert!(
        rms(&pcm) > 500.0,
        "support prompt is too quiet: RMS {}",
        rms(&pcm)
    );
    // Consecutive sequence numbers: paced, nothing dropped by the node.
    for w in support.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
    }
}

#[test]
fn caller_hangs_up_during_greeting_and_the_call_is_recorded() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_hangup_early.xml",
        "100",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    let packets = sink.finish();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "early" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(call["hangup_cause"], "caller-bye", "{call:#}");
    assert_eq!(path_of(&call)[0], "prompt:welcome");
    // PCMU was negotiated and the greeting was audible.
    let pcm: Vec<i16> = packets
        .iter()
        .filter(|p| p.payload_type == 0)
        .flat_map(|p| p.payload.iter().map(|b| ulaw_to_linear(*b)))
        .collect();
    assert!(pcm.len() >= 8000 / 2, "heard only {} samples", pcm.len());
    assert!(
        rms(&pcm) > 500.0,
        "greeting is too quiet: RMS {}",
        rms(&pcm)
    );
}

#[test]
fn cancel_before_answer_gets_487() {
    let node = TestNode::with_routes("[[routes]]\nnumber = \"ring*\"\nplugin = \"ivr\"\nconfig = { ring_ms = 20000, menu = [\"main_menu\"], options = [], fallback = { name = \"none\" } }\n")
    .unwrap();
    sipp(&node, "uac_cancel.xml", "ring1", &[]).unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["callee"] == "ring1" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(call["hangup_cause"], "caller-cancel");
    assert!(call["answered_at"].is_null());
}

/// A menu that gives up quickly: two attempts, 1 s to answer.
const QUICK_MENU: &str = r#"[[routes]]
number = "quick"
plugin = "ivr"
config = { menu = ["main_menu"], invalid = ["invalid_choice"], no_input = ["no_input"], attempts = 2, timeout_ms = 1000, options = [{ digit = "1", name = "sales", prompts = ["sales"] }, { digit = "2", name = "support", prompts = ["support"] }], fallback = { name = "operator", prompts = ["operator"] } }
"#;

#[test]
fn silent_caller_hears_the_menu_twice_then_the_fallback() {
    let node = TestNode::with_routes(QUICK_MENU).unwrap();
    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_ivr_silent.xml",
        "quick",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    drop(sink.finish());
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "silent" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    assert_eq!(
        path,
        [
            "prompt:main_menu",
            "digits:",
            "prompt:no_input",
            "prompt:main_menu",
            "digits:",
            "branch:operator",
            "prompt:operator"
        ],
        "{call:#}"
    );
}

#[test]
fn wrong_key_is_refused_then_fallback() {
    let node = TestNode::with_routes(QUICK_MENU).unwrap();
    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_ivr_wrong_key.xml",
        "quick",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    drop(sink.finish());
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "wrongkey" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    assert!(path.contains(&"digits:9".to_string()), "{path:?}");
    assert!(
        path.contains(&"prompt:invalid_choice".to_string()),
        "{path:?}"
    );
    assert_eq!(
        path.last().map(String::as_str),
        Some("prompt:operator"),
        "{path:?}"
    );
}

#[test]
fn icmp_port_unreachable_from_the_caller_does_not_break_the_call() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    // Nobody listens on this port: every RTP packet the node sends draws ICMP port unreachable.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    sipp(
        &node,
        "uac_ivr_dtmf.xml",
        "100",
        &[("rtp_sink", closed.to_string())],
    )
    .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| c["hangup_cause"].is_string())
        .unwrap();
    // The digit still arrived and the IVR ran to its end.
    let path = path_of(&call);
    assert!(path.contains(&"branch:support".to_string()), "{path:?}");
    assert_eq!(call["hangup_cause"], "plugin-hangup");
}

#[test]
fn reinvite_hold_silences_the_prompt_and_resume_brings_it_back() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let sink = RtpSink::bind().unwrap();
    // SIPp checks the answers: a=recvonly to the hold, a=sendrecv to the resume.
    sipp(
        &node,
        "uac_hold.xml",
        "100",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    let packets: Vec<_> = sink
        .finish()
        .into_iter()
        .filter(|p| p.payload_type == 0)
        .collect();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "holder" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    let hold = path
        .iter()
        .position(|p| p == "hold")
        .unwrap_or_else(|| panic!("{path:?}"));
    assert!(path[hold..].contains(&"resume".to_string()), "{path:?}");
    // The longest silence in what the caller received is the hold (2.5 s).
    let (gap, after) = packets
        .windows(2)
        .map(|w| (w[1].at - w[0].at, &w[1]))
        .max_by_key(|(gap, _)| *gap)
        .unwrap();
    assert!(
        gap >= Duration::from_millis(2000),
        "no hold silence: longest gap {gap:?}; {call:#}\n{}",
        node.logs()
    );
    assert!(
        after.marker,
        "the first packet after resuming starts a talkspurt"
    );
    let before = packets.iter().filter(|p| p.at < after.at).count();
    assert!(
        before >= 50 && packets.len() - before >= 50,
        "audio before {before}, after {}",
        packets.len() - before
    );
    // The prompt itself resumes, not only the stream (silence would fill it).
    let resumed_at = (after.at - packets[0].at).as_secs_f64();
    let resumed = hookline_tests::audible_windows(
        &hookline_tests::heard_between(&packets, resumed_at, resumed_at + 60.0),
        8000,
    );
    assert!(
        resumed >= 5,
        "after resuming: {resumed} audible 100 ms windows"
    );
}

#[test]
fn retransmitted_invite_is_one_call_and_an_unacknowledged_200_is_resent() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    // Lost ACK, counted exactly: without an ACK the 200 comes again at 0.5 s and 1.5 s.
    let ua = hookline_tests::SipUa::new(node.sip).unwrap();
    ua.invite("no-ack", "100", 9).unwrap();
    let mut oks = 0;
    let deadline = std::time::Instant::now() + Duration::from_millis(1800);
    while std::time::Instant::now() < deadline {
        if ua
            .expect("no-ack", "SIP/2.0 200", Duration::from_millis(300))
            .is_ok()
        {
            oks += 1;
        }
    }
    assert!(oks >= 3, "200 sent {oks} times without an ACK");
    ua.request("ACK", "no-ack", "", 1, "", "").unwrap();
    let sink = RtpSink::bind().unwrap();
    // The same INVITE twice from SIPp is one call.
    sipp(
        &node,
        "uac_retransmissions.xml",
        "100",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    drop(sink.finish());
    let calls: Vec<_> = node
        .calls()
        .unwrap()
        .into_iter()
        .filter(|c| c["caller"] == "retrans")
        .collect();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "retrans" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(call["hangup_cause"], "caller-bye");
}

/// The language menu first: the caller presses 2 (Russian) and every prompt
/// after it is the Russian rendering.
#[test]
fn caller_picks_russian_and_hears_the_russian_prompts() {
    let routes = r#"[[routes]]
number = "lang"
plugin = "ivr"
config = { languages = [{ digit = "1", language = "en", label = "For English, press 1." }, { digit = "2", language = "ru", label = "Для русского языка нажмите 2." }], greeting = ["welcome"], fallback = { name = "end", prompts = ["support"] } }
"#;
    let node = TestNode::with_routes(routes).unwrap();
    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_ivr_dtmf.xml",
        "lang",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    let packets = sink.finish();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["callee"] == "lang" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    let at = |s: &str| path.iter().position(|p| p == s);
    assert!(
        at("digits:2") < at("language:ru") && at("digits:2").is_some(),
        "{path:?}"
    );
    assert!(at("language:ru") < at("prompt:welcome"), "{path:?}");
    assert_eq!(
        path.last().map(String::as_str),
        Some("prompt:support"),
        "{path:?}"
    );
    // The last thing heard is the Russian support prompt, not the English one.
    let heard_ms = talkspurts(&packets, 8)
        .last()
        .map(|s| s.len() as u64 * 20)
        .unwrap_or(0);
    let ru = wav_duration_ms(&node.prompt_wav_in("ru", "support")).unwrap();
    let en = wav_duration_ms(&node.prompt_wav_in("en", "support")).unwrap();
    assert!(
        ru.abs_diff(en) > 300,
        "renderings too alike to tell apart: ru {ru} ms, en {en} ms"
    );
    assert!(
        heard_ms.abs_diff(ru) <= 60,
        "heard {heard_ms} ms; ru prompt {ru} ms, en {en} ms"
    );
}
