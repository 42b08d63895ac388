//! Calls to numbers go out through trunks in order: the first carrier answers
//! 503, so the call fails over to the reserve carrier, which challenges for
//! digest credentials, answers, and is bridged to the caller. Both carriers
//! are SIPp UAS processes.

use std::time::Duration;

use hookline_tests::{
    free_udp_port, sipp, sipp_uas, speech_and_ringback, steps, RtpSink, TestNode,
};

#[test]
fn failing_trunk_fails_over_to_the_reserve_with_digest_auth() {
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let setup = format!(
        r#"[[trunks]]
name = "carrier-a"
address = "127.0.0.1:{port_a}"

[[trunks]]
name = "carrier-b"
address = "127.0.0.1:{port_b}"
username = "acct"
password = "pw"
caller_id = "380441234567"

[[routes]]
number = "sales"
plugin = "ivr"
config = {{ menu = ["main_menu"], attempts = 2, timeout_ms = 3000, options = [{{ digit = "1", name = "sales", dial = ["tel:5551234"], dial_timeout_ms = 15000 }}], fallback = {{ name = "operator", prompts = ["operator"] }} }}
"#
    );
    let node = TestNode::with_routes(&setup).unwrap();
    let carrier_a = sipp_uas("uas_503.xml", port_a).unwrap();
    let carrier_b = sipp_uas("uas_auth_answer.xml", port_b).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sink = RtpSink::bind().unwrap();
    if let Err(e) = sipp(
        &node,
        "uac_bridge.xml",
        "sales",
        &[("rtp_sink", sink.port.to_string())],
    ) {
        std::thread::sleep(Duration::from_secs(1));
        panic!("{e}\ncalls: {:#?}", node.calls().unwrap());
    }
    let packets = sink.finish();
    if let Err(e) = carrier_a.finish(Duration::from_secs(10)) {
        panic!("carrier A did not see its INVITE/503/ACK: {e}");
    }
    if let Err(e) = carrier_b.finish(Duration::from_secs(10)) {
        panic!("carrier B did not authenticate, answer and get BYE: {e}");
    }

    let caller = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "bridged" && c["parent"].is_null() && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = steps(&caller);
    let a = path
        .iter()
        .position(|p| *p == "trunk:carrier-a")
        .unwrap_or_else(|| panic!("{path:?}"));
    let b = path
        .iter()
        .position(|p| *p == "trunk:carrier-b")
        .unwrap_or_else(|| panic!("{path:?}"));
    assert!(a < b, "{path:?}");
    let calls = node.calls().unwrap();
    let legs: Vec<_> = calls
        .iter()
        .filter(|c| c["parent"] == caller["id"])
        .collect();
    assert!(
        legs.iter().any(|l| l["hangup_cause"] == "sip-503"),
        "{legs:#?}"
    );
    let answered = legs
        .iter()
        .find(|l| l["answered_at"].is_string())
        .unwrap_or_else(|| panic!("{legs:#?}"));
    assert_eq!(answered["callee"], "5551234");
    assert_eq!(answered["caller"], "380441234567", "the trunk's caller ID");
    assert_eq!(answered["hangup_cause"], "caller-bye");

    // The caller heard the reserve carrier's side (its speech from ~1.5 s
    // after the key until ~9 s): speech, not silence or ringback.
    let (speech, ringback) = speech_and_ringback(&packets, 3.0, 8.0);
    eprintln!("failover: {speech} speech and {ringback} ringback windows of 50");
    assert!(
        speech >= 30,
        "the caller heard the carrier in {speech} of 50 windows"
    );
    assert_eq!(ringback, 0, "ringback after the answer");
}

#[test]
fn redirect_is_followed_and_early_media_replaces_ringback() {
    let (forwarder, callee) = (free_udp_port(), free_udp_port());
    let setup = format!(
        r#"[[routes]]
number = "sales"
plugin = "ivr"
config = {{ menu = ["main_menu"], attempts = 2, timeout_ms = 3000, options = [{{ digit = "1", name = "sales", dial = ["sip:forwarder@127.0.0.1:{forwarder}"], dial_timeout_ms = 15000 }}], fallback = {{ name = "operator", prompts = ["operator"] }} }}
"#
    );
    let node = TestNode::with_routes(&setup).unwrap();
    let forward = hookline_tests::sipp_uas_with(
        "uas_redirect.xml",
        forwarder,
        &[("forward_to", format!("sip:mobile@127.0.0.1:{callee}"))],
    )
    .unwrap();
    let answer = sipp_uas("uas_early_media.xml", callee).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_bridge.xml",
        "sales",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    let packets = sink.finish();
    if let Err(e) = forward.finish(Duration::from_secs(10)) {
        panic!("the forwarder's 302 was not acknowledged: {e}");
    }
    if let Err(e) = answer.finish(Duration::from_secs(10)) {
        panic!("the callee did not get its call, ACK and BYE: {e}");
    }
    let caller = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "bridged" && c["parent"].is_null() && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = steps(&caller);
    assert!(path.contains(&"redirect:mobile"), "{path:?}");
    assert!(path.contains(&"early-media"), "{path:?}");
    let calls = node.calls().unwrap();
    let legs: Vec<_> = calls
        .iter()
        .filter(|c| c["parent"] == caller["id"])
        .collect();
    assert!(
        legs.iter().any(|l| l["hangup_cause"] == "redirected"),
        "{legs:#?}"
    );
    assert!(
        legs.iter()
            .any(|l| l["callee"] == "mobile" && l["answered_at"].is_string()),
        "{legs:#?}"
    );

    // Between the key (~1 s) and the callee's answer (3 s after its 183),
    // the caller heard the callee's announcement, not ringback or silence.
    let (speech, ringback) = speech_and_ringback(&packets, 1.6, 4.0);
    eprintln!("early media: {speech} speech and {ringback} ringback windows of 24");
    assert!(
        speech >= 15,
        "the early media was heard in {speech} of 24 windows"
    );
    assert!(
        ringback <= 1,
        "ringback over early media: {ringback} windows"
    );
}
