//! Departments (ring groups) against registered baresip agents: who rang, in
//! what order, and who got the call, read from the legs' call records (each
//! ring is a leg record linked to the caller's by `parent`).
//!
//! Agents 201 and 202 ring but are never picked up; 203 answers at once. For
//! the uniform strategy, 204 and 205 both answer at once.

use std::time::Duration;

use hookline_tests::{answered_by, at, http_get, http_request, steps, Baresip, TestNode};
use serde_json::Value;

const SETUP: &str = r#"[[extensions]]
user = "201"
password = "one"

[[extensions]]
user = "202"
password = "two"

[[extensions]]
user = "203"
password = "three"

[[extensions]]
user = "204"
password = "four"

[[extensions]]
user = "205"
password = "five"

[[groups]]
name = "all"
number = "610"
strategy = "all"
members = ["201", "202", "203"]

[[groups]]
name = "turns"
number = "620"
strategy = "in-turn"
members = ["201", "202", "203"]
step_s = 2

[[groups]]
name = "cascade"
number = "630"
strategy = "cascade"
members = ["201", "202", "203"]
step_s = 2

[[groups]]
name = "nobody"
number = "640"
strategy = "in-turn"
members = ["201", "202"]
step_s = 2

[[groups]]
name = "vip"
number = "660"
strategy = "all"
members = ["201", "202"]
managers = { bs = "203" }
step_s = 3

[[groups]]
name = "even"
number = "650"
strategy = "uniform"
members = ["204", "205"]

[[routes]]
number = "640"
plugin = "ivr"
config = { fallback = { name = "dept", dial = ["nobody"], dial_timeout_ms = 5000, hand_over = "voicemail", hand_over_args = { mailbox = "sales" } } }

[[routes]]
number = "6*"
plugin = "ivr"
config = { fallback = { name = "dept", dial = ["{callee}"], dial_timeout_ms = 20000 } }
"#;

/// 201 and 202 ring without answering, 203 answers.
fn agents(node: &TestNode) -> Vec<Baresip> {
    vec![
        node.agent_not_answering("201", "one").unwrap(),
        node.agent_not_answering("202", "two").unwrap(),
        node.agent("203", "three", &vec![0; 8000 * 60]).unwrap(),
    ]
}

/// Calls `number` for `seconds`; the caller's record and its legs.
fn call(node: &TestNode, number: &str, seconds: usize) -> (Value, Vec<Value>) {
    let record = node.call_and_wait(number, seconds);
    let legs = node.ended_legs_of(&record);
    (record, legs)
}

fn callees(legs: &[Value]) -> Vec<&str> {
    legs.iter()
        .map(|l| l["callee"].as_str().unwrap_or(""))
        .collect()
}

fn leg<'a>(legs: &'a [Value], user: &str) -> &'a Value {
    legs.iter()
        .find(|l| l["callee"] == user)
        .unwrap_or_else(|| panic!("{user} never rang: {legs:#?}"))
}

