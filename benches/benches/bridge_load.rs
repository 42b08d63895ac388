//! Concurrent bridged calls: N callers each connected by the node to an agent
//! (the load generator answers the node's outbound INVITEs too), media both
//! ways through the node's relay, held for T seconds.
//!
//! `cargo bench -p hookline-benches --bench bridge_load -- --calls 500 --seconds 20`
//! Last line: `bench=bridged_calls ... calls_per_core=X rss_mib_per_call=Y lost_pct=Z`

use std::time::{Duration, Instant};

use hookline_benches::loadgen::{self, LoadConfig, Phase};
use hookline_benches::proc_stats::{cpu_seconds, rss_mib};
use hookline_tests::{free_udp_port, NodeSpec, TestNode};

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 200) as usize;
    let seconds = hookline_benches::arg("--seconds", 20);
    let cps = hookline_benches::arg("--cps", 200) as u32;
    let agent_port = free_udp_port();
    // The route connects every caller straight to the agent side of the generator.
    let route = format!(
        "[[routes]]\nnumber = \"bridge\"\nplugin = \"ivr\"\nconfig = {{ fallback = {{ name = \"agent\", dial = [\"sip:agent@127.0.0.1:{agent_port}\"], dial_timeout_ms = 20000 }} }}\n"
    );
    let node_section = format!("max_calls = {}\nmedia_threads = 0", calls + 100);
    let span = (calls as u16)
        .saturating_mul(4)
        .saturating_add(200)
        .min(25000);
    let node = TestNode::start(NodeSpec {
        profile: "release",
        extra_routes: &route,
        node_section: Some(&node_section),
        rtp_ports: (30000, 30000 + span),
    })?;
    let pid = node.pid();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_mib(pid);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut at_start = (0.0, 0.0, Instant::now());
    let mut at_end = at_start;
    let report = loadgen::run(
        &LoadConfig {
            node: node.sip,
            service: "bridge".into(),
            calls,
            hold: Duration::from_secs(seconds),
            cps,
            answer_calls: true,
            sip_port: agent_port,
        },
        |phase| {
            let sample = (cpu_seconds(pid), rss_mib(pid), Instant::now());
            match phase {
                Phase::HoldStart => at_start = sample,
                Phase::HoldEnd => at_end = sample,
            }
        },
    )?;
    if report.bridged < report.answered {
        let logs = node.logs();
        let tail: Vec<&str> = logs.lines().rev().take(15).collect();
        eprintln!(
            "{} answered calls were not bridged; node log tail:\n{}",
            report.answered - report.bridged,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        eprintln!("{:#?}", node.calls_limit(3)?);
    }
    let wall = (at_end.2 - at_start.2).as_secs_f64().max(1e-9);
    let cpu_pct = (at_end.0 - at_start.0) / wall * 100.0;
    let bridged = report.bridged.max(1) as f64;
    let expected = (report.rtp_received + report.rtp_lost).max(1) as f64;
    println!(
        "bridged {} of {} calls for {:.1} s; node idle RSS {:.1} MiB, loaded {:.1} MiB; setup {:.1} ms avg",
        report.bridged, report.attempted, wall, rss_idle, at_end.1, report.setup_ms_avg
    );
    println!(
        "bench=bridged_calls calls_attempted={} calls_bridged={} calls_completed={} calls_failed={} held_s={:.1} cores={} \
         node_cpu_pct={:.1} calls_per_core={:.0} rss_mib_per_call={:.3} rtp_sent={} rtp_received={} lost_pct={:.3} late_pct={:.3}",
        report.attempted,
        report.bridged,
        report.completed,
        report.failed,
        wall,
        cores,
        cpu_pct,
        if cpu_pct > 0.0 { report.bridged as f64 / (cpu_pct / 100.0) } else { 0.0 },
        (at_end.1 - rss_idle).max(0.0) / bridged,
        report.rtp_sent,
        report.rtp_received,
        report.rtp_lost as f64 / expected * 100.0,
        report.rtp_late as f64 / expected * 100.0,
    );
    Ok(())
}
