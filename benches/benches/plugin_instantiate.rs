//! Plugin instantiate + first entry: a fresh instance of the sample IVR from its
//! `InstancePre` (pooling allocator), `handle-call` entered with the sample
//! IVR route's config, `answer` called; the call is already gone, so it
//! returns `hung-up` and the IVR returns ok (checked on every run).
//!
//! Two measures. As calls arrive (`--rate` a second, 2,000 by default): each
//! call timed alone, from the session handed to the plugin host to the
//! guest's return (p50 is the headline, p99 beside it); a spare instance made
//! by the warmer thread is usually ready, so this is the wait a caller sees;
//! the warmer has also called the IVR's `prepare` on it with the route's
//! config (host API 0.1.2), so the guest parsed it before the call came
//! (`prepared_hits`: calls whose spare was prepared with their own config).
//! Back to back (the old figure): calls in a row as fast as they go, where the
//! warmer cannot keep up, so most calls instantiate their own.
//! `cpu_us_per_call` is the process's CPU per call while calls arrive, less
//! what the idle node uses: what the call costs, wherever it is done.
//!
//! The noise floor: a fixed piece of arithmetic as long as the plugin's p50,
//! timed the same way in the same run, so the plugin's p99 can be read
//! against what this machine adds to any short timed work. And a memory
//! floor: a walk over 64 KiB of memory, one dependent load per cache line,
//! timed hot and after the same sleep, for what memory gone cold across the
//! sleep costs (the arithmetic floor touches none).
//!
//! Last line: `bench=plugin_instantiate iterations=N ... instantiate_first_entry_us=X p99_us=Y
//! warm_hits=H prepared_hits=R cpu_us_per_call=C back_to_back_us=B floor_p50_us=F floor_p99_us=G
//! walk_hot_us=H walk_after_sleep_us=S beside_warmer=W beside_warmer_p99_us=V alone_p99_us=A
//! call_path_faults_per_call=P faults_per_call=Q` (calls that ran while the
//! warmer ran a job, and the p99 of those and of the rest; minor page faults
//! per call while calls arrive: on the calls' own thread, and in the whole
//! process) `after_idle_p50_us=I after_idle_max_us=M` (the first 50 calls
//! after the node sat idle 5 s, timed apart from the steady run above)

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
    let back_to_back = us.map_err(|e| anyhow::anyhow!("the IVR did not return ok: {e}"))?;
    // Calls as they arrive: one every `gap` (a node sets up at most a few
    // thousand calls a second), so the warmer has made a spare for each.
    let rate = hookline_benches::arg("--rate", 2000).max(1);
    let gap = Duration::from_micros(1_000_000 / rate as u64);
    let pid = std::process::id();
    // What the idle node itself costs (its media ticks, the epoch thread),
    // to take out of the CPU per call.
    let idle = Duration::from_secs(5);
    let idle_before = hookline_benches::proc_stats::cpu_seconds(pid);
    std::thread::sleep(idle);
    let idle_cpu_per_s =
        (hookline_benches::proc_stats::cpu_seconds(pid) - idle_before) / idle.as_secs_f64();
    // The first calls after the node sat idle find caches, TLB and branch
    // predictors cold (in one dump, nearly every one of the first ~35 calls
    // took 25-80 µs): timed apart, so the steady figure is steady arrivals
    // and the cost of resuming from idle is still on the summary line.
    let resume = rt
        .block_on(
            node.plugins
                .instantiate_latencies(&plugin, make, &info, RESUME_CALLS, gap, done),
        )
        .map_err(|e| anyhow::anyhow!("the IVR did not return ok: {e}"))?;
    let (resume_p50, _) = percentiles(resume.iter().map(|t| t.0).collect());
    let resume_max = resume.iter().map(|t| t.0).fold(0.0, f64::max);
    let hits_before = node.plugins.warm_hits();
    let prepared_before = node.plugins.prepared_hits();
    let started = std::time::Instant::now();
    let cpu_before = hookline_benches::proc_stats::cpu_seconds(pid);
    let faults = || {
        (
            hookline_benches::proc_stats::minor_faults("/proc/thread-self/stat"),
            hookline_benches::proc_stats::minor_faults(&format!("/proc/{pid}/stat")),
        )
    };
    let faults_before = faults();
    let timed = rt
        .block_on(
            node.plugins
                .instantiate_latencies(&plugin, make, &info, iterations, gap, done),
        )
        .map_err(|e| anyhow::anyhow!("the IVR did not return ok: {e}"))?;
    let cpu = hookline_benches::proc_stats::cpu_seconds(pid)
        - cpu_before
        - idle_cpu_per_s * started.elapsed().as_secs_f64();
    let warm = node.plugins.warm_hits() - hits_before;
    let prepared = node.plugins.prepared_hits() - prepared_before;
    // Page faults per call: on the calls' own thread (in the timed path)
    // and in the whole process (the warmer's included).
    let faults_after = faults();
    let per_call = |n: u64| n as f64 / iterations as f64;
    let call_faults = per_call(faults_after.0 - faults_before.0);
    let all_faults = per_call(faults_after.1 - faults_before.1);
    let (p50, p99) = percentiles(timed.iter().map(|t| t.0).collect());
    // Calls that ran while the warmer was making a spare or dropping a store
    // (on the other core, or preempting the call on its own), and the rest.
    let beside: Vec<f64> = timed.iter().filter(|t| t.1).map(|t| t.0).collect();
    let alone: Vec<f64> = timed.iter().filter(|t| !t.1).map(|t| t.0).collect();
    let (beside_n, alone_n) = (beside.len(), alone.len());
    let (beside_p50, beside_p99) = percentiles(beside);
    let (alone_p50, alone_p99) = percentiles(alone);
    // The process's CPU per call while calls arrived, less the idle node's:
    // the call's own path, the warmer making spares and dropping stores, and
    // the sleeps between calls (so an upper bound).
    let cpu_us = cpu * 1e6 / iterations as f64;
    let (floor_p50, floor_p99) = noise_floor(p50, iterations, gap);
    let (cold_hot, cold_p50) = memory_floor(iterations, gap);
    std::fs::remove_dir_all(&data).ok();
    eprintln!(
        "memory floor: a walk over {} KiB, one dependent load per 64-byte line: {cold_hot:.1} µs \
         hot, p50 {cold_p50:.1} µs after the same sleep",
        WALK_BYTES / 1024
    );
    eprintln!(
        "noise floor: a fixed {p50:.1} µs of arithmetic, timed the same way (after the same \
         sleep, same thread): p50 {floor_p50:.1} µs, p99 {floor_p99:.1} µs"
    );
    eprintln!(
        "calls that ran beside the warmer's work: {beside_n}, p50 {beside_p50:.1} µs, \
         p99 {beside_p99:.1}; alone: {alone_n}, p50 {alone_p50:.1}, p99 {alone_p99:.1}"
    );
    eprintln!(
        "the first {RESUME_CALLS} calls after {} s idle (not in the figures above): \
         p50 {resume_p50:.1} µs, max {resume_max:.1}",
        idle.as_secs()
    );
    eprintln!(
        "arrivals: {rate} calls/s, {warm} of {iterations} started on a spare instance; \
         back to back (no spare ready, store dropped by the warmer or inline): {back_to_back:.1} µs"
    );
    println!(
        "bench=plugin_instantiate iterations={iterations} outcomes_ok={iterations} rate_per_s={rate} \
         instantiate_first_entry_us={p50:.1} p99_us={p99:.1} warm_hits={warm} prepared_hits={prepared} \
         cpu_us_per_call={cpu_us:.1} back_to_back_us={back_to_back:.1} \
         floor_p50_us={floor_p50:.1} floor_p99_us={floor_p99:.1} \
         walk_hot_us={cold_hot:.1} walk_after_sleep_us={cold_p50:.1} \
         beside_warmer={beside_n} beside_warmer_p99_us={beside_p99:.1} alone_p99_us={alone_p99:.1} \
         call_path_faults_per_call={call_faults:.2} faults_per_call={all_faults:.2} \
         after_idle_p50_us={resume_p50:.1} after_idle_max_us={resume_max:.1} {}",
        hookline_benches::proc_stats::host_fields()
    );
    Ok(())
}

