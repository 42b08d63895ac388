//! The CRM router against a real HTTP server standing in for the CRM
//! (Python's http.server) and a registered baresip agent: the manager comes
//! from the CRM first, then from the node's own call history; exceptions and
//! unknown callers go to the default target; an unanswered manager returns
//! the call to the scenario (the IVR that handed it over).

use std::time::Duration;

use hookline_tests::{path_of, sipp, StaticHttp, TestNode};

#[test]
fn callers_reach_their_manager_from_the_crm_then_from_call_history() {
    let crm_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(crm_dir.path().join("managers")).unwrap();
    // The CRM knows the Omsk client +7 3812 555001 (manager 201) and a client
    // whose manager (203) is away.
    std::fs::write(
        crm_dir.path().join("managers/73812555001.json"),
        r#"{"manager": "201"}"#,
    )
    .unwrap();
    std::fs::write(
        crm_dir.path().join("managers/73812555002.json"),
        r#"{"manager": "203"}"#,
    )
    .unwrap();
    let crm = StaticHttp::serve(crm_dir.path()).unwrap();
    let routes = format!(
        r#"[[extensions]]
user = "201"
password = "agent"

[[routes]]
number = "crm"
plugin = "crm-router"
config = {{ sources = ["history", "crm"], crm_urls = ["http://{crm}/managers/{{number}}.json"], exceptions = ["83812999999"], country_code = "7", city_code = "3812", national_length = 10, trunk_prefix = "8", default = "202", ring_ms = 8000 }}

[[routes]]
number = "ivr-crm"
plugin = "ivr"
config = {{ fallback = {{ name = "manager", hand_over = "crm-router", hand_over_args = {{ crm_urls = ["http://{crm}/managers/{{number}}.json"], country_code = "7", city_code = "3812", national_length = 10, ring_ms = 5000 }}, unanswered = ["operator"] }} }}
"#,
        crm = crm.addr
    );
    let node = TestNode::with_routes(&routes).unwrap();
    let agent = node
        .agent("201", "agent", &vec![3000i16; 8000 * 60])
        .unwrap();

    let call = |caller: &str, service: &str| {
        sipp(
            &node,
            "uac_talk.xml",
            service,
            &[("caller", caller.into()), ("rtp_sink", "9".into())],
        )
        .unwrap();
        node.wait_for_call(Duration::from_secs(15), |c| {
            c["caller"] == caller && c["parent"].is_null() && c["hangup_cause"].is_string()
        })
        .unwrap()
    };

    // 1. A local number, normalised with the city code, found in the CRM.
    let first = call("555001", "crm");
    let path = path_of(&first);
    assert!(
        path.contains(&"crm:caller:+73812555001".to_string()),
        "{path:?}"
    );
    assert!(
        path.contains(&"crm:crm:201".to_string()),
        "{path:?}\n{}",
        node.logs()
    );
    let calls = node.calls().unwrap();
    let leg = calls
        .iter()
        .find(|c| c["parent"] == first["id"])
        .expect("a leg to 201");
    assert_eq!(leg["callee"], "201");
    assert!(leg["answered_at"].is_string(), "{leg:#}");

    // 2. The CRM forgets the client; the node's history still knows who took the last call
    //    (the same client dialling in national form).
    std::fs::remove_file(crm_dir.path().join("managers/73812555001.json")).unwrap();
    let second = call("83812555001", "crm");
    let path = path_of(&second);
    assert!(path.contains(&"crm:history:201".to_string()), "{path:?}");

    // 3. An exception skips the lookup and goes to the default target (202,
    //    not registered: the dial fails and the router returns).
    let third = call("83812999999", "crm");
    let path = path_of(&third);
    assert!(path.contains(&"crm:exception".to_string()), "{path:?}");
    assert!(path.contains(&"crm:default:202".to_string()), "{path:?}");
    assert!(!path.iter().any(|s| s.starts_with("crm:crm:")), "{path:?}");
    // Nobody answered: nor was the caller (answer on answer).
    assert!(third["answered_at"].is_null(), "{third:#}");

    // 4. The manager (203) does not answer: back to the IVR, which plays its prompt.
    let fourth = call("555002", "ivr-crm");
    let path = path_of(&fourth);
    let at = |s: &str| path.iter().position(|p| p == s);
    assert!(at("hand-over:crm-router").is_some(), "{path:?}");
    assert!(path.contains(&"crm:crm:203".to_string()), "{path:?}");
    assert!(at("crm:manager-unanswered").is_some(), "{path:?}");
    assert!(
        at("prompt:operator") > at("crm:manager-unanswered"),
        "the IVR goes on after the router returns: {path:?}"
    );
    drop(agent);
}
