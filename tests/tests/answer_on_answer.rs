//! A caller dialled through to an agent is answered only when the agent
//! answers: until then it hears ringing as early media (183), a caller who
//! gives up gets 487 and the agent's phone stops, and an unanswered call is
//! never recorded as answered (a carrier in front would bill it).

use std::time::Duration;

use hookline_tests::{
    agent_dial_routes, at, wait_until, Baresip, NodeSpec, RtpSink, SipUa, TestNode,
};

fn node() -> TestNode {
    TestNode::start(NodeSpec {
        extra_routes: &agent_dial_routes(&[("201", "one", "to-201"), ("202", "two", "to-202")]),
        ..NodeSpec::default()
    })
    .unwrap()
}

#[test]
fn a_caller_who_gives_up_while_the_agent_rings_gets_487_and_is_never_answered() {
    let node = node();
    let agent = node.agent_not_answering("202", "two").unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    ua.invite("give-up", "to-202", sink.port).unwrap();
    // Ringing, not answered: 183 with SDP, and the ringback as early media.
    ua.expect("give-up", "SIP/2.0 183", Duration::from_secs(10))
        .unwrap();
    agent
        .wait_event("CALL_INCOMING", Duration::from_secs(10))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2)); // the caller listens to it ring
    ua.cancel("give-up", "to-202").unwrap();
    let final_response = ua
        .expect("give-up", "SIP/2.0 487", Duration::from_secs(5))
        .unwrap();
    ua.ack_error("give-up", "to-202", &final_response).unwrap();
    let heard = sink.finish();
    // Packets alone prove nothing (an answered or early leg sends silence):
    // the ringing tone itself.
    let ringing =
        hookline_tests::ringback_windows(&hookline_tests::heard_between(&heard, 0.0, 60.0));
    assert!(
        ringing >= 5,
        "the caller heard no ringing while it waited: {ringing} windows of ringback in {} packets",
        heard.len()
    );
    // The agent's phone stopped ringing.
    agent
        .wait_event("CALL_CLOSED", Duration::from_secs(10))
        .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == "give-up" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert!(call["answered_at"].is_null(), "answered: {call:#}");
    assert_eq!(call["hangup_cause"], "caller-cancel", "{call:#}");
    let legs = node.ended_legs_of(&call);
    assert_eq!(legs.len(), 1, "{legs:#?}");
    assert!(legs[0]["answered_at"].is_null(), "{:#}", legs[0]);
    assert!(
        wait_until(Duration::from_secs(10), || node
            .metric("hookline_media_legs")
            .unwrap()
            == 0.0),
        "media legs left"
    );
}

#[test]
fn the_caller_is_answered_when_the_agent_answers_not_before() {
    let node = node();
    let _agent = node.agent("201", "one", &vec![0; 8000 * 30]).unwrap();
    let caller =
        Baresip::start_with_mic(&format!("sip:to-201@{}", node.sip), &vec![0; 8000 * 4]).unwrap();
    let id = caller.answered_call_id(Duration::from_secs(20));
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["id"] == id.as_str() && c["hangup_cause"].is_string()
        })
        .unwrap();
    let legs = node.ended_legs_of(&call);
    assert_eq!(legs.len(), 1, "{legs:#?}");
    // The caller's answer follows the agent's (same millisecond at best).
    assert!(
        at(&call, "answered_at") >= at(&legs[0], "answered_at"),
        "the caller was answered before the agent: {call:#}\n{:#}",
        legs[0]
    );
    assert!(
        hookline_tests::steps(&call).contains(&"answered:201"),
        "{call:#}"
    );
    // The operator's view: one line when the call started and one when it
    // ended, with who, the route and why.
    let logs = node.logs();
    let lines = |what: &str| -> Vec<String> {
        logs.lines()
            .filter(|l| l.contains(what) && l.contains(id.as_str()))
            .map(String::from)
            .collect()
    };
    let started = lines("call started");
    assert_eq!(started.len(), 1, "{logs}");
    assert!(
        started[0].contains("callee=to-201") && started[0].contains("route=to-201"),
        "{}",
        started[0]
    );
    let ended = lines("call ended");
    assert_eq!(ended.len(), 1, "{logs}");
    assert!(
        ended[0].contains(&format!("cause={}", call["hangup_cause"].as_str().unwrap()))
            && ended[0].contains("duration_ms="),
        "{}",
        ended[0]
    );
}
