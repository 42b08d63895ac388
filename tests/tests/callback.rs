//! Queue callbacks against real peers: a customer (baresip behind the
//! carrier's trunk, number 5551234) waits in a queue with no agent, presses
//! star and hangs up keeping their place. The node is killed (SIGKILL) and
//! restarted; the place is still there. When agent 201 (baresip) registers,
//! the node rings the agent first, then calls the customer back through the
//! trunk and bridges them: each hears the other's tone.
//!
//! The IVR puts the caller in the queue with the host API's `enqueue`.
//! And when nobody is free within the callback window, the node calls the
//! customer, apologises and takes a voicemail.

use std::time::{Duration, Instant};

use hookline_tests::{
    free_udp_port, http_get, longest_tone_s, steps, tone, tone_windows, Baresip, TestNode,
};
use serde_json::Value;

const CUSTOMER: &str = "5551234";
const CUSTOMER_HZ: f64 = 600.0;
const AGENT_HZ: f64 = 1000.0;

fn setup(trunk_port: u16, window_s: u64) -> String {
    format!(
        r#"[[extensions]]
user = "201"
password = "one"

[[trunks]]
name = "carrier"
address = "127.0.0.1:{trunk_port}"

[[groups]]
name = "support"
strategy = "all"
members = ["201"]

[[queues]]
name = "help"
number = "700"
group = "support"
announce_s = 30
callback_digit = "*"
callback_window_s = {window_s}
ring_s = 15

[[routes]]
number = "700"
plugin = "ivr"
config = {{ fallback = {{ name = "queue", enqueue = "help" }} }}
"#
    )
}

