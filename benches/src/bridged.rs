//! Bridged-call load against a release node: N callers, each connected by the
//! node to an agent that the load generator also plays, held together for T
//! seconds while node CPU and memory are sampled.

use std::time::{Duration, Instant};

use hookline_tests::{free_udp_port, NodeSpec, TestNode};

use crate::loadgen::{self, LoadConfig, LoadReport, Phase};
use crate::mem_parts::{self, MemParts};
use crate::proc_stats::{cpu_seconds, pss_mib, rss_mib};

/// What one run measured.
pub struct Bridged {
    pub report: LoadReport,
    pub held_s: f64,
    pub cpu_pct: f64,
    pub rss_idle_mib: f64,
    pub rss_loaded_mib: f64,
    /// Proportional set size idle and loaded (see `proc_stats::pss_mib`).
    pub pss_idle_mib: f64,
    pub pss_loaded_mib: f64,
    /// Media ticks the node started late during the window.
    pub late_ticks: f64,
    /// Memory by part, settled idle and at the end of the window.
    pub mem_idle: MemParts,
    pub mem_loaded: MemParts,
}

impl Bridged {
    pub fn calls_per_core(&self) -> f64 {
        self.per_core(self.report.bridged)
    }

    pub fn rss_mib_per_call(&self) -> f64 {
        self.rss_mib_each(self.report.bridged)
    }

    /// Memory per call counted by PSS, in KiB.
    pub fn kib_per_call(&self) -> f64 {
        (self.pss_loaded_mib - self.pss_idle_mib).max(0.0) * 1024.0
            / self.report.bridged.max(1) as f64
    }

    /// `n` things held (calls, callers, participants) per core of node CPU.
    pub fn per_core(&self, n: usize) -> f64 {
        if self.cpu_pct > 0.0 {
            n as f64 / (self.cpu_pct / 100.0)
        } else {
            0.0
        }
    }

    /// Node memory grown under load, per each of `n` things held.
    pub fn rss_mib_each(&self, n: usize) -> f64 {
        (self.rss_loaded_mib - self.rss_idle_mib).max(0.0) / n.max(1) as f64
    }

    pub fn lost_pct(&self) -> f64 {
        self.report.lost_pct()
    }

    pub fn late_pct(&self) -> f64 {
        self.report.late_pct()
    }

    /// `mem_kib_per_call=… plugin=… heap=… other=…` per bridged call.
    pub fn mem_fields(&self) -> String {
        self.mem_loaded
            .per_call_fields(&self.mem_idle, self.report.bridged)
    }

    /// The media figures of [`crate::media_fields`].
    pub fn media_fields(&self) -> String {
        crate::media_fields(&self.report, self.late_ticks)
    }
}

/// Runs `calls` bridged calls for `seconds`; `config` is TOML placed before the
/// node's routes (e.g. a `[codecs]` table); `opus_agents` as in [`LoadConfig`].
pub fn run(
    config: &str,
    calls: usize,
    seconds: u64,
    cps: u32,
    opus_agents: Option<Vec<u8>>,
) -> anyhow::Result<Bridged> {
    // The route connects every caller straight to the agent side of the generator.
    let routes = |agent_port: u16| {
        format!(
            "{config}\n[[routes]]\nnumber = \"bridge\"\nplugin = \"ivr\"\nconfig = {{ fallback = {{ name = \"agent\", dial = [\"sip:agent@127.0.0.1:{agent_port}\"], dial_timeout_ms = 20000 }} }}\n"
        )
    };
    run_scenario(routes, "bridge", calls, seconds, cps, opus_agents, 0).map(|(b, _)| b)
}

/// Like [`run`] with the node's routes made by `routes` from the agents'
/// SIP port, callers dialling `service` (in groups, as in [`LoadConfig`]);
/// the node is returned still running.
pub fn run_scenario(
    routes: impl FnOnce(u16) -> String,
    service: &str,
    calls: usize,
    seconds: u64,
    cps: u32,
    opus_agents: Option<Vec<u8>>,
    group_size: usize,
) -> anyhow::Result<(Bridged, TestNode)> {
    let agent_port = free_udp_port();
    let routes = routes(agent_port);
    // `HOOKLINE_BENCH_NODE`: more `[node]` settings, for A/B runs of a knob.
    let node_section = format!(
        "max_calls = {}\nmedia_threads = 0\n{}",
        calls + 100,
        std::env::var("HOOKLINE_BENCH_NODE").unwrap_or_default()
    );
    let span = (calls as u16)
        .saturating_mul(4)
        .saturating_add(200)
        .min(25000);
    let node = TestNode::start(NodeSpec {
        profile: "release",
        extra_routes: &routes,
        node_section: Some(&node_section),
        rtp_ports: (30000, 30000 + span),
        ..NodeSpec::default()
    })?;
    let pid = node.pid();
    // Measure a settled node: its start-up work (recognizer, Piper worker) is not the load.
    crate::proc_stats::wait_until_machine_idle(Duration::from_secs(60));
    let rss_idle = rss_mib(pid);
    let pss_idle = pss_mib(pid);
    let pools = mem_parts::pools(pid);
    let mem_idle = mem_parts::parts(pid, &pools);
    let mut mem_loaded = mem_idle;
    let late = || node.metric(crate::LATE_TICKS).unwrap_or(f64::NAN);
    let mut at_start = (0.0, 0.0, Instant::now(), 0.0, 0.0);
    let mut at_end = at_start;
    let report = loadgen::run(
        &LoadConfig {
            answer_calls: true,
            sip_port: agent_port,
            opus_agents,
            opus_callers: None,
            group_size,
            // Calls' 20 ms cadences are independent in real traffic: by
            // default the legs send in 10 groups 2 ms apart, not all in one
            // instant (`--phases 1`: the worst burst).
            phases: crate::arg("--phases", 10) as u32,
            ..LoadConfig::callers(node.sip, service, calls, Duration::from_secs(seconds), cps)
        },
        |phase| {
            let sample = (
                cpu_seconds(pid),
                rss_mib(pid),
                Instant::now(),
                late(),
                pss_mib(pid),
            );
            match phase {
                Phase::HoldStart => at_start = sample,
                Phase::HoldEnd => {
                    at_end = sample;
                    mem_loaded = mem_parts::parts(pid, &pools);
                }
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
    }
    let held_s = (at_end.2 - at_start.2).as_secs_f64().max(1e-9);
    Ok((
        Bridged {
            cpu_pct: (at_end.0 - at_start.0) / held_s * 100.0,
            held_s,
            rss_idle_mib: rss_idle,
            rss_loaded_mib: at_end.1,
            pss_idle_mib: pss_idle,
            pss_loaded_mib: at_end.4,
            late_ticks: at_end.3 - at_start.3,
            mem_idle,
            mem_loaded,
            report,
        },
        node,
    ))
}
