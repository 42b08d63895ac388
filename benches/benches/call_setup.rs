//! Call setups per second through the full path: INVITE, 100/180/200 with the
//! IVR plugin instantiated and answering, ACK, BYE, 200, call record written.
//!
//! `cargo bench -p hookline-benches --bench call_setup -- --calls 6000 --cps 600`
//! Last line: `bench=call_setups ... achieved_cps=X node_cpu_pct=Y cpu_ms_per_call=Z`

use std::time::Duration;

use hookline_benches::loadgen::{self, LoadConfig};
use hookline_benches::proc_stats::cpu_seconds;
use hookline_tests::{NodeSpec, TestNode};

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 6000) as usize;
    let cps = hookline_benches::arg("--cps", 600) as u32;
    let node_section = format!("max_calls = {}", calls + 100);
    let node = TestNode::start(NodeSpec {
        profile: "release",
        node_section: Some(&node_section),
        rtp_ports: (40000, 59999),
        ..NodeSpec::default()
    })?;
    let pid = node.pid();
    // Measure a settled node: its start-up work (recognizer, Piper worker) is not the load.
    hookline_benches::proc_stats::wait_until_machine_idle(Duration::from_secs(60));
    let cpu0 = cpu_seconds(pid);
    let (report, took) = loadgen::run_setups(&LoadConfig::callers(
        node.sip,
        "100",
        calls,
        Duration::ZERO,
        cps,
    ))?;
    let cpu = cpu_seconds(pid) - cpu0;
    let secs = took.as_secs_f64().max(1e-9);
    // A setup counts when its record was written too: answered and ended by
    // the caller's BYE. Records are written in batches; wait for the last.
    let recorded = || -> usize {
        node.calls_limit(calls + 10)
            .map(|records| {
                records
                    .iter()
                    .filter(|c| {
                        c["caller"] == "load"
                            && c["answered_at"].is_string()
                            && c["hangup_cause"] == "caller-bye"
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    hookline_tests::wait_until(Duration::from_secs(30), || recorded() >= report.completed);
    let recorded = recorded();
    let completed = report.completed.min(recorded);
    println!(
        "bench=call_setups calls_attempted={} calls_completed={completed} bye_200={} calls_recorded={recorded} calls_failed={} \
         target_cps={} achieved_cps={:.0} setup_ms_avg={:.2} node_cpu_pct={:.1} cpu_ms_per_call={:.3}",
        report.attempted,
        report.completed,
        report.failed,
        cps,
        completed as f64 / secs,
        report.setup_ms_avg,
        cpu / secs * 100.0,
        cpu * 1000.0 / completed.max(1) as f64,
    );
    Ok(())
}
