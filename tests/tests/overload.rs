//! Capacity and overload: beyond the call limit new calls get 503 with
//! Retry-After while the call in progress keeps its audio; SIGTERM drains.

use std::process::Command;
use std::time::Duration;

use hookline_tests::{NodeSpec, RtpSink, SipUa, TestNode};

#[test]
fn beyond_the_call_limit_503_with_retry_after_and_the_running_call_keeps_audio() {
    let node = TestNode::start(NodeSpec {
        node_section: Some("max_calls = 1"),
        ..NodeSpec::default()
    })
    .unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    let tag = ua.call("first", "100", sink.port).unwrap();
    ua.invite("second", "100", 9).unwrap();
    let refused = ua
        .expect("second", "SIP/2.0 503", Duration::from_secs(5))
        .unwrap();
    assert!(refused.contains("\r\nRetry-After: "), "{refused}");
    ua.request(
        "ACK",
        "second",
        &hookline_tests::to_tag(&refused),
        1,
        "",
        "",
    )
    .unwrap();
    // The first call still gets its greeting, uninterrupted.
    std::thread::sleep(Duration::from_millis(1500));
    ua.request("BYE", "first", &tag, 2, "", "").unwrap();
    ua.expect("first", "SIP/2.0 200", Duration::from_secs(5))
        .unwrap();
    let packets = sink.finish();
    assert!(
        packets.len() >= 60,
        "running call got only {} packets",
        packets.len()
    );
    // The greeting itself, not only the stream (silence keeps it going too).
    let greeting =
        hookline_tests::audible_windows(&hookline_tests::heard_between(&packets, 0.0, 60.0), 8000);
    assert!(
        greeting >= 8,
        "the running call's greeting: {greeting} audible 100 ms windows"
    );
    for w in packets.windows(2) {
        assert_eq!(
            w[1].sequence,
            w[0].sequence.wrapping_add(1),
            "gap in the running call's audio"
        );
    }
    // Capacity is back once the call ended (the node counts it down as the call's task ends).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !hookline_tests::http_get(node.http, "/metrics", None)
        .unwrap()
        .1
        .contains("hookline_active_calls 0\n")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended call still holds capacity"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sink = RtpSink::bind().unwrap();
    let tag = ua.call("third", "100", sink.port).unwrap();
    ua.request("BYE", "third", &tag, 2, "", "").unwrap();
    ua.expect("third", "SIP/2.0 200", Duration::from_secs(5))
        .unwrap();
    let calls = node.calls().unwrap();
    assert!(
        calls.iter().all(|c| c["id"] != "second"),
        "refused calls leave no record"
    );
}

#[test]
fn cps_limit_refuses_the_excess_with_503() {
    let node = TestNode::start(NodeSpec {
        node_section: Some("max_calls = 100\nmax_cps = 2"),
        ..NodeSpec::default()
    })
    .unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    for i in 0..5 {
        ua.invite(&format!("burst{i}"), "100", 9).unwrap();
    }
    let mut ok = 0;
    let mut refused = 0;
    for i in 0..5 {
        let id = format!("burst{i}");
        let r = ua.expect(&id, "SIP/2.0 ", Duration::from_secs(5));
        // Skip provisional responses.
        let mut r = r.unwrap();
        while r.starts_with("SIP/2.0 1") {
            r = ua.expect(&id, "SIP/2.0 ", Duration::from_secs(5)).unwrap();
        }
        if r.starts_with("SIP/2.0 200") {
            ok += 1;
        } else if r.starts_with("SIP/2.0 503") && r.contains("Retry-After: 1\r\n") {
            refused += 1;
        }
    }
    assert_eq!((ok, refused), (2, 3));
}

#[test]
fn sigterm_drains_new_calls_refused_running_call_finishes_then_exit() {
    let mut node = TestNode::start(NodeSpec::default()).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    let tag = ua.call("running", "100", sink.port).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    ua.invite("late", "100", 9).unwrap();
    let r = ua
        .expect("late", "SIP/2.0 503", Duration::from_secs(5))
        .unwrap();
    assert!(r.contains("Retry-After: 60"), "{r}");
    // Load balancers probing with OPTIONS see the node draining.
    ua.request("OPTIONS", "probe", "", 1, "", "").unwrap();
    ua.expect("probe", "SIP/2.0 503", Duration::from_secs(5))
        .unwrap();
    assert!(node.is_running(), "node must wait for the running call");
    ua.request("BYE", "running", &tag, 2, "", "").unwrap();
    ua.expect("running", "SIP/2.0 200", Duration::from_secs(5))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !node.is_running(),
        "node did not exit after draining:\n{}",
        node.logs()
    );
    assert!(sink.finish().len() > 10);
}
