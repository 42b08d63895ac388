//! Concurrent IVR calls: N calls held for T seconds with media both ways, in
//! two variants reported side by side:
//! - `prompts`: A-law callers; the IVR keeps every call in a long barge-in
//!   menu of prompts played back to back, listening for DTMF.
//! - `sample`: A-law callers on the sample IVR route as shipped (spoken
//!   menu, speech recognition listening while it waits for an answer).
//! - `sample_opus`: the same with Opus callers.
//!
//! Workload: callers send one 20 ms packet per call each way every 20 ms (50
//! packets per call per second each way). Loss is against what should have
//! arrived (every 20 ms of the window on every call); `rtp_crossed` counts
//! the callers' own marked audio coming back (an echo).
//!
//! With `prompts`, the same load also runs against the reference server
//! (`src/bin/reference_ivr.rs`: drain each socket, one packet per call per
//! tick, batched sends) and `prompts_cpu_vs_reference` is the node's CPU per
//! call over the reference's: the median of `--rounds` pairs (3 by default),
//! each pair's order alternating, every pair's ratio in
//! `prompts_cpu_vs_reference_rounds`.
//!
//! `cargo bench -p hookline-benches --bench ivr_load -- --calls 200 --seconds 20 --cps 200 [--variant prompts|sample|sample_opus] [--rounds 3]`
//! The last line is the summary, e.g.
//! `bench=ivr_calls calls=200 prompts_calls_per_core=.. prompts_lost_pct=.. sample_opus_calls_per_core=.. ...`

use std::time::Duration;

use hookline_benches::loadgen::{self, LoadConfig, Phase};
use hookline_benches::proc_stats::{cpu_seconds, pss_mib, rss_mib};
use hookline_tests::{NodeSpec, TestNode};

/// The IVR keeps every call in a long barge-in menu: prompts play, DTMF is listened for.
const ROUTE: &str = r#"[[routes]]
number = "load"
plugin = "ivr"
config = { greeting = [], menu = ["welcome", "main_menu", "sales", "support", "operator"], invalid = [], no_input = [], attempts = 100000, timeout_ms = 20, options = [{ digit = "1", name = "sales" }], fallback = { name = "none" } }
"#;

struct Variant {
    name: &'static str,
    routes: &'static str,
    /// Dialled number ("500" reaches the sample config's catch-all IVR).
    service: &'static str,
    opus: bool,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        name: "prompts",
        routes: ROUTE,
        service: "load",
        opus: false,
    },
    Variant {
        name: "sample",
        routes: "",
        service: "500",
        opus: false,
    },
    Variant {
        name: "sample_opus",
        routes: "",
        service: "500",
        opus: true,
    },
];

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 200) as usize;
    let seconds = hookline_benches::arg("--seconds", 20);
    let cps = hookline_benches::arg("--cps", 200) as u32;
    let only = std::env::args().skip_while(|a| a != "--variant").nth(1);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rounds = hookline_benches::arg("--rounds", 3) as usize;
    let mut summary = format!("bench=ivr_calls calls={calls} held_s={seconds} cores={cores}");
    let mut against_reference = String::new();
    for v in VARIANTS
        .iter()
        .filter(|v| only.as_deref().is_none_or(|o| o == v.name))
    {
        if v.name != "prompts" {
            let (fields, _) = run_variant(v, calls, seconds, cps)?;
            summary.push(' ');
            summary.push_str(&fields);
            continue;
        }
        // The reference does the prompts variant's unavoidable work: the
        // ratio is the node's CPU per call over the reference's, in pairs
        // run in this run (see `rounds`); the median pair's fields are shown.
        let pairs = hookline_benches::rounds::alternate(
            rounds,
            || run_variant(v, calls, seconds, cps),
            || run_reference(calls, seconds, cps),
            |node, reference| node.1 / reference.1.max(1e-12),
        )?;
        let median = pairs.median();
        summary.push(' ');
        summary.push_str(&median.ours.0);
        against_reference = format!(
            " {} prompts_cpu_vs_reference={:.2} prompts_cpu_vs_reference_rounds={}",
            median.theirs.0,
            median.ratio,
            pairs.ratios()
        );
    }
    println!(
        "{summary}{against_reference} {}",
        hookline_benches::proc_stats::host_fields()
    );
    Ok(())
}

