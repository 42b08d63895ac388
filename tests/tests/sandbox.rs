//! Hostile plugins: a CPU loop, a trap and a memory bomb each end their own
//! call's logic (the call goes to the route's fallback plugin), while a normal
//! IVR call running at the same time keeps its audio and its menu.

use std::time::Duration;

use hookline_tests::{
    heard_the_support_prompt, http_get, path_of, sipp, sipp_reached_support, wait_until,
    workspace_root, NodeSpec, RtpSink, SipUa, TestNode,
};

#[test]
fn hostile_plugins_fail_alone_and_their_calls_reach_the_fallback() {
    let wasm = workspace_root().join("target/wasm32-wasip2/release/hookline_hostile.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: run the README's test command",
        wasm.display()
    );
    let mut extra = format!(
        "[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n\n",
        wasm.display()
    );
    for mode in ["loop", "trap", "memory"] {
        extra.push_str(&format!(
            "[[routes]]\nnumber = \"{mode}\"\nplugin = \"hostile\"\nconfig = \"{mode}\"\n\
             fallback = {{ plugin = \"ivr\", config = {{ greeting = [\"operator\"], fallback = {{ name = \"rescued\" }} }} }}\n\n"
        ));
    }
    let node = TestNode::start(NodeSpec {
        extra_routes: &extra,
        node_section: Some("plugin_cpu_ms = 300"),
        ..NodeSpec::default()
    })
    .unwrap();

    // A well-behaved caller in the IVR at the same time.
    let sink = RtpSink::bind().unwrap();
    let sink_port = sink.port.to_string();
    let normal = std::thread::scope(|s| {
        let normal = s.spawn(|| {
            sipp(
                &node,
                "uac_ivr_dtmf.xml",
                "100",
                &[("rtp_sink", sink_port.clone())],
            )
        });
        let ua = SipUa::new(node.sip).unwrap();
        for mode in ["loop", "trap", "memory"] {
            ua.invite(&format!("hostile-{mode}"), mode, 9).unwrap();
        }
        // Each hostile call is answered by the plugin, then ended by the fallback IVR.
        for mode in ["loop", "trap", "memory"] {
            let id = format!("hostile-{mode}");
            let ok = ua
                .expect(&id, "SIP/2.0 200", Duration::from_secs(20))
                .unwrap();
            ua.request("ACK", &id, &hookline_tests::to_tag(&ok), 1, "", "")
                .unwrap();
        }
        normal.join().unwrap()
    });
    normal.unwrap();

    for mode in ["loop", "trap", "memory"] {
        let call = node
            .wait_for_call(Duration::from_secs(20), |c| {
                c["id"] == format!("hostile-{mode}") && c["hangup_cause"].is_string()
            })
            .unwrap();
        let path = path_of(&call);
        assert!(
            path.iter().any(|p| p.starts_with("plugin-trap:")),
            "{mode}: {path:?}"
        );
        assert!(
            path.contains(&"fallback:ivr".to_string()),
            "{mode}: {path:?}"
        );
        assert!(
            path.contains(&"branch:rescued".to_string()),
            "{mode}: {path:?}"
        );
        assert_eq!(call["hangup_cause"], "plugin-hangup", "{mode}: {call:#}");
        if mode == "loop" {
            assert!(path.iter().any(|p| p.contains("CPU budget")), "{path:?}");
        }
        if mode == "trap" {
            // The panic's own message, not just "unreachable instruction".
            assert!(
                path.iter().any(
                    |p| p.starts_with("plugin-trap:hostile plugin traps on purpose (wasm trap")
                ),
                "{path:?}"
            );
        }
    }
    // What the plugin printed is in the node log, under its call and name.
    let log = node.logs();
    let panic_line = log
        .lines()
        .find(|l| l.contains("stderr: thread") && l.contains("panicked at"))
        .unwrap_or_else(|| panic!("no plugin stderr in the node log:\n{log}"));
    assert!(
        panic_line.contains("hostile-trap") && panic_line.contains("hostile"),
        "{panic_line}"
    );

    // The normal call did not notice: its branch, and its last prompt complete and unbroken.
    sipp_reached_support(&node);
    heard_the_support_prompt(&node, &sink.finish());
}

