//! The load generator and benchmark path work end to end (a small load against a
//! release node): every call is set up, holds media both ways, and is torn down.
//! Outcomes only; no timing is asserted.

use std::time::Duration;

use hookline_benches::loadgen::{self, LoadConfig, Phase};
use hookline_tests::{NodeSpec, TestNode};

#[test]
fn twenty_ivr_calls_hold_media_and_tear_down() {
    let node = TestNode::start(NodeSpec {
        profile: "release",
        ..NodeSpec::default()
    })
    .unwrap();
    let mut phases = Vec::new();
    let report = loadgen::run(
        &LoadConfig {
            node: node.sip,
            service: "100".into(),
            calls: 20,
            hold: Duration::from_secs(2),
            cps: 50,
            answer_calls: false,
            sip_port: 0,
            opus_agents: None,
            group_size: 0,
        },
        |p| phases.push(p),
    )
    .unwrap();
    assert_eq!(phases, vec![Phase::HoldStart, Phase::HoldEnd]);
    assert_eq!(report.attempted, 20);
    assert_eq!(report.answered, 20, "{report:?}\n{}", node.logs());
    assert_eq!(report.completed, 20, "{report:?}");
    // The greeting plays to every caller: ~100 packets each in 2 s.
    assert!(report.rtp_received > 20 * 50, "{report:?}");
    assert!(report.rtp_sent > 20 * 50, "{report:?}");
    // And the node wrote a record for each.
    let calls = node
        .wait_for_call(Duration::from_secs(10), |_| true)
        .map(|_| node.calls().unwrap())
        .unwrap();
    assert!(calls.iter().filter(|c| c["caller"] == "load").count() >= 20);
}
