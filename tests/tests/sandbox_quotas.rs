//! A plugin that uses what it was granted without restraint costs its own
//! call a quota error, never the node: kv, log lines, speech, HTTP requests
//! and counters are bounded per plugin, the node's own API and metadata
//! addresses are out of HTTP's reach, and a plugin that lingers after its
//! caller hung up gives the call's capacity and media back at once and is
//! ended after the grace period. The node's memory and data directory stay
//! within stated bounds (printed).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use hookline_tests::{path_of, plugin_wasm, NodeSpec, SipUa, TestNode};

/// A local web service a plugin is granted (its webhook, its CRM): answers
/// every request with 200 and 1 KiB, and counts them.
fn web_service() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut s = s;
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = "x".repeat(1024);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

fn greedy_call(node: &TestNode, ua: &SipUa, mode_number: &str) -> Vec<String> {
    let id = format!("greedy-{mode_number}-{}", rand_id());
    ua.call(&id, mode_number, 9)
        .unwrap_or_else(|e| panic!("{mode_number}: {e}\n{}", node.logs()));
    let call = node
        .wait_for_call(Duration::from_secs(60), |c| {
            c["id"] == id && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    println!("{mode_number}: {path:?}");
    path
}

fn rand_id() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn step<'a>(path: &'a [String], prefix: &str) -> &'a str {
    path.iter()
        .find(|p| p.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}… in {path:?}"))
}

