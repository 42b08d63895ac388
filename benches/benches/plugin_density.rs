//! Plugin density: instances parked in a verb (as an IVR waiting for a key),
//! at 1,000 and 10,000 at once, with one figure set per level:
//! instantiate + first entry while they are parked, the host-call round trip,
//! and memory per parked instance (RSS growth / instances).
//!
//! 10,000 pooled instances need more memory mappings than Linux's default
//! `vm.max_map_count` (65,530; ~6 per instance): the bench raises it to
//! 262,144 when it may (root), else runs only what fits and says so.
//!
//! Last line: `bench=plugin_density levels=... instantiate_us@N=... host_call_ns=... kib_per_instance@N=...`

use std::time::Instant;

use hookline::call::session::CallEvent;
use hookline::call::{detached_session, parked_session};
use hookline::node::{build, ServeOptions};
use hookline::plugin::{CallInfo, Outcome};
use hookline::sip::endpoint::EndCause;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn info(mode: &str) -> CallInfo {
    CallInfo {
        config: format!("\"{mode}\""),
        ..hookline::plugin::bench_info()
    }
}

fn max_map_count() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65530)
}

fn main() -> anyhow::Result<()> {
    if max_map_count() < 262_144 {
        let _ = std::fs::write("/proc/sys/vm/max_map_count", "262144");
    }
    let maps = max_map_count();
    let mut levels = vec![1000u32];
    if maps >= 200_000 {
        levels.push(10_000);
    } else {
        eprintln!("vm.max_map_count is {maps}: 10,000 instances need ~60,000+ maps; run as root to raise it");
    }
    let top = *levels.last().unwrap_or(&1000);
    let root = hookline_tests::workspace_root();
    let dir = std::env::temp_dir().join(format!("hookline-density-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sample = std::fs::read_to_string(root.join("hookline.toml"))?;
    let config = sample
        .replace("\"prompts/", &format!("\"{}/prompts/", root.display()))
        .replace("\"target/", &format!("\"{}/target/", root.display()))
        .replace("max_calls = 4000", &format!("max_calls = {}", top + 100))
        + &format!(
            "\n[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n",
            root.join("target/wasm32-wasip2/release/hookline_hostile.wasm")
                .display()
        );
    std::fs::write(dir.join("hookline.toml"), config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let node = rt.block_on(build(&ServeOptions {
        sip: "127.0.0.1:0".parse()?,
        rtp_ports: (45200, 45300),
        http: "127.0.0.1:0".parse()?,
        data: dir.join("data"),
        config: dir.join("hookline.toml"),
        insecure_api: false,
    }))?;
    let plugin = node
        .plugins
        .get("hostile")
        .ok_or_else(|| anyhow::anyhow!("hostile plugin not loaded"))?;
    // Time a settled node: its background start-up work would compete for the cores.
    hookline_benches::proc_stats::wait_until_machine_idle(std::time::Duration::from_secs(60));

    // Host-call round trip: 200,000 calls of data.now-ms against an empty entry.
    let host_call_ns = rt.block_on(async {
        let run = |mode: &'static str| {
            let node = node.clone();
            let plugin = plugin.clone();
            async move {
                let t = Instant::now();
                let (s, _rx) = detached_session(&node, "hostile");
                let (outcome, _) = node.plugins.run(&plugin, s, info(mode)).await;
                // A ping that failed part way would make host calls look cheap.
                assert!(matches!(outcome, Outcome::Done), "{mode}: {outcome:?}");
                t.elapsed().as_secs_f64()
            }
        };
        run("ping:0").await;
        let empty = run("ping:0").await;
        let busy = run("ping:200000").await;
        (busy - empty) / 200_000.0 * 1e9
    });

    let mut parked: Vec<hookline::call::events::EventTx> = Vec::new();
    let mut tasks = Vec::new();
    let mut sinks = Vec::new();
    let mut fields = Vec::new();
    let base_rss = rss_kib();
    for &level in &levels {
        while parked.len() < level as usize {
            let (session, tx, sip_rx) = parked_session(&node, "hostile");
            sinks.push(sip_rx);
            parked.push(tx);
            let node = node.clone();
            let plugin = plugin.clone();
            tasks.push(rt.spawn(async move {
                let (outcome, _) = node.plugins.run(&plugin, session, info("park")).await;
                outcome
            }));
        }
        // Let every instance reach its verb.
        rt.block_on(async { tokio::time::sleep(std::time::Duration::from_secs(2)).await });
        let kib = (rss_kib().saturating_sub(base_rss)) as f64 / level as f64;
        // `ping:0`: enter, return ok; every run must, or the figure means nothing.
        let us = rt.block_on(async {
            let make = || detached_session(&node, "hostile").0;
            let ping = info("ping:0");
            let done = |o: &Outcome| matches!(o, Outcome::Done);
            node.plugins
                .instantiate_micros(&plugin, make, &ping, 200, done)
                .await?;
            node.plugins
                .instantiate_micros(&plugin, make, &ping, 2000, done)
                .await
        });
        let us = us.map_err(|e| anyhow::anyhow!("instantiate at {level} parked: {e}"))?;
        println!(
            "parked={level} instantiate_first_entry_us={us:.1} kib_per_parked_instance={kib:.1}"
        );
        fields.push(format!(
            "instantiate_us@{level}={us:.1} kib_per_instance@{level}={kib:.1}"
        ));
    }
    // Every parked call hangs up; each plugin returns.
    for tx in &parked {
        let _ = tx.send(CallEvent::Ended(EndCause::CallerBye));
    }
    let done = rt.block_on(async {
        let mut ok = 0;
        for t in tasks {
            // Parked in its verb, told the caller left: the verb returns
            // hung-up and the plugin passes it on as its error.
            if matches!(t.await, Ok(Outcome::Failed(r)) if r.contains("HungUp")) {
                ok += 1;
            }
        }
        ok
    });
    drop(sinks);
    std::fs::remove_dir_all(&dir).ok();
    let parked_total = parked.len();
    anyhow::ensure!(
        done == parked_total,
        "only {done} of {parked_total} parked plugins returned hung-up when their call ended"
    );
    println!(
        "bench=plugin_density levels={} returned_ok={done} host_call_ns={host_call_ns:.0} {}",
        levels
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        fields.join(" ")
    );
    Ok(())
}