/// A plugin's `prepare` (host API 0.1.2) runs on the spare instance ahead of
/// its call, with the config of the plugin's latest call; no call verb or
/// grant works there; one that runs away is cut at its 20 ms slice, and the
/// plugin's calls go on without it.
#[test]
fn prepare_runs_ahead_of_the_call_without_call_verbs_and_a_runaway_one_is_cut() {
    let node = PrepareNode::new(&["prepared", "prepare-escape", "prepare-loop"]);
    assert_eq!(node.prepare_state(), "on");

    // The first call: no config known yet, so its instance was not prepared.
    assert_eq!(node.call("prepared"), ["prepared:none"]);
    // The next ones start on spares prepared with the latest call's config.
    assert_eq!(node.call("prepared"), ["prepared:config=prepared"]);
    // Another route's first call finds a spare prepared for the previous
    // route (the SDK parses its own config then); the next is its own.
    assert_eq!(node.call("prepare-escape"), ["prepared:config=prepared"]);
    assert_eq!(
        node.call("prepare-escape"),
        ["prepared:answer=unavailable,kv=not-allowed,hangup=unavailable"]
    );

    // A runaway `prepare`: the warmer's next spare spins in it, is cut at
    // its slice and thrown away, and `prepare` is off for this version.
    assert_eq!(
        node.call("prepare-loop"),
        ["prepared:answer=unavailable,kv=not-allowed,hangup=unavailable"]
    );
    assert!(
        wait_until(Duration::from_secs(5), || node.prepare_state() == "off"),
        "a spinning prepare was not cut: {}",
        node.prepare_state()
    );
    let log = node.node.logs();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("prepare() failed"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("ran past its 20 ms slice"), "{}", said[0]);
    // Calls go on, on spares made without it.
    assert_eq!(node.call("prepared"), ["prepared:none"]);
    assert_eq!(node.call("prepared"), ["prepared:none"]);
}

/// A `prepare` that waits (a WASI sleep, which the epoch does not see) is
/// cut by the clock: the warmer goes on making spares and calls go on.
#[test]
fn a_prepare_that_sleeps_is_cut_by_the_clock() {
    let node = PrepareNode::new(&["prepared", "prepare-sleep"]);
    // The first call makes the warmer prepare the next spare with a sleep.
    assert_eq!(node.call("prepare-sleep"), ["prepared:none"]);
    assert!(
        wait_until(Duration::from_secs(5), || node.prepare_state() == "off"),
        "a sleeping prepare was not cut: {}",
        node.prepare_state()
    );
    let log = node.node.logs();
    assert!(log.contains("prepare() waited past 100ms"), "{log}");
    // The warmer lives on: spares (unprepared now) serve the next calls.
    assert_eq!(node.call("prepared"), ["prepared:none"]);
    assert_eq!(node.call("prepared"), ["prepared:none"]);
}

/// A node with the hostile plugin on one route per `prepare` mode, called
/// one call at a time through SIP.
struct PrepareNode {
    node: TestNode,
    ua: SipUa,
    calls: std::cell::Cell<u32>,
}

impl PrepareNode {
    fn new(modes: &[&str]) -> PrepareNode {
        let wasm = workspace_root().join("target/wasm32-wasip2/release/hookline_hostile.wasm");
        let mut extra = format!(
            "[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n\n",
            wasm.display()
        );
        for mode in modes {
            extra.push_str(&format!(
                "[[routes]]\nnumber = \"{mode}\"\nplugin = \"hostile\"\nconfig = \"{mode}\"\n\n"
            ));
        }
        let node = TestNode::with_routes(&extra).unwrap();
        let ua = SipUa::new(node.sip).unwrap();
        PrepareNode {
            node,
            ua,
            calls: std::cell::Cell::new(0),
        }
    }

    /// One call to `mode`'s route: what the hostile plugin's `prepare` saw,
    /// as its call noted it.
    fn call(&self, mode: &str) -> Vec<String> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        let id = format!("prepare-{n}");
        self.ua.invite(&id, mode, 9).unwrap();
        let ok = self
            .ua
            .expect(&id, "SIP/2.0 200", Duration::from_secs(20))
            .unwrap();
        self.ua
            .request("ACK", &id, &hookline_tests::to_tag(&ok), 1, "", "")
            .unwrap();
        let record = self
            .node
            .wait_for_call(Duration::from_secs(20), |c| {
                c["id"] == id && c["hangup_cause"].is_string()
            })
            .unwrap();
        path_of(&record)
            .into_iter()
            .filter(|p| p.starts_with("prepared:"))
            .collect()
    }

    /// What `GET /api/plugins` says of the hostile plugin's `prepare`.
    fn prepare_state(&self) -> String {
        let (_, body) =
            http_get(self.node.http, "/api/plugins", self.node.token.as_deref()).unwrap();
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let hostile = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "hostile");
        hostile.unwrap()["prepare"].as_str().unwrap().to_string()
    }
}