#[test]
fn a_greedy_plugin_meets_its_quotas_and_the_node_stays_within_bounds() {
    let (web_port, hits) = web_service();
    let greedy = plugin_wasm("hookline-test-greedy");
    assert!(
        greedy.exists(),
        "{} is missing: run the README's test command",
        greedy.display()
    );
    let mut routes = format!(
        "[[plugins]]\nname = \"greedy\"\npath = \"{}\"\ngrants = [\"kv\", \"http:127.0.0.1\", \"http:localhost\", \"http:169.254.169.254\"]\n\
         quotas = {{ kv_bytes = 2097152, tts_chars_per_call = 120 }}\n\n",
        greedy.display()
    );
    let modes = [
        ("g-kv", "kv".to_string()),
        ("g-log", "log".to_string()),
        ("g-say", "say".to_string()),
        ("g-counters", "counters".to_string()),
        ("g-http", format!("http:http://127.0.0.1:{web_port}/hook")),
        ("g-web", format!("fetch:http://127.0.0.1:{web_port}/crm")),
        ("g-linger", "linger".to_string()),
    ];
    for (number, mode) in &modes {
        routes.push_str(&format!(
            "[[routes]]\nnumber = \"{number}\"\nplugin = \"greedy\"\nconfig = \"{mode}\"\n\n"
        ));
    }
    // Filled in once the node's API port is known: it must be out of reach.
    routes.push_str(
        "[[routes]]\nnumber = \"g-api\"\nplugin = \"greedy\"\nconfig = \"fetch:API\"\n\n",
    );
    routes.push_str(
        "[[routes]]\nnumber = \"g-api-name\"\nplugin = \"greedy\"\nconfig = \"fetch:APINAME\"\n\n",
    );
    routes.push_str(
        "[[routes]]\nnumber = \"g-meta\"\nplugin = \"greedy\"\nconfig = \"fetch:http://169.254.169.254/latest/meta-data/\"\n\n",
    );
    let node = start_with_api_routes(&routes);
    let ua = SipUa::new(node.sip).unwrap();
    let rss0 = node.settled_rss_kib().unwrap();
    let data0 = node.data_bytes();
    let log0 = std::fs::metadata(&node.log).map(|m| m.len()).unwrap_or(0);
    // A healthy caller in the IVR while the greedy calls run: it gets its menu and its branch.
    let healthy = std::thread::scope(|s| {
        let healthy = s.spawn(|| {
            hookline_tests::sipp(
                &node,
                "uac_ivr_dtmf.xml",
                "100",
                &[("rtp_sink", "9".into())],
            )
        });
        greedy_calls(&node, &ua, &hits);
        healthy.join().unwrap()
    });
    healthy.unwrap_or_else(|e| panic!("the healthy call failed beside the greedy ones: {e}"));
    hookline_tests::sipp_reached_support(&node);
    let log_growth = std::fs::metadata(&node.log).map(|m| m.len()).unwrap_or(0) - log0;

    // Linger: the caller hangs up; capacity and media come back at once,
    // while the plugin still runs; it is ended after the 2 s grace.
    let id = format!("greedy-linger-{}", rand_id());
    let tag = ua.call(&id, "g-linger", 9).unwrap();
    assert!(
        hookline_tests::wait_until(Duration::from_secs(5), || node
            .metric("hookline_active_calls")
            .unwrap()
            == 1.0),
        "the lingering call was never counted active"
    );
    ua.request("BYE", &id, &tag, 2, "", "").unwrap();
    let hung = Instant::now();
    let mut freed = None;
    while hung.elapsed() < Duration::from_millis(1500) {
        if node.metric("hookline_active_calls").unwrap() == 0.0
            && node.metric("hookline_media_legs").unwrap() == 0.0
        {
            freed = Some(hung.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let freed = freed.unwrap_or_else(|| panic!("capacity and media not given back at hang-up"));
    println!("linger: capacity and media back {freed:?} after the BYE");
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == id && c["hangup_cause"].is_string()
        })
        .unwrap();
    let ended = hung.elapsed();
    let path = path_of(&call);
    assert!(
        path.contains(&"greedy:linger:hung-up".to_string()),
        "{path:?}"
    );
    assert!(
        ended >= Duration::from_millis(1800),
        "ended {ended:?} after the BYE: {path:?}"
    );
    assert!(
        ended < Duration::from_secs(6),
        "ended {ended:?} after the BYE"
    );

    // What all that cost the node.
    let rss = node.rss_kib().unwrap();
    let data = node.data_bytes();
    println!(
        "bounds: node RSS {rss0} -> {rss} KiB (+{} KiB), data directory +{} KiB, log +{} KiB",
        rss.saturating_sub(rss0),
        data.saturating_sub(data0) / 1024,
        log_growth / 1024
    );
    assert!(
        rss.saturating_sub(rss0) < 128 * 1024,
        "RSS grew {} KiB",
        rss - rss0
    );
    assert!(
        data.saturating_sub(data0) < 8 << 20,
        "data directory grew {} bytes",
        data - data0
    );
    assert!(log_growth < 256 << 10, "log grew {log_growth} bytes");
}

/// Every greedy call but the lingering one, with what each must come to.
fn greedy_calls(node: &TestNode, ua: &SipUa, hits: &std::sync::atomic::AtomicUsize) {
    // kv: refused with quota-exceeded at 2 MiB (34 values of 60 KiB), earlier ones kept.
    let path = greedy_call(node, ua, "g-kv");
    let kv = step(&path, "greedy:kv:");
    assert!(kv.ends_with(":quota-exceeded"), "{kv}");
    let n: usize = kv.split(':').nth(2).unwrap().parse().unwrap();
    assert!((30..=35).contains(&n), "{kv}");

    // log: 100,000 lines asked, about 20 a second written, and one line saying so.
    let t = Instant::now();
    greedy_call(node, ua, "g-log");
    let logs = node.logs();
    assert!(logs.contains("log lines dropped"), "no drop notice");
    let lines = logs.matches("greedy log line").count() as u64;
    assert!(
        lines <= 20 * (t.elapsed().as_secs() + 2),
        "{lines} log lines in {:?}",
        t.elapsed()
    );

    // Speech: refused past 120 characters a call, the synthesiser never asked for more.
    let path = greedy_call(node, ua, "g-say");
    let say = step(&path, "greedy:say:");
    assert!(say.ends_with(":quota-exceeded"), "{say}");
    let n: usize = say.split(':').nth(2).unwrap().parse().unwrap();
    assert!((2..=4).contains(&n), "{say}");

    // Counters: 1,000 names asked, 100 kept.
    greedy_call(node, ua, "g-counters");
    let (_, metrics) =
        hookline_tests::http_get(node.http, "/metrics", node.token.as_deref()).unwrap();
    let kept = metrics.matches("plugin=\"greedy\"").count();
    assert_eq!(kept, 100, "counters kept");

    // HTTP: 50 requests a call, then quota-exceeded; the service saw 50.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let path = greedy_call(node, ua, "g-http");
    assert_eq!(step(&path, "greedy:http:"), "greedy:http:50:quota-exceeded");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst) - before, 50);

    // A granted local service on its own port is reachable …
    let path = greedy_call(node, ua, "g-web");
    assert_eq!(step(&path, "greedy:fetch:"), "greedy:fetch:status-200");
    // … the node's own API is not (by address or by name), nor the metadata address.
    for number in ["g-api", "g-api-name", "g-meta"] {
        let path = greedy_call(node, ua, number);
        assert_eq!(
            step(&path, "greedy:fetch:"),
            "greedy:fetch:not-allowed",
            "{number}"
        );
    }
}

/// Starts the node with `fetch:API` routes pointing at its own API port.
fn start_with_api_routes(routes: &str) -> TestNode {
    let port = hookline_tests::free_tcp_port();
    let r = routes
        .replace(
            "fetch:APINAME",
            &format!("fetch:http://localhost:{port}/api/calls"),
        )
        .replace(
            "fetch:API",
            &format!("fetch:http://127.0.0.1:{port}/api/calls"),
        );
    TestNode::start(NodeSpec {
        extra_routes: &r,
        node_section: Some("plugin_cpu_ms = 60000\nhangup_grace_s = 2"),
        http_port: Some(port),
        ..NodeSpec::default()
    })
    .unwrap()
}
