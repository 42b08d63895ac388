//! A queue with many waiting callers and a few agents: callers join at
//! `--cps`, 50 agents (the load generator's answering side, as SIP URIs in
//! the group, rung in turn) take the first 50, the rest wait on the shared
//! hold music with position announcements every 20 s. Measured while all
//! are in: node CPU, memory per caller, media loss and lateness, and how
//! late announcements came against their schedule. The generator's agents
//! never hang up, so during the hold 50 callers talk and the rest wait;
//! agents freed while callers leave at the end take the next in line.
//!
//! `cargo bench -p hookline-benches --bench queue_load -- --calls 1000 --seconds 40`
//! Last line: `bench=queue calls=N agents=50 node_cpu_pct=.. rss_mib_per_caller=.. announce_late_ms_avg=.. ...`

use hookline_tests::http_get;

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 1000) as usize;
    let seconds = hookline_benches::arg("--seconds", 40);
    let cps = hookline_benches::arg("--cps", 100) as u32;
    let agents = hookline_benches::arg("--agents", 50) as usize;
    let routes = |port: u16| {
        let members: Vec<String> = (1..=agents)
            .map(|i| format!("\"sip:agent{i}@127.0.0.1:{port}\""))
            .collect();
        format!(
            "[[groups]]\nname = \"agents\"\nstrategy = \"uniform\"\nstep_s = 5\nmembers = [{}]\n\n\
             [[queues]]\nname = \"q\"\nnumber = \"700\"\ngroup = \"agents\"\nannounce_s = 20\nmax_wait_s = 3600\nmax_len = 100000\nring_s = 10\n\n\
             [[routes]]\nnumber = \"700\"\nplugin = \"ivr\"\nconfig = {{ fallback = {{ name = \"queue\", dial = [\"q\"], dial_timeout_ms = 3600000 }} }}\n",
            members.join(", ")
        )
    };
    let (b, node) =
        hookline_benches::bridged::run_scenario(routes, "700", calls, seconds, cps, None, 0)?;
    let (_, metrics) = http_get(node.http, "/metrics", None)?;
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("hookline_queue_{name}{{queue=\"q\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    let r = &b.report;
    // How the agents' legs ended, from the call records.
    let mut causes = std::collections::BTreeMap::<String, usize>::new();
    for c in node.calls_limit(10_000)? {
        if c["parent"].is_string() {
            let cause = c["hangup_cause"]
                .as_str()
                .unwrap_or("in progress")
                .to_string();
            *causes.entry(cause).or_default() += 1;
        }
    }
    eprintln!("agent legs by how they ended: {causes:?}");
    if r.answered < r.attempted {
        eprintln!(
            "{} of {} callers were not let in ({} failed); last records: {:#?}",
            r.attempted - r.answered,
            r.attempted,
            r.failed,
            node.calls_limit(1)?
        );
        let logs = node.logs();
        let problems: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(10)
            .collect();
        eprintln!("node warnings:\n{}", problems.join("\n"));
    }
    let per_caller = b.rss_mib_each(r.answered);
    println!(
        "{} callers in ({} agent legs answered over the run, teardown included), held {:.1} s; node CPU {:.1} %, RSS {:.1} -> {:.1} MiB; \
         {} announcements, {:.0} ms late on average, {:.0} ms at most",
        r.answered,
        r.bridged,
        b.held_s,
        b.cpu_pct,
        b.rss_idle_mib,
        b.rss_loaded_mib,
        metric("announcements_total"),
        metric("announce_late_ms_avg"),
        metric("announce_late_ms_max")
    );
    println!(
        "bench=queue calls={} callers_in={} agent_legs={} agents={agents} held_s={:.1} node_cpu_pct={:.1} \
         rss_mib_per_caller={:.3} {} announcements={} announce_late_ms_avg={} announce_late_ms_max={}",
        r.attempted,
        r.answered,
        r.bridged,
        b.held_s,
        b.cpu_pct,
        per_caller,
        b.media_fields(),
        metric("announcements_total"),
        metric("announce_late_ms_avg"),
        metric("announce_late_ms_max")
    );
    Ok(())
}
