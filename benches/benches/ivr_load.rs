//! Concurrent IVR calls: N calls held for T seconds with media both ways, the
//! plugin parked in a barge-in prompt listening for DTMF.
//!
//! `cargo bench -p hookline-benches --bench ivr_load -- --calls 200 --seconds 20 --cps 200`
//! The last line is the summary, e.g.
//! `bench=ivr_calls calls_attempted=200 calls_completed=200 ... lost_pct=0.000 late_pct=0.000`

use std::time::Duration;

use hookline_benches::loadgen::{self, LoadConfig, Phase};
use hookline_benches::proc_stats::{cpu_seconds, rss_mib};
use hookline_tests::{NodeSpec, TestNode};

/// The IVR keeps every call in a long barge-in menu: prompts play, DTMF is listened for.
const ROUTE: &str = r#"[[routes]]
number = "load"
plugin = "ivr"
config = { greeting = [], menu = ["welcome", "main_menu", "sales", "support", "operator"], invalid = [], no_input = [], attempts = 100000, timeout_ms = 20, options = [{ digit = "1", name = "sales" }], fallback = { name = "none" } }
"#;

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 200) as usize;
    let seconds = hookline_benches::arg("--seconds", 20);
    let cps = hookline_benches::arg("--cps", 200) as u32;
    let node_section = format!("max_calls = {}\nmedia_threads = 0", calls + 100);
    let span = (calls as u16)
        .saturating_mul(2)
        .saturating_add(200)
        .min(20000);
    let node = TestNode::start(NodeSpec {
        profile: "release",
        extra_routes: ROUTE,
        node_section: Some(&node_section),
        rtp_ports: (40000, 40000 + span),
        ..NodeSpec::default()
    })?;
    let pid = node.pid();
    // Measure a settled node: its start-up work (recognizer, Piper worker) is not the load.
    hookline_benches::proc_stats::wait_until_machine_idle(Duration::from_secs(60));
    let rss_idle = rss_mib(pid);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    let mut at_start = (0.0, 0.0, std::time::Instant::now());
    let mut at_end = at_start;
    let report = loadgen::run(
        &LoadConfig {
            node: node.sip,
            service: "load".into(),
            calls,
            hold: Duration::from_secs(seconds),
            cps,
            answer_calls: false,
            sip_port: 0,
            opus_agents: None,
            group_size: 0,
        },
        |phase| {
            let sample = (cpu_seconds(pid), rss_mib(pid), std::time::Instant::now());
            match phase {
                Phase::HoldStart => at_start = sample,
                Phase::HoldEnd => at_end = sample,
            }
        },
    )?;
    if report.completed < report.answered {
        std::thread::sleep(Duration::from_secs(2));
        let calls = node.calls_limit(calls + 10)?;
        let mut causes = std::collections::BTreeMap::new();
        for c in &calls {
            *causes.entry(c["hangup_cause"].to_string()).or_insert(0) += 1;
        }
        eprintln!(
            "{} calls not completed; node's hangup causes: {causes:?}",
            report.answered - report.completed
        );
    }
    if report.failed > 0 {
        let logs = node.logs();
        let tail: Vec<&str> = logs.lines().rev().take(20).collect();
        eprintln!(
            "{} calls failed; node log tail:\n{}",
            report.failed,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let wall = (at_end.2 - at_start.2).as_secs_f64().max(1e-9);
    let cpu_pct = (at_end.0 - at_start.0) / wall * 100.0;
    let up = report.answered.max(1) as f64;
    let rss_per_call = (at_end.1 - rss_idle).max(0.0) / up;
    let per_core = if cpu_pct > 0.0 {
        report.answered as f64 / (cpu_pct / 100.0)
    } else {
        0.0
    };
    let received_expected = (report.rtp_received + report.rtp_lost).max(1) as f64;
    println!(
        "held {} calls for {:.1} s; node idle RSS {:.1} MiB, loaded {:.1} MiB; setup {:.1} ms avg; {} ended by node",
        report.answered, wall, rss_idle, at_end.1, report.setup_ms_avg, report.ended_by_node
    );
    println!(
        "bench=ivr_calls calls_attempted={} calls_completed={} calls_failed={} held_s={:.1} cores={} node_cpu_pct={:.1} \
         calls_per_core={:.0} rss_mib_per_call={:.3} rtp_sent={} rtp_received={} lost_pct={:.3} late_pct={:.3}",
        report.attempted,
        report.completed,
        report.failed,
        wall,
        cores,
        cpu_pct,
        per_core,
        rss_per_call,
        report.rtp_sent,
        report.rtp_received,
        report.rtp_lost as f64 / received_expected * 100.0,
        report.rtp_late as f64 / received_expected * 100.0,
    );
    Ok(())
}
