//! Agent states against registered baresip agents: after a department's
//! call an agent wraps up (the next call goes to a colleague), a paused
//! agent gets no department calls, and both come back; a department ranked
//! by conversion rings its best agent first.

use hookline_tests::{answered_by, http_get, http_request, steps, TestNode};
use serde_json::Value;

/// The two agents both tests register.
const AGENTS: &str = r#"[[extensions]]
user = "204"
password = "four"

[[extensions]]
user = "205"
password = "five"

"#;

const SETUP: &str = r#"[[groups]]
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
    let (status, _) = http_request(node.http, "PUT", &path, node.token.as_deref(), body).unwrap();
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
    let node = TestNode::with_routes(&format!("{AGENTS}{SETUP}")).unwrap();
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

const RANKED: &str = r#"[[groups]]
name = "sales"
number = "680"
strategy = "in-turn"
members = ["204", "205"]
step_s = 3
rank = "conversion"

[[routes]]
number = "680"
plugin = "ivr"
config = { fallback = { name = "sales", dial = ["sales"], dial_timeout_ms = 8000, unanswered = ["operator"] } }
"#;

fn rang(node: &TestNode, call: &Value) -> Vec<String> {
    node.legs_of(call)
        .iter()
        .filter_map(|l| l["callee"].as_str().map(String::from))
        .collect()
}

fn convert(node: &TestNode, user: &str, count: &str) -> u16 {
    let path = format!("/api/agents/{user}/conversions");
    http_request(
        node.http,
        "POST",
        &path,
        node.token.as_deref(),
        count.as_bytes(),
    )
    .unwrap()
    .0
}

/// A department ranked by effectiveness: the agent with the best measured
/// conversion rate (department calls they answered against the sales the
/// CRM reported) rings first, and the figures survive a restart.
#[test]
fn a_department_ranked_by_conversion_rings_its_best_agent_first() {
    let mut node = TestNode::with_routes(&format!("{AGENTS}{RANKED}")).unwrap();
    let _a = node.agent("204", "four", &vec![0; 8000 * 60]).unwrap();
    let _b = node.agent("205", "five", &vec![0; 8000 * 60]).unwrap();

    // No results yet: list order.
    let first = node.call_and_wait("680", 4);
    assert_eq!(answered_by(&first), "204", "{first:#}");
    // 204 answered one call and sold nothing: 205 (no evidence) goes first.
    let second = node.call_and_wait("680", 4);
    assert_eq!(answered_by(&second), "205", "{second:#}");
    assert_eq!(rang(&node, &second), ["205"], "{second:#}");
    // The CRM reports two sales from 204's calls: 204 leads again.
    assert_eq!(convert(&node, "204", "2"), 200);
    assert_eq!(convert(&node, "nobody", "1"), 404, "unknown agent");
    assert_eq!(convert(&node, "205", "lots"), 400, "not a count");
    let third = node.call_and_wait("680", 4);
    assert_eq!(answered_by(&third), "204", "{third:#}");
    assert_eq!(rang(&node, &third), ["204"], "{third:#}");

    let (_, metrics) = http_get(node.http, "/metrics", None).unwrap();
    assert!(
        metrics.contains("hookline_agent_converted_total{agent=\"204\"} 2"),
        "{metrics}"
    );
    // Kept across a crash: answered 2, converted 2 for 204; 1 and 0 for 205.
    std::thread::sleep(std::time::Duration::from_millis(500));
    node.crash_and_restart().unwrap();
    let a = agent(&node, "204");
    assert_eq!(
        (a["answered"].as_u64(), a["converted"].as_u64()),
        (Some(2), Some(2)),
        "{a}"
    );
    let b = agent(&node, "205");
    assert_eq!(
        (b["answered"].as_u64(), b["converted"].as_u64()),
        (Some(1), Some(0)),
        "{b}"
    );
}