/// The reference server (`src/bin/reference_ivr.rs`) under the prompts
/// variant's load; returns its summary fields and its CPU per call (cores).
fn run_reference(calls: usize, seconds: u64, cps: u32) -> anyhow::Result<(String, f64)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reference_ivr"))
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("sip=")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("reference server said {line:?}"))?;
    let pid = child.id();
    hookline_benches::proc_stats::wait_until_machine_idle(Duration::from_secs(60));
    let pss_idle = pss_mib(pid);
    let mut at_start = (0.0, 0.0, std::time::Instant::now());
    let mut at_end = at_start;
    let report = loadgen::run(
        &LoadConfig::callers(
            ([127, 0, 0, 1], port).into(),
            "load",
            calls,
            Duration::from_secs(seconds),
            cps,
        ),
        |phase| {
            let sample = (cpu_seconds(pid), pss_mib(pid), std::time::Instant::now());
            match phase {
                Phase::HoldStart => at_start = sample,
                Phase::HoldEnd => at_end = sample,
            }
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    let report = report?;
    let wall = (at_end.2 - at_start.2).as_secs_f64().max(1e-9);
    let cpu_pct = (at_end.0 - at_start.0) / wall * 100.0;
    let up = report.answered.max(1) as f64;
    let kib_per_call = (at_end.1 - pss_idle).max(0.0) * 1024.0 / up;
    let per_core = report.answered as f64 / (cpu_pct / 100.0).max(1e-9);
    let fields = format!(
        "reference_calls_completed={} reference_cpu_pct={cpu_pct:.1} reference_calls_per_core={per_core:.0} \
         reference_kib_per_call={kib_per_call:.0} reference_lost_pct={:.3} reference_late_pct={:.3}",
        report.completed,
        report.lost_pct(),
        report.late_pct()
    );
    println!("reference: {fields}");
    Ok((fields, cpu_pct / 100.0 / up))
}

/// One node, one load; returns the variant's summary fields and its CPU per
/// call (cores).
fn run_variant(v: &Variant, calls: usize, seconds: u64, cps: u32) -> anyhow::Result<(String, f64)> {
    let node_section = format!("max_calls = {}\nmedia_threads = 0", calls + 100);
    let span = (calls as u16)
        .saturating_mul(2)
        .saturating_add(200)
        .min(20000);
    let node = TestNode::start(NodeSpec {
        profile: "release",
        extra_routes: v.routes,
        node_section: Some(&node_section),
        rtp_ports: (40000, 40000 + span),
        ..NodeSpec::default()
    })?;
    let pid = node.pid();
    // Measure a settled node: its start-up work (recognizer, Piper worker) is not the load.
    hookline_benches::proc_stats::wait_until_machine_idle(Duration::from_secs(60));
    let rss_idle = rss_mib(pid);
    let pss_idle = pss_mib(pid);
    let pools = hookline_benches::mem_parts::pools(pid);
    let mem_idle = hookline_benches::mem_parts::parts(pid, &pools);
    let mut mem_end = mem_idle;
    let opus = if v.opus {
        // Callers listen to the menu: near silence, as a real line carries.
        Some(hookline_benches::opus_quiet_packet()?)
    } else {
        None
    };
    let late = || {
        node.metric(hookline_benches::LATE_TICKS)
            .unwrap_or(f64::NAN)
    };
    let mut at_start = (0.0, 0.0, std::time::Instant::now(), 0.0, 0.0);
    let mut at_end = at_start;
    let report = loadgen::run(
        &LoadConfig {
            opus_callers: opus,
            // The sample IVR listens for speech: its callers are quiet, as
            // on a real line while a menu plays (a marker would be a click
            // every 20 ms, heard as someone talking).
            quiet: v.routes.is_empty(),
            ..LoadConfig::callers(
                node.sip,
                v.service,
                calls,
                Duration::from_secs(seconds),
                cps,
            )
        },
        |phase| {
            let sample = (
                cpu_seconds(pid),
                rss_mib(pid),
                std::time::Instant::now(),
                late(),
                pss_mib(pid),
            );
            match phase {
                Phase::HoldStart => at_start = sample,
                Phase::HoldEnd => {
                    at_end = sample;
                    mem_end = hookline_benches::mem_parts::parts(pid, &pools);
                }
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
    let rss_kib_per_call = (at_end.1 - rss_idle).max(0.0) * 1024.0 / up;
    let kib_per_call = (at_end.4 - pss_idle).max(0.0) * 1024.0 / up;
    let per_core = if cpu_pct > 0.0 {
        report.answered as f64 / (cpu_pct / 100.0)
    } else {
        0.0
    };
    let media = hookline_benches::media_fields(&report, at_end.3 - at_start.3);
    let mem = mem_end.per_call_fields(&mem_idle, report.answered);
    println!(
        "{}: held {} calls for {wall:.1} s; node idle RSS {rss_idle:.1} MiB, loaded {:.1} MiB; setup {:.1} ms avg; \
         {} ended by node\n{}: bench=ivr_calls calls_attempted={} calls_completed={} calls_failed={} node_cpu_pct={cpu_pct:.1} \
         calls_per_core={per_core:.0} kib_per_call={kib_per_call:.0} rss_kib_per_call={rss_kib_per_call:.0} {mem} rtp_sent={} {media}",
        v.name,
        report.answered,
        at_end.1,
        report.setup_ms_avg,
        report.ended_by_node,
        v.name,
        report.attempted,
        report.completed,
        report.failed,
        report.rtp_sent,
    );
    let fields = prefixed(
        v.name,
        &format!(
            "calls_completed={} calls_failed={} ended_by_node={} node_cpu_pct={cpu_pct:.1} calls_per_core={per_core:.0} \
             kib_per_call={kib_per_call:.0} rss_kib_per_call={rss_kib_per_call:.0} {mem} {media}",
            report.completed, report.failed, report.ended_by_node
        ),
    );
    Ok((fields, cpu_pct / 100.0 / up))
}

/// `a=1 b=2` → `v_a=1 v_b=2`.
fn prefixed(v: &str, fields: &str) -> String {
    fields
        .split_whitespace()
        .map(|f| format!("{v}_{f}"))
        .collect::<Vec<_>>()
        .join(" ")
}