#[test]
fn each_strategy_rings_agents_in_its_order_and_connects_the_one_who_answers() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let _agents = agents(&node);

    // All at once: everyone rings, 203 answers, the others stop.
    let (record, legs) = call(&node, "610", 6);
    let path = steps(&record);
    assert!(path.contains(&"group:all:all"), "{record:#}");
    assert!(path.contains(&"answered:203"), "{record:#}\n{legs:#?}");
    assert_eq!(legs.len(), 3, "{legs:#?}");
    let answered = at(leg(&legs, "203"), "answered_at");
    for user in ["201", "202"] {
        let l = leg(&legs, user);
        assert!(
            at(l, "started_at") <= answered,
            "{user} rang late: {legs:#?}"
        );
        assert_eq!(l["hangup_cause"], "answered-elsewhere", "{l:#}");
        assert!(l["answered_at"].is_null());
    }

    // In turn: 201, then 202 (201 stops), then 203 who answers.
    let (record, legs) = call(&node, "620", 10);
    assert!(
        steps(&record).contains(&"answered:203"),
        "{record:#}\n{legs:#?}"
    );
    assert_eq!(callees(&legs), ["201", "202", "203"], "{legs:#?}");
    for (user, next) in [("201", "202"), ("202", "203")] {
        let l = leg(&legs, user);
        assert_eq!(l["hangup_cause"], "next-agent", "{l:#}");
        assert!(
            at(l, "ended_at") <= at(leg(&legs, next), "started_at"),
            "{user} still rang when {next} started: {legs:#?}"
        );
    }

    // Cascading: 201, then 202 too, then 203 too; 201 and 202 ring until 203 answers.
    let (record, legs) = call(&node, "630", 10);
    assert!(
        steps(&record).contains(&"answered:203"),
        "{record:#}\n{legs:#?}"
    );
    assert_eq!(callees(&legs), ["201", "202", "203"], "{legs:#?}");
    let third = at(leg(&legs, "203"), "started_at");
    for user in ["201", "202"] {
        let l = leg(&legs, user);
        assert_eq!(l["hangup_cause"], "answered-elsewhere", "{l:#}");
        assert!(
            at(l, "ended_at") >= third,
            "{user} stopped early: {legs:#?}"
        );
    }

    // Nobody answers in time: the no-answer action takes the call to voicemail.
    let (record, legs) = call(&node, "640", 10);
    let path = steps(&record);
    assert!(path.contains(&"dial:no-answer"), "{record:#}");
    assert!(path.contains(&"hand-over:voicemail"), "{record:#}");
    assert_eq!(callees(&legs), ["201", "202"], "{legs:#?}");

    // A key client (caller "bs") reaches their personal manager before the group.
    let (record, legs) = call(&node, "660", 4);
    let path = steps(&record);
    assert!(path.contains(&"manager:203"), "{record:#}");
    assert!(path.contains(&"answered:203"), "{record:#}");
    assert_eq!(callees(&legs), ["203"], "the group rang too: {legs:#?}");

    let (_, metrics) = http_get(node.http, "/metrics", None).unwrap();
    for line in [
        "hookline_group_answered_total{group=\"turns\"} 1",
        "hookline_group_answered_in_20s_total{group=\"cascade\"} 1",
        "hookline_group_missed_total{group=\"nobody\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[test]
fn uniform_rings_the_agent_idle_longest_and_skips_a_busy_one() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let _a = node.agent("204", "four", &vec![0; 8000 * 60]).unwrap();
    let _b = node.agent("205", "five", &vec![0; 8000 * 60]).unwrap();
    let answered = answered_by;
    // Nobody has had a call: list order.
    let (first, _) = call(&node, "650", 3);
    assert_eq!(answered(&first), "204", "{first:#}");
    // 205 has been idle longest (never called): it gets the next, a long call.
    let long =
        Baresip::start_with_mic(&format!("sip:650@{}", node.sip), &vec![0; 8000 * 12]).unwrap();
    node.wait_for_call(Duration::from_secs(20), |c| {
        c["callee"] == "205" && c["answered_at"].is_string()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    // 205 is busy now: though idle longest, it is skipped; 204 gets this one.
    let (third, legs) = call(&node, "650", 3);
    assert_eq!(answered(&third), "204", "{third:#}\n{legs:#?}");
    assert_eq!(callees(&legs), ["204"], "a busy agent rang: {legs:#?}");
    // In the order the calls came: 204, 205 (the long one), 204.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let order = loop {
        let mut calls: Vec<Value> = node
            .calls()
            .unwrap()
            .into_iter()
            .filter(|c| c["callee"] == "650" && c["parent"].is_null())
            .collect();
        if calls.iter().all(|c| c["hangup_cause"].is_string()) && calls.len() == 3 {
            calls.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
            break calls.iter().map(answered).collect::<Vec<_>>();
        }
        assert!(std::time::Instant::now() < deadline, "{calls:#?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(order, ["204", "205", "204"]);
    drop(long);

    // 204 is idle longest now, but in do-not-disturb: 205 gets the call.
    let (status, _) = http_request(
        node.http,
        "PUT",
        "/api/agents/204/dnd",
        node.token.as_deref(),
        b"on",
    )
    .unwrap();
    assert_eq!(status, 204);
    let (fourth, legs) = call(&node, "650", 3);
    assert_eq!(answered(&fourth), "205", "{fourth:#}\n{legs:#?}");
    assert_eq!(callees(&legs), ["205"], "{legs:#?}");
    let (_, metrics) = http_get(node.http, "/metrics", None).unwrap();
    assert!(
        metrics.contains("hookline_group_answered_total{group=\"even\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("hookline_agents_dnd 1"), "{metrics}");
}
