//! A ring group asks who is free at every turn, not once at the start: an
//! agent who took a direct call while the group rang is passed over at
//! their turn (their phone does not get a second INVITE), an agent whose
//! turn ended unanswered is free for other calls at once, and an unanswered
//! ring does not count as a call (their idle time, by which `uniform`
//! picks, is unchanged). Real baresip phones.

use std::time::Duration;

use hookline_tests::{agent_dial_routes, steps, wait_until, Baresip, NodeSpec, TestNode};
use serde_json::Value;

/// 201 and 204 ring unanswered, 202 and 203 answer; `turns` rings them in
/// turn, 4 s each; `to-202` rings 202 directly.
fn node() -> TestNode {
    let routes = agent_dial_routes(&[
        ("201", "one", "to-201"),
        ("202", "two", "to-202"),
        ("203", "three", "to-203"),
        ("204", "four", "to-204"),
    ]) + r#"
[[groups]]
name = "turns"
number = "620"
strategy = "in-turn"
members = ["201", "202", "204", "203"]
step_s = 4

[[routes]]
number = "620"
plugin = "ivr"
config = { fallback = { name = "dept", dial = ["turns"], dial_timeout_ms = 30000 } }
"#;
    TestNode::start(NodeSpec {
        extra_routes: &routes,
        ..NodeSpec::default()
    })
    .unwrap()
}

fn agent(node: &TestNode, user: &str) -> Value {
    let (_, body) =
        hookline_tests::http_get(node.http, "/api/agents", node.token.as_deref()).unwrap();
    let all: Value = serde_json::from_str(&body).unwrap();
    all["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["user"] == user).cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn an_agent_busy_on_a_direct_call_is_passed_over_at_their_turn() {
    let node = node();
    let _a201 = node.agent_not_answering("201", "one").unwrap();
    let a202 = node.agent("202", "two", &vec![0; 8000 * 30]).unwrap();
    let _a203 = node.agent("203", "three", &vec![0; 8000 * 30]).unwrap();
    let _a204 = node.agent_not_answering("204", "four").unwrap();

    // The department call: 201's turn first.
    let customer =
        Baresip::start_with_mic(&format!("sip:620@{}", node.sip), &vec![0; 8000 * 16]).unwrap();
    let first = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["callee"] == "201" && c["parent"].is_string()
        })
        .unwrap();
    // While 201 rings, 202 takes a direct call.
    let direct =
        Baresip::start_with_mic(&format!("sip:to-202@{}", node.sip), &vec![0; 8000 * 14]).unwrap();
    let direct_id = direct.answered_call_id(Duration::from_secs(10));
    // 201's turn is over: they are free for other calls at once, and the
    // unanswered ring is not a call (idle time unchanged).
    assert!(
        wait_until(Duration::from_secs(10), || node
            .calls()
            .unwrap()
            .iter()
            .any(|c| c["callee"] == "204" && c["parent"] == first["parent"])),
        "204's turn never came"
    );
    let a201 = agent(&node, "201");
    assert_eq!(a201["calls"], 0, "201 held after their turn: {a201:#}");
    assert_eq!(
        a201["idle_since_ms"], 0,
        "a ring counted as a call: {a201:#}"
    );

    let record = node
        .wait_for_call(Duration::from_secs(40), |c| {
            c["id"] == first["parent"] && c["hangup_cause"].is_string()
        })
        .unwrap();
    let legs = node.ended_legs_of(&record);
    let callees: Vec<&str> = legs.iter().filter_map(|l| l["callee"].as_str()).collect();
    assert_eq!(callees, ["201", "204", "203"], "{legs:#?}");
    let path = steps(&record);
    assert!(path.contains(&"skipped:202"), "{record:#}");
    assert!(path.contains(&"answered:203"), "{record:#}");
    // 202's phone rang once: the direct call.
    let rang_202: Vec<Value> = node
        .calls()
        .unwrap()
        .into_iter()
        .filter(|c| c["callee"] == "202" && c["parent"].is_string())
        .collect();
    assert_eq!(rang_202.len(), 1, "{rang_202:#?}");
    let incoming = a202
        .events()
        .iter()
        .filter(|e| e["type"] == "CALL_INCOMING")
        .count();
    assert!(incoming <= 1, "202's phone got {incoming} calls");
    let direct_record = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["id"] == direct_id.as_str() && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert!(
        direct_record["answered_at"].is_string(),
        "{direct_record:#}"
    );
    drop(customer);
}
