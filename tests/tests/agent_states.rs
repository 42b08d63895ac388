//! Agent states against registered baresip agents: after a department's
//! call an agent wraps up (the next call goes to a colleague), a paused
//! agent gets no department calls, and both come back.

use hookline_tests::{answered_by, http_get, http_request, steps, TestNode};
use serde_json::Value;

const SETUP: &str = r#"[[extensions]]
user = "204"
password = "four"

[[extensions]]
user = "205"
password = "five"

[[groups]]
name = "desk"
number = "670"
strategy = "in-turn"
members = ["204", "205"]
step_s = 3
wrap_up_s = 60

[[routes]]
number = "670"
plugin = "ivr"
config = { fallback = { name = "desk", dial = ["desk"], dial_timeout_ms = 8000, unanswered = ["operator"] } }
"#;

fn pause(node: &TestNode, user: &str, on: bool) {
    let body: &[u8] = if on { b"on" } else { b"off" };
    let path = format!("/api/agents/{user}/pause");
    let (status, _) = http_request(node.http, "PUT", &path, None, body).unwrap();
    assert_eq!(status, 204);
}

fn agent(node: &TestNode, user: &str) -> Value {
    let (_, body) = http_get(node.http, "/api/agents", None).unwrap();
    let all: Value = serde_json::from_str(&body).unwrap();
    all["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["user"] == user).cloned())
        .unwrap_or_else(|| panic!("{user} not in {all}"))
}

#[test]
fn wrapping_up_and_paused_agents_get_no_department_calls() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let _a = node.agent("204", "four", &vec![0; 8000 * 60]).unwrap();
    let _b = node.agent("205", "five", &vec![0; 8000 * 60]).unwrap();

    // In turn: 204 first.
    let first = node.call_and_wait("670", 4);
    assert_eq!(answered_by(&first), "204", "{first:#}");
    // 204 is wrapping up now: the next call goes to 205 alone.
    let wrap = agent(&node, "204");
    assert!(wrap["wrap_up_until_ms"].as_i64().unwrap_or(0) > 0, "{wrap}");
    let (_, metrics) = http_get(node.http, "/metrics", None).unwrap();
    assert!(metrics.contains("hookline_agents_wrap_up 1"), "{metrics}");
    let second = node.call_and_wait("670", 4);
    assert_eq!(answered_by(&second), "205", "{second:#}");
    let rang: Vec<String> = node
        .legs_of(&second)
        .iter()
        .filter_map(|l| l["callee"].as_str().map(String::from))
        .collect();
    assert_eq!(rang, ["205"], "204 must not ring while wrapping up");

    // 205 (also wrapping up now) paused as well: nobody is free, the caller
    // hears the unanswered prompt.
    pause(&node, "205", true);
    assert_eq!(agent(&node, "205")["paused"], true);
    let third = node.call_and_wait("670", 6);
    assert!(answered_by(&third).is_empty(), "{third:#}");
    assert!(steps(&third).contains(&"dial:failed"), "{third:#}");
    assert!(node.legs_of(&third).is_empty(), "nobody rang: {third:#}");
}
