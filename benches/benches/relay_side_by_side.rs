//! Bridged calls through the node and through rtpengine, side by side in one
//! run, on the same machine with the same load generator and workload.
//!
//! Workload: N calls, each a caller and an agent leg; each leg sends one
//! 20 ms A-law packet every 20 ms (50 packets per call per second each way),
//! legs in `--phases` groups spread over the 20 ms (default 10); held T
//! seconds. The node's calls are set up over SIP (the bridge route dials the
//! generator's agent side); rtpengine's over its ng protocol (offer/answer,
//! as Kamailio's module does). Only the held window is measured: relay CPU
//! from /proc, memory as PSS grown from the settled idle process.
//!
//! rtpengine runs userspace only (Debian's `rtpengine-daemon`; no kernel
//! module here) with as many threads as the machine has cores.
//!
//! The two run in `--rounds` pairs (3 by default), each pair's order
//! alternating; `ratio_calls_per_core` is the median pair's (its fields are
//! the ones shown), every pair's in `ratio_calls_per_core_rounds`.
//!
//! `cargo bench -p hookline-benches --bench relay_side_by_side -- --calls 500 --seconds 20 [--rounds 3]`
//! Last line: `bench=relay_side_by_side ... ratio_calls_per_core=X ...`

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use hookline_benches::loadgen::{self, LoadConfig, LoadReport, Phase};
use hookline_benches::proc_stats::{cpu_seconds, pss_mib, wait_until_machine_idle};
use hookline_benches::rtpengine::Rtpengine;

struct Relay {
    report: LoadReport,
    cpu_pct: f64,
    kib_per_call: f64,
}

impl Relay {
    fn calls_per_core(&self) -> f64 {
        self.report.bridged as f64 / (self.cpu_pct / 100.0).max(1e-9)
    }

    fn fields(&self, who: &str) -> String {
        let d = &self.report.delays;
        format!(
            "{who}_calls={} {who}_cpu_pct={:.1} {who}_calls_per_core={:.0} {who}_kib_per_call={:.0} {who}_lost_pct={:.3} {who}_latency_p50_ms={:.2} {who}_latency_p99_ms={:.2} {who}_jitter_p99_ms={:.2}",
            self.report.bridged,
            self.cpu_pct,
            self.calls_per_core(),
            self.kib_per_call,
            self.report.lost_pct(),
            d.latency_ms(50.0),
            d.latency_ms(99.0),
            d.jitter_ms(99.0),
        )
    }
}

fn rtpengine(calls: usize, seconds: u64, phases: u32, cores: usize) -> anyhow::Result<Relay> {
    let span = (calls as u16)
        .saturating_mul(4)
        .saturating_add(200)
        .min(25000);
    let mut rtp = Rtpengine::start(cores, (40000, 40000 + span))?;
    let pid = rtp.pid();
    wait_until_machine_idle(Duration::from_secs(30));
    let pss_idle = pss_mib(pid);
    let mut at = [(0.0, Instant::now(), 0.0); 2];
    let cfg = LoadConfig {
        answer_calls: true,
        phases,
        ..LoadConfig::callers(
            "127.0.0.1:9".parse()?,
            "",
            calls,
            Duration::from_secs(seconds),
            1000,
        )
    };
    let ids: Vec<String> = (0..calls).map(|i| format!("side-{i}")).collect();
    let mut setup_err = None;
    let report = loadgen::run_relayed(
        &cfg,
        |port| {
            let peer = SocketAddrV4::new([127, 0, 0, 1].into(), port);
            ids.iter()
                .map(|id| rtp.bridge(id, peer))
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(|e| {
                    setup_err = Some(e.to_string());
                    std::io::Error::other("rtpengine setup")
                })
        },
        |phase| {
            let k = (phase == Phase::HoldEnd) as usize;
            at[k] = (cpu_seconds(pid), Instant::now(), pss_mib(pid));
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}: {setup_err:?}"))?;
    for id in &ids {
        rtp.delete(id)?;
    }
    let held = (at[1].1 - at[0].1).as_secs_f64().max(1e-9);
    Ok(Relay {
        cpu_pct: (at[1].0 - at[0].0) / held * 100.0,
        kib_per_call: (at[1].2 - pss_idle).max(0.0) * 1024.0 / report.bridged.max(1) as f64,
        report,
    })
}

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 500) as usize;
    let seconds = hookline_benches::arg("--seconds", 20);
    let phases = hookline_benches::arg("--phases", 10) as u32;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rounds = hookline_benches::arg("--rounds", 3) as usize;
    let pairs = hookline_benches::rounds::alternate(
        rounds,
        || {
            let b = hookline_benches::bridged::run("", calls, seconds, 200, None)?;
            let mem = b
                .mem_fields()
                .replace("mem_kib_per_call", "node_mem_kib_per_call")
                .replace(" plugin=", " node_mem_plugin=")
                .replace(" heap=", " node_mem_heap=")
                .replace(" other=", " node_mem_other=");
            let ours = Relay {
                cpu_pct: b.cpu_pct,
                kib_per_call: b.kib_per_call(),
                report: b.report,
            };
            println!("node: {}", ours.fields("node"));
            Ok((ours, mem))
        },
        || {
            let theirs = rtpengine(calls, seconds, phases, cores)?;
            println!("rtpengine: {}", theirs.fields("rtpengine"));
            Ok(theirs)
        },
        |(ours, _), theirs| ours.calls_per_core() / theirs.calls_per_core().max(1e-9),
    )?;
    let median = pairs.median();
    let ((ours, node_mem), theirs) = (&median.ours, &median.theirs);
    println!(
        "bench=relay_side_by_side calls={calls} seconds={seconds} phases={phases} cores={cores} pkts_per_call_per_s_each_way=50 {} {node_mem} {} ratio_calls_per_core={:.2} ratio_calls_per_core_rounds={} ratio_kib_per_call={:.2} {}",
        ours.fields("node"),
        theirs.fields("rtpengine"),
        median.ratio,
        pairs.ratios(),
        ours.kib_per_call / theirs.kib_per_call.max(1e-9),
        hookline_benches::proc_stats::host_fields()
    );
    Ok(())
}
