//! The benchmark gate in CI: small loads through the benchmarks' own path
//! against a release node, judged on correctness, never on speed. Every
//! call is set up, receives at least 95 % of the media it should have
//! (50 packets per call per second, counted against the window), none of it
//! from the wrong leg, the node's media workers never run late, and every
//! record says what the plugin did.

use std::time::Duration;

use hookline_benches::loadgen::{self, LoadConfig, LoadReport, Phase};
use hookline_tests::{free_udp_port, path_of, NodeSpec, TestNode};
use serde_json::Value;

/// The IVR plays prompts back to back for the whole call (as the IVR
/// benchmark's `prompts` variant): media flows every 20 ms.
const PROMPTS: &str = r#"[[routes]]
number = "load"
plugin = "ivr"
config = { greeting = [], menu = ["welcome", "main_menu", "sales", "support", "operator"], invalid = [], no_input = [], attempts = 100000, timeout_ms = 20, options = [{ digit = "1", name = "sales" }], fallback = { name = "none" } }
"#;

/// One load at a time: the two would share the machine's cores, and the
/// gate is about the node, not about two loads competing.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(service: &str, calls: usize, answer: bool, sip_port: u16) -> LoadConfig {
    LoadConfig {
        answer_calls: answer,
        sip_port,
        ..LoadConfig::callers(
            "127.0.0.1:5060".parse().unwrap(),
            service,
            calls,
            Duration::from_secs(3),
            50,
        )
    }
}

/// Runs the load; returns its report and the media ticks the node ran late
/// during the window.
fn run(node: &TestNode, cfg: LoadConfig) -> (LoadReport, f64) {
    let late = || node.metric(hookline_benches::LATE_TICKS).unwrap();
    let (mut at_start, mut at_end) = (0.0, 0.0);
    let mut phases = Vec::new();
    let report = loadgen::run(
        &LoadConfig {
            node: node.sip,
            ..cfg
        },
        |p| {
            match p {
                Phase::HoldStart => at_start = late(),
                Phase::HoldEnd => at_end = late(),
            }
            phases.push(p);
        },
    )
    .unwrap();
    assert_eq!(phases, vec![Phase::HoldStart, Phase::HoldEnd]);
    (report, at_end - at_start)
}

/// The gate's media checks, each with the report and the node's log to read.
fn assert_media_held(node: &TestNode, r: &LoadReport, late_ticks: f64) {
    let why = || format!("{r:#?}\n{}", hookline_benches::media_fields(r, late_ticks));
    assert!(r.rtp_expected > 0, "{}", why());
    assert!(
        r.rtp_received * 100 >= r.rtp_expected * 95,
        "received under 95 % of the expected media: {}\n{}",
        why(),
        node.logs()
    );
    assert_eq!(r.rtp_late, 0, "{}", why());
    assert_eq!(r.rtp_crossed, 0, "media from the wrong leg: {}", why());
    assert_eq!(
        late_ticks,
        0.0,
        "the node's media ticks ran late: {}",
        why()
    );
    assert_eq!(r.ended_by_node, 0, "{}", why());
}

/// The `calls` newest records of callers named `load`, once all have ended.
fn ended_records(node: &TestNode, calls: usize) -> Vec<Value> {
    let ended = |c: &Value| c["caller"] == "load" && c["hangup_cause"].is_string();
    assert!(
        hookline_tests::wait_until(Duration::from_secs(15), || {
            node.calls().unwrap().iter().filter(|c| ended(c)).count() >= calls
        }),
        "not every call's record ended: {:#?}",
        node.calls()
    );
    node.calls().unwrap().into_iter().filter(ended).collect()
}

#[test]
fn ivr_calls_get_every_prompt_packet_and_end_as_the_caller_asked() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let node = TestNode::start(NodeSpec {
        profile: "release",
        extra_routes: PROMPTS,
        ..NodeSpec::default()
    })
    .unwrap();
    let (r, late_ticks) = run(&node, config("load", 20, false, 0));
    assert_eq!(
        (r.attempted, r.answered),
        (20, 20),
        "{r:?}\n{}",
        node.logs()
    );
    assert_eq!(r.completed, 20, "every BYE got its 200: {r:?}");
    assert_media_held(&node, &r, late_ticks);
    // No caller's own audio came back, and none was relayed anywhere.
    assert_eq!(r.rtp_marked, 0, "{r:?}");
    for c in ended_records(&node, 20) {
        assert_eq!(c["plugin"], "ivr", "{c:#}");
        assert!(c["answered_at"].is_string(), "{c:#}");
        assert_eq!(c["hangup_cause"], "caller-bye", "{c:#}");
        let path = path_of(&c);
        assert!(
            !path
                .iter()
                .any(|s| s.starts_with("plugin-") || s.starts_with("fallback:")),
            "the IVR ran to the caller's hang-up: {c:#}"
        );
    }
}

#[test]
fn bridged_calls_carry_each_callers_own_audio_to_its_own_agent_and_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let agents = free_udp_port();
    let route = format!(
        "[[routes]]\nnumber = \"bridge\"\nplugin = \"ivr\"\nconfig = {{ fallback = {{ name = \"agent\", dial = [\"sip:agent@127.0.0.1:{agents}\"], dial_timeout_ms = 20000 }} }}\n"
    );
    let node = TestNode::start(NodeSpec {
        profile: "release",
        extra_routes: &route,
        ..NodeSpec::default()
    })
    .unwrap();
    // Legs send 400 µs apart (50 groups over the 20 ms), as the packets of
    // many phones arrive: the generator keeps a pace finer than its own
    // loop's sleep, and the node relays each as it comes.
    let (r, late_ticks) = run(
        &node,
        LoadConfig {
            phases: 50,
            ..config("bridge", 10, true, agents)
        },
    );
    assert_eq!((r.answered, r.bridged), (10, 10), "{r:?}\n{}", node.logs());
    assert_eq!(r.completed, 10, "{r:?}");
    assert_media_held(&node, &r, late_ticks);
    // Both ways, what arrived was the partner's marked audio: relayed, not
    // replaced by the node's own silence.
    assert!(
        r.rtp_marked * 100 >= r.rtp_expected * 95,
        "the far end's audio did not come through: {r:#?}"
    );
    // Ten callers and their ten agent legs, each answered and ended.
    let records = ended_records(&node, 20);
    let (callers, legs): (Vec<&Value>, Vec<&Value>) =
        records.iter().partition(|c| c["parent"].is_null());
    assert_eq!((callers.len(), legs.len()), (10, 10), "{records:#?}");
    for c in callers {
        assert!(
            path_of(c).iter().any(|s| s == "answered:agent"),
            "the caller was bridged to the agent: {c:#}"
        );
        let own: Vec<_> = legs.iter().filter(|l| l["parent"] == c["id"]).collect();
        assert_eq!(own.len(), 1, "one agent leg per caller: {c:#} {legs:#?}");
        assert!(own[0]["answered_at"].is_string(), "{:#}", own[0]);
    }
}
