//! An answered call's media never stops: while a plugin records a long
//! voicemail or waits 30 s for keys, the caller keeps receiving a packet
//! every 20 ms (encoded silence when there is nothing to say), so a
//! carrier's RTP inactivity timer or a NAT binding does not drop the call.
//! The caller is a plain SIP UA with an RTP sink that sends nothing.

use std::time::Duration;

use hookline_tests::{NodeSpec, Received, RtpSink, SipUa, TestNode};

const ROUTES: &str = r#"
[[routes]]
number = "long-message"
plugin = "voicemail"
config = { greeting_text = "Leave a message.", max_ms = 10000, silence_ms = 60000 }

[[routes]]
number = "slow-keys"
plugin = "ivr"
config = { menu = ["main_menu"], attempts = 1, timeout_ms = 30000, options = [{ digit = "1", name = "sales", prompts = ["sales"] }], fallback = { name = "operator", prompts = ["operator"] } }
"#;

/// Calls `number`, waits for the node to end the call, and returns what
/// the caller received.
fn listen_to(node: &TestNode, number: &str) -> Vec<Received> {
    let ua = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    let id = format!("flow-{number}");
    ua.call(&id, number, sink.port).unwrap();
    node.wait_for_call(Duration::from_secs(60), |c| {
        c["id"] == id.as_str() && c["hangup_cause"].is_string()
    })
    .unwrap();
    sink.finish()
}

/// The longest silence on the wire, and packets per second, from the first
/// packet to the last.
fn flow(packets: &[Received]) -> (Duration, f64) {
    let gap = packets
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or(Duration::MAX);
    let span = packets.last().unwrap().at - packets[0].at;
    (gap, packets.len() as f64 / span.as_secs_f64())
}

fn assert_flowing(what: &str, packets: &[Received], at_least: Duration) {
    assert!(packets.len() > 10, "{what}: {} packets", packets.len());
    let span = packets.last().unwrap().at - packets[0].at;
    assert!(span >= at_least, "{what}: the call lasted {span:?}");
    let (gap, rate) = flow(packets);
    assert!(
        gap <= Duration::from_millis(200),
        "{what}: the caller heard nothing for {gap:?}"
    );
    assert!(rate >= 45.0, "{what}: {rate:.1} packets a second");
    let seqs_in_order = packets
        .windows(2)
        .all(|w| w[1].sequence == w[0].sequence.wrapping_add(1));
    assert!(seqs_in_order, "{what}: sequence numbers jump");
}

fn node() -> TestNode {
    TestNode::start(NodeSpec {
        extra_routes: ROUTES,
        ..NodeSpec::default()
    })
    .unwrap()
}

#[test]
fn a_long_voicemail_recording_keeps_the_callers_rtp_flowing() {
    let node = node();
    let packets = listen_to(&node, "long-message");
    assert_flowing("voicemail", &packets, Duration::from_secs(10));
}

#[test]
fn a_30_s_silent_collect_keeps_the_callers_rtp_flowing() {
    let node = node();
    let packets = listen_to(&node, "slow-keys");
    assert_flowing("collect", &packets, Duration::from_secs(30));
}
