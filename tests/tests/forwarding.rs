//! Forwarding rules per extension against registered baresip phones: when
//! unreachable, unanswered, busy, unconditionally, and the reserve number as
//! the last step. The caller's record names each step (`forward:<why>:<to>`)
//! and who answered.

use std::time::Duration;

use hookline_tests::{answered_by, steps, Baresip, TestNode};

const SETUP: &str = r#"[[extensions]]
user = "202"
password = "two"

[[extensions]]
user = "203"
password = "three"

[[extensions]]
user = "501"
password = "x"
forward = { unreachable = "202" }

[[extensions]]
user = "502"
password = "nobody-home"
forward = { no_answer = "203", no_answer_s = 2 }

[[extensions]]
user = "503"
password = "busy-bee"
forward = { busy = "203" }

[[extensions]]
user = "504"
password = "x"
forward = { always = "202" }

[[extensions]]
user = "505"
password = "x"
forward = { unreachable = "506", reserve = "202" }

[[routes]]
number = "5*"
plugin = "ivr"
config = { fallback = { name = "extension", dial = ["{callee}"], dial_timeout_ms = 15000 } }
"#;

#[test]
fn every_rule_forwards_and_the_reserve_catches_the_rest() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let _two = node.agent("202", "two", &vec![0; 8000 * 90]).unwrap();
    let _three = node.agent("203", "three", &vec![0; 8000 * 90]).unwrap();
    let _nobody = node.agent_not_answering("502", "nobody-home").unwrap();
    let busy_bee = node.agent("503", "busy-bee", &vec![0; 8000 * 90]).unwrap();

    // Not registered: forwarded at once.
    let r = node.call_and_wait("501", 3);
    assert!(steps(&r).contains(&"forward:unreachable:202"), "{r:#}");
    assert_eq!(answered_by(&r), "202", "{r:#}");

    // Rings 2 s unanswered, then forwarded.
    let r = node.call_and_wait("502", 6);
    let path = steps(&r);
    assert!(path.contains(&"forward:no-answer:203"), "{r:#}");
    assert_eq!(answered_by(&r), "203", "{r:#}");
    let legs = node.legs_of(&r);
    assert!(
        legs.iter()
            .any(|l| l["callee"] == "502" && l["answered_at"].is_null()),
        "502 did not ring first: {legs:#?}"
    );

    // Unconditional.
    let r = node.call_and_wait("504", 3);
    assert!(steps(&r).contains(&"forward:always:202"), "{r:#}");
    assert_eq!(answered_by(&r), "202");

    // The forward target is unreachable too: the reserve takes the call.
    let r = node.call_and_wait("505", 3);
    let path = steps(&r);
    assert!(path.contains(&"forward:unreachable:506"), "{r:#}");
    assert!(path.contains(&"forward:reserve:202"), "{r:#}");
    assert_eq!(answered_by(&r), "202");

    // Busy: 503 is in a call, so the next caller goes to 203.
    let long =
        Baresip::start_with_mic(&format!("sip:503@{}", node.sip), &vec![0; 8000 * 10]).unwrap();
    node.wait_for_call(Duration::from_secs(20), |c| {
        c["callee"] == "503" && c["parent"].is_string() && c["answered_at"].is_string()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", busy_bee.log()));
    let r = node.call_and_wait("503", 3);
    assert!(steps(&r).contains(&"forward:busy:203"), "{r:#}");
    assert_eq!(answered_by(&r), "203");
    drop(long);
}