/// Calls timed apart right after the idle measurement, before the steady run.
const RESUME_CALLS: u32 = 50;

/// p50 and p99 (NaN for none).
fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.99))
}

/// What this machine adds to a short timed piece of work on its own: a
/// fixed amount of arithmetic (calibrated to take `target` µs hot) timed
/// after the same sleep between calls. Its p99 over its p50 is what the
/// VM's scheduling adds to a p99 (preemption, interrupts, a core's wake-up
/// after the sleep), measured in the same run so the plugin's p99 can be
/// read against it. It touches no memory, so cold caches are not in it:
/// those belong to the plugin's figure.
fn noise_floor(target_us: f64, n: u32, gap: Duration) -> (f64, f64) {
    fn work(rounds: u64) -> u64 {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..rounds {
            x = std::hint::black_box(x.rotate_left(7) ^ i).wrapping_mul(0x2545_f491_4f6c_dd1d);
        }
        x
    }
    // Calibrate hot: rounds per µs.
    let probe = 1_000_000;
    let t = std::time::Instant::now();
    std::hint::black_box(work(probe));
    let per_us = probe as f64 / (t.elapsed().as_secs_f64() * 1e6);
    let rounds = (per_us * target_us).max(1.0) as u64;
    let mut took = Vec::with_capacity(n as usize);
    let mut next = std::time::Instant::now();
    for _ in 0..n {
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        next += gap;
        let start = std::time::Instant::now();
        std::hint::black_box(work(rounds));
        took.push(start.elapsed().as_secs_f64() * 1e6);
    }
    percentiles(took)
}