fn callbacks(node: &TestNode) -> Vec<Value> {
    let (status, body) = http_get(node.http, "/api/callbacks", None).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The customer calls the queue, presses star once answered, and the node
/// thanks them and hangs up; returns that call's record.
fn ask_for_callback(node: &TestNode, customer: &Baresip) -> Value {
    let id = customer.answered_call_id(Duration::from_secs(20));
    // While the queue's greeting plays.
    std::thread::sleep(Duration::from_millis(2000));
    let reply = customer.command("sndcode", "*").unwrap();
    assert!(reply.contains("\"ok\":true"), "{reply}");
    let call = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["id"] == id.as_str() && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    let path = steps(&call);
    assert!(path.contains(&"queue:callback"), "{path:?}");
    // The plugin's enqueue verb learnt how the wait ended.
    assert!(path.contains(&"queue-end:callback"), "{path:?}");
    assert!(path.contains(&"from-trunk:carrier"), "{path:?}");
    call
}

/// A node whose queue keeps callbacks for `window_s`, and the customer
/// behind its trunk already calling the queue.
fn node_and_customer(window_s: u64) -> (TestNode, Baresip) {
    let trunk_port = free_udp_port();
    let node = TestNode::with_routes(&setup(trunk_port, window_s)).unwrap();
    let customer = Baresip::customer(
        trunk_port,
        CUSTOMER,
        &format!("sip:700@{}", node.sip),
        &tone(CUSTOMER_HZ, 8000, 40),
    )
    .unwrap();
    (node, customer)
}

/// The record of call `id` once it has ended.
fn ended(node: &TestNode, id: &Value) -> Value {
    node.wait_for_call(Duration::from_secs(20), |c| {
        c["id"] == *id && c["hangup_cause"].is_string()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()))
}

#[test]
fn a_callback_survives_a_crash_and_connects_the_agent_first_then_the_customer() {
    let (mut node, customer) = node_and_customer(600);
    let first = ask_for_callback(&node, &customer);
    let kept = callbacks(&node);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["number"], CUSTOMER);
    assert_eq!(kept[0]["position"], 1);

    node.crash_and_restart().unwrap();
    let kept = callbacks(&node);
    assert_eq!(kept.len(), 1, "the place was lost in the crash: {kept:?}");
    assert_eq!(kept[0]["number"], CUSTOMER);

    // An agent comes: the node rings them first, then calls the customer.
    let agent = node.agent("201", "one", &tone(AGENT_HZ, 8000, 40)).unwrap();
    // (A record's path is written when the call ends; its legs show progress.)
    let customer_leg = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["callee"] == CUSTOMER && c["answered_at"].is_string() && c["parent"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", agent.log(), node.logs()));
    // Four seconds of talk, then the customer hangs up.
    std::thread::sleep(Duration::from_secs(4));
    customer.command("hangup", "").unwrap();
    let cb = ended(&node, &customer_leg["parent"]);
    assert_ne!(cb["id"], first["id"]);
    let path = steps(&cb);
    let at = |step: &str| {
        path.iter()
            .position(|s| *s == step)
            .unwrap_or_else(|| panic!("no {step} in {path:?}"))
    };
    assert!(at("callback:help") < at("answered:201"), "{path:?}");
    assert!(
        at("answered:201") < at("dial:5551234"),
        "agent first: {path:?}"
    );
    assert!(at("dial:5551234") < at("answered:5551234"), "{path:?}");
    assert!(
        path.contains(&"trunk:carrier"),
        "the customer through the trunk: {path:?}"
    );
    assert_eq!(cb["hangup_cause"], "callback-answered", "{cb:#}");
    let legs = node.legs_of(&cb);
    let callees: Vec<&str> = legs.iter().filter_map(|l| l["callee"].as_str()).collect();
    assert_eq!(
        callees,
        ["201", CUSTOMER],
        "who was called, in order: {legs:#?}"
    );

    // Bridged: each heard the other.
    let agent = agent.quit().unwrap();
    let customer = customer.quit().unwrap();
    let agent_heard = agent.heard().expect("the agent's recording");
    let customer_calls = customer.heard_all();
    let callback_call = customer_calls.last().expect("the customer's recordings");
    // For most of the four seconds they talked, and neither heard itself.
    let (a, c) = (
        longest_tone_s(&agent_heard, CUSTOMER_HZ),
        longest_tone_s(callback_call, AGENT_HZ),
    );
    eprintln!("the agent heard the customer for {a} s, the customer the agent for {c} s");
    assert!(a >= 3.0, "the agent heard the customer for {a} s of 4");
    assert!(c >= 3.0, "the customer heard the agent for {c} s of 4");
    let echoes = (
        tone_windows(&agent_heard, AGENT_HZ),
        tone_windows(callback_call, CUSTOMER_HZ),
    );
    assert_eq!(echoes, (0, 0), "own tone heard back (windows)");

    let deadline = Instant::now() + Duration::from_secs(5);
    while !callbacks(&node).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", callbacks(&node));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nobody_free_within_the_window_the_customer_is_called_and_leaves_a_message() {
    let (node, customer) = node_and_customer(3);
    ask_for_callback(&node, &customer);
    // The window passes with no agent at all: the node calls back.
    let cb = node
        .wait_for_call(Duration::from_secs(40), |c| {
            c["callee"] == "help" && c["answered_at"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    // The apology and the voicemail greeting, then a few seconds of message.
    std::thread::sleep(Duration::from_secs(14));
    customer.command("hangup", "").unwrap();
    let cb = ended(&node, &cb["id"]);
    let path = steps(&cb);
    assert!(path.contains(&"callback:help:expired"), "{path:?}");
    assert!(path.contains(&"hand-over:voicemail"), "{path:?}");
    assert_eq!(cb["hangup_cause"], "callback-expired-message", "{cb:#}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let message = loop {
        let found = node
            .recordings()
            .unwrap()
            .into_iter()
            .find(|r| r["call_id"] == cb["id"]);
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "no message for {cb:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        message["duration_ms"].as_u64().unwrap_or(0) >= 1000,
        "{message:#}"
    );
    assert!(callbacks(&node).is_empty());
}
