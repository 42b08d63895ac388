//! Plugin instantiate + first entry: a fresh instance of the sample IVR from its
//! `InstancePre` (pooling allocator), `handle-call` entered with the sample
//! IVR route's config, `answer` called; the call is already gone, so it
//! returns `hung-up` and the IVR returns ok (checked on every run).
//!
//! Last line: `bench=plugin_instantiate iterations=N instantiate_first_entry_us=X`

use std::time::Duration;

use hookline::call::detached_session;
use hookline::node::{build, ServeOptions};
use hookline::plugin::Outcome;

fn main() -> anyhow::Result<()> {
    let data = tempfile_dir()?;
    let root = hookline_tests::workspace_root();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let node = rt.block_on(build(&ServeOptions {
        sip: "127.0.0.1:0".parse()?,
        rtp_ports: (45000, 45100),
        http: "127.0.0.1:0".parse()?,
        data: data.clone(),
        config: root.join("hookline.toml"),
        insecure_api: false,
    }))?;
    let plugin = node
        .plugins
        .get("ivr")
        .ok_or_else(|| anyhow::anyhow!("sample config has no ivr plugin"))?;
    let make = || detached_session(&node, "ivr").0;
    // Time a settled node: its background start-up work would compete for the cores.
    let settled = hookline_benches::proc_stats::wait_until_machine_idle(Duration::from_secs(60));
    eprintln!("node settled {:.1} s after start-up", settled.as_secs_f64());
    let iterations = hookline_benches::arg("--iterations", 5000) as u32;
    // The sample IVR route's own config (an empty one fails at parsing,
    // before any host call: that would be measured as a fast entry).
    let route = node
        .config
        .routes
        .iter()
        .find(|r| r.number == "*" && r.plugin == "ivr")
        .ok_or_else(|| anyhow::anyhow!("sample config has no catch-all IVR route"))?;
    let info = hookline::plugin::CallInfo {
        config: serde_json::to_string(&route.config)?,
        ..hookline::plugin::bench_info()
    };
    // The call is gone before the first prompt: `answer` says hung-up and
    // the IVR returns ok, every time.
    let done = |o: &Outcome| matches!(o, Outcome::Done);
    let us = rt.block_on(async {
        node.plugins
            .instantiate_micros(&plugin, make, &info, 200, done) // warm-up
            .await?;
        node.plugins
            .instantiate_micros(&plugin, make, &info, iterations, done)
            .await
    });
    let us = us.map_err(|e| anyhow::anyhow!("the IVR did not return ok: {e}"))?;
    std::fs::remove_dir_all(&data).ok();
    println!(
        "bench=plugin_instantiate iterations={iterations} outcomes_ok={iterations} instantiate_first_entry_us={us:.1}"
    );
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hookline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
