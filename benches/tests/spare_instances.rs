//! Calls start on spare plugin instances that the warmer thread made ahead
//! of them (`server/src/plugin/warm.rs`), and each spare serves one call:
//! run in process on a node built from the sample config, as the
//! `plugin_instantiate` benchmark does, judged on outcomes, never on speed.

use std::time::Duration;

use hookline::call::detached_session;
use hookline::node::{build, ServeOptions};
use hookline::plugin::Outcome;

#[test]
fn calls_arriving_apart_start_on_spares_and_every_call_still_runs_whole() {
    let data = std::env::temp_dir().join(format!("hookline-spares-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let root = hookline_tests::workspace_root();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let node = rt
        .block_on(build(&ServeOptions {
            sip: "127.0.0.1:0".parse().unwrap(),
            rtp_ports: (45200, 45300),
            http: "127.0.0.1:0".parse().unwrap(),
            data: data.clone(),
            config: root.join("hookline.toml"),
            insecure_api: false,
        }))
        .unwrap();
    let plugin = node.plugins.get("ivr").expect("the sample config's IVR");
    let route = node
        .config
        .routes
        .iter()
        .find(|r| r.number == "*" && r.plugin == "ivr")
        .expect("the sample config's catch-all IVR route");
    let info = hookline::plugin::CallInfo {
        config: serde_json::to_string(&route.config).unwrap(),
        ..hookline::plugin::bench_info()
    };
    // `n` calls 20 ms apart (a spare takes well under a millisecond to make).
    // Each call's IVR parsed its config, answered, found the caller gone and
    // returned ok: a spare runs the call as a fresh one does.
    let calls = |n: u32| {
        rt.block_on(node.plugins.instantiate_latencies(
            &plugin,
            || detached_session(&node, "ivr").0,
            &info,
            n,
            Duration::from_millis(20),
            |o| matches!(o, Outcome::Done),
        ))
    };
    let before = node.plugins.warm_hits();
    let took = calls(40).unwrap_or_else(|e| panic!("a call on a spare did not run whole: {e}"));
    assert_eq!(took.len(), 40);
    let hits = node.plugins.warm_hits() - before;
    // The first call (or two) may find none yet; after that, every one does.
    assert!(hits >= 37, "only {hits} of 40 calls started on a spare");
    // Idle long enough for the warmer to sleep (it looks for work on its
    // own only while calls come in): the next calls take the spares it left
    // and wake it, and it makes more, so every one of 12 starts on a spare
    // (4 were left: without the wake-up the fifth would find none).
    std::thread::sleep(Duration::from_millis(600));
    let before = node.plugins.warm_hits();
    calls(12).unwrap_or_else(|e| panic!("a call after the warmer slept did not run whole: {e}"));
    let hits = node.plugins.warm_hits() - before;
    assert_eq!(
        hits, 12,
        "calls after an idle spell: {hits} of 12 on a spare"
    );
    std::fs::remove_dir_all(&data).ok();
}
