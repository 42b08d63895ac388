//! "Dial an extension at any time": a caller keys a registered agent's
//! extension while the greeting still plays and is connected to that agent,
//! not to the menu; a single menu key still picks its option.

use std::time::Duration;

use hookline_tests::{answered_by, steps, tone, Baresip, TestNode};

const SETUP: &str = r#"[[extensions]]
user = "201"
password = "one"

[[routes]]
number = "main"
plugin = "ivr"
config = { greeting = ["welcome"], menu = ["main_menu"], attempts = 2, timeout_ms = 4000, extension_digits = 3, inter_digit_ms = 2000, options = [{ digit = "1", name = "sales", prompts = ["sales"] }], fallback = { name = "operator", prompts = ["operator"] } }
"#;

/// Calls `main`, keys `keys` one by one 1 s after the answer (the greeting
/// is still playing) and returns the caller's record once the call ended.
fn call_keying(node: &TestNode, keys: &[&str], seconds: usize) -> serde_json::Value {
    let caller =
        Baresip::start_with_mic(&format!("sip:main@{}", node.sip), &vec![0; 8000 * seconds])
            .unwrap();
    let id = caller.answered_call_id(Duration::from_secs(20));
    // While the greeting plays.
    std::thread::sleep(Duration::from_millis(1000));
    for key in keys {
        let reply = caller.command("sndcode", key).unwrap();
        assert!(reply.contains("\"ok\":true"), "{reply}");
        std::thread::sleep(Duration::from_millis(250));
    }
    node.wait_for_call(Duration::from_secs(40), |c| {
        c["id"] == id.as_str() && c["hangup_cause"].is_string()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", caller.log(), node.logs()))
}

#[test]
fn an_extension_keyed_during_the_greeting_reaches_the_agent() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let _agent = node.agent("201", "one", &tone(1000.0, 8000, 30)).unwrap();
    let call = call_keying(&node, &["2", "0", "1"], 8);
    let path = steps(&call);
    assert!(path.contains(&"branch:extension:201"), "{path:?}");
    // The greeting was cut short and the menu never played: type-ahead.
    assert!(!path.contains(&"prompt:main_menu"), "{path:?}");
    assert_eq!(answered_by(&call), "201", "{call:#}");
}

#[test]
fn a_single_menu_key_still_picks_its_option() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let call = call_keying(&node, &["1"], 12);
    let path = steps(&call);
    assert!(path.contains(&"branch:sales"), "{path:?}");
    assert!(path.contains(&"digits:1"), "{path:?}");
}
