//! Concurrent bridged calls: N callers each connected by the node to an agent
//! (the load generator answers the node's outbound INVITEs too), media both
//! ways through the node's relay, held for T seconds.
//!
//! Workload: each leg (caller and agent) sends one 20 ms A-law packet every
//! 20 ms (50 packets per call per second each way); legs send in `--phases`
//! groups spread over the 20 ms (default 10). Latency and jitter are of
//! relayed packets: send stamp in the payload to the kernel's receive
//! timestamp; jitter is the difference between consecutive packets' latency.
//!
//! `cargo bench -p hookline-benches --bench bridge_load -- --calls 500 --seconds 20 [--phases 10]`
//! Last line: `bench=bridged_calls ... calls_per_core=X rss_mib_per_call=Y lost_pct=Z`

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 200) as usize;
    let seconds = hookline_benches::arg("--seconds", 20);
    let cps = hookline_benches::arg("--cps", 200) as u32;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let b = hookline_benches::bridged::run("", calls, seconds, cps, None)?;
    let r = &b.report;
    println!(
        "bridged {} of {} calls for {:.1} s; node idle RSS {:.1} MiB, loaded {:.1} MiB; setup {:.1} ms avg",
        r.bridged, r.attempted, b.held_s, b.rss_idle_mib, b.rss_loaded_mib, r.setup_ms_avg
    );
    println!(
        "bench=bridged_calls calls_attempted={} calls_bridged={} calls_completed={} calls_failed={} held_s={:.1} cores={} \
         node_cpu_pct={:.1} calls_per_core={:.0} kib_per_call={:.0} rss_mib_per_call={:.3} {} rtp_sent={} {} {}",
        r.attempted,
        r.bridged,
        r.completed,
        r.failed,
        b.held_s,
        cores,
        b.cpu_pct,
        b.calls_per_core(),
        b.kib_per_call(),
        b.rss_mib_per_call(),
        b.mem_fields(),
        r.rtp_sent,
        b.media_fields(),
        hookline_benches::proc_stats::host_fields(),
    );
    Ok(())
}
