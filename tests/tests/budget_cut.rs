//! A plugin cut by its wall-clock budget (`max_call_s`) in the middle of a
//! dial gives back everything the dial held: the agent's phone stops
//! ringing or is hung up, every record ends, the agent is free, and the
//! node's media legs and calls are back to zero. Cut while waiting in a
//! queue, the caller's place is given back. Real phones (baresip).

use std::time::Duration;

use hookline_tests::{agent_dial_routes, wait_until, Baresip, NodeSpec, TestNode};
use serde_json::Value;

/// A queue whose only agent (203) never registers: callers wait.
const QUEUE: &str = r#"
[[extensions]]
user = "203"
password = "three"

[[groups]]
name = "nobody-home"
strategy = "all"
members = ["203"]

[[queues]]
name = "waiting-room"
group = "nobody-home"

[[routes]]
number = "cut-queue"
plugin = "ivr"
config = { fallback = { name = "queue", dial = ["waiting-room"], dial_timeout_ms = 60000 } }
"#;

fn node() -> TestNode {
    TestNode::start(NodeSpec {
        extra_routes: &(agent_dial_routes(&[
            ("201", "one", "cut-bridge"),
            ("202", "two", "cut-ring"),
        ]) + QUEUE),
        node_section: Some("max_call_s = 4"),
        ..NodeSpec::default()
    })
    .unwrap()
}

/// The node holds nothing for calls any more: no call, no media leg.
fn all_given_back(node: &TestNode) {
    let idle = || {
        node.metric("hookline_active_calls").unwrap() == 0.0
            && node.metric("hookline_media_legs").unwrap() == 0.0
    };
    assert!(
        wait_until(Duration::from_secs(10), idle),
        "calls {} legs {}\n{}",
        node.metric("hookline_active_calls").unwrap(),
        node.metric("hookline_media_legs").unwrap(),
        node.logs()
    );
}

/// Agent `user` is not held busy by anything.
fn agent_free(node: &TestNode, user: &str) {
    let (_, body) = hookline_tests::http_get(node.http, "/api/agents", None).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let a = v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["user"] == user))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        a["calls"].as_u64().unwrap_or(0),
        0,
        "{user} still busy: {v:#}"
    );
}

/// Call `id` was ended by the plugin's budget; the agent's phone was hung
/// up (BYE or CANCEL); the call's one leg record ended. Returns the leg.
fn cut_by_the_budget(node: &TestNode, id: &str, agent: &Baresip) -> (Value, Value) {
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["id"] == id && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(call["hangup_cause"], "plugin-trap", "{call:#}");
    // The record says why: the budget, not just "a trap".
    assert!(
        hookline_tests::path_of(&call)
            .iter()
            .any(|s| s.starts_with("plugin-trap:wall-clock budget")),
        "{call:#}"
    );
    agent
        .wait_event("CALL_CLOSED", Duration::from_secs(10))
        .unwrap();
    let mut legs = node.ended_legs_of(&call);
    assert_eq!(legs.len(), 1, "{legs:#?}");
    let leg = legs.remove(0);
    (call, leg)
}

#[test]
fn cut_mid_bridge_hangs_up_the_agent_and_gives_everything_back() {
    let node = node();
    let agent = node.agent("201", "one", &vec![0; 8000 * 60]).unwrap();
    let caller =
        Baresip::start_with_mic(&format!("sip:cut-bridge@{}", node.sip), &vec![0; 8000 * 30])
            .unwrap();
    // Bridged: the agent answered.
    agent.answered_call_id(Duration::from_secs(20));
    let id = caller.answered_call_id(Duration::from_secs(5));
    // The budget (4 s from the start of the call) cuts the plugin mid-bridge.
    let (_, leg) = cut_by_the_budget(&node, &id, &agent);
    assert!(leg["answered_at"].is_string(), "{leg:#}");
    all_given_back(&node);
    agent_free(&node, "201");
}

#[test]
fn cut_mid_ring_stops_the_ringing_and_gives_everything_back() {
    let node = node();
    let agent = node.agent_not_answering("202", "two").unwrap();
    let caller =
        Baresip::start_with_mic(&format!("sip:cut-ring@{}", node.sip), &vec![0; 8000 * 30])
            .unwrap();
    agent
        .wait_event("CALL_INCOMING", Duration::from_secs(20))
        .unwrap();
    // Ringing: the caller is not answered (answer on answer).
    let id = caller.call_id(Duration::from_secs(5));
    // The phone stopped ringing (CANCEL), and the leg's record says why.
    let (call, leg) = cut_by_the_budget(&node, &id, &agent);
    assert!(call["answered_at"].is_null(), "{call:#}");
    assert!(leg["answered_at"].is_null(), "{leg:#}");
    assert_eq!(leg["hangup_cause"], "dial-cut", "{leg:#}");
    all_given_back(&node);
    agent_free(&node, "202");
}

#[test]
fn cut_mid_queue_gives_the_place_back() {
    let node = node();
    let waiting = || node.metric("hookline_queue_waiting").unwrap_or(0.0);
    let caller =
        Baresip::start_with_mic(&format!("sip:cut-queue@{}", node.sip), &vec![0; 8000 * 30])
            .unwrap();
    let id = caller.answered_call_id(Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(5), || waiting() == 1.0),
        "the caller never queued: {}",
        node.logs()
    );
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["id"] == id.as_str() && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(call["hangup_cause"], "plugin-trap", "{call:#}");
    // Nobody waits in the queue any more, and the wait counts as abandoned.
    assert!(
        wait_until(Duration::from_secs(5), || waiting() == 0.0),
        "the cut caller's place is still in the queue"
    );
    assert_eq!(node.metric("hookline_queue_abandoned_total").unwrap(), 1.0);
    all_given_back(&node);
}