/// Bytes the memory floor walks: about what a call's start might touch
/// (an instance's stacks, heap and tables, a few pages each; a guess, not
/// a measure of the call).
const WALK_BYTES: usize = 64 << 10;

/// What this machine adds to work that touches memory: a walk over
/// `WALK_BYTES`, one load per cache line in a shuffled order, each load's
/// address from the one before (so neither the prefetcher nor overlapping
/// loads hide a miss). Timed hot (walked twice in a row, the second timed)
/// and after the same sleep as the calls, on the same thread: the gap
/// between the two is what caches and TLB gone cold across the sleep cost
/// a walk of that size, which the arithmetic floor does not show.
fn memory_floor(n: u32, gap: Duration) -> (f64, f64) {
    let lines = WALK_BYTES / 64;
    let step = 64 / std::mem::size_of::<usize>();
    // A single cycle through all lines in a shuffled order (Sattolo).
    let mut order: Vec<usize> = (0..lines).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % i as u64) as usize);
    }
    let mut next = vec![0usize; lines * step];
    for i in 0..lines {
        next[i * step] = order[i] * step;
    }
    let walk = |next: &[usize]| {
        let mut at = 0;
        for _ in 0..lines {
            at = next[at];
        }
        std::hint::black_box(at)
    };
    let timed = |next: &[usize]| {
        let start = std::time::Instant::now();
        walk(next);
        start.elapsed().as_secs_f64() * 1e6
    };
    let mut hot = Vec::with_capacity(n as usize);
    for _ in 0..n.min(1000) {
        walk(&next);
        hot.push(timed(&next));
    }
    let mut after_sleep = Vec::with_capacity(n as usize);
    let mut due = std::time::Instant::now();
    for _ in 0..n {
        std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
        due += gap;
        after_sleep.push(timed(&next));
    }
    (percentiles(hot).0, percentiles(after_sleep).0)
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hookline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
