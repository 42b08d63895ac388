//! The admin API against a stranger on the network: a crafted WAV upload,
//! changes without the token, a rebinding page's Host, token guessing, an
//! API exposed beyond loopback with no token, and error replies that would
//! reveal where the node keeps its files.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hookline_tests::{http_get, http_raw, http_request, wav_header, NodeSpec, TestNode};

/// A WAV header claiming `rate` Hz, mono 16-bit, and `data` bytes, with those bytes.
fn wav_claiming(rate: u32, data: usize) -> Vec<u8> {
    let mut v = wav_header(rate, 1, data as u32);
    v.resize(v.len() + data, 0);
    v
}

#[test]
fn a_crafted_wav_is_refused_from_its_header_and_the_node_lives() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let token = node.token.clone().unwrap();
    let rss0 = node.settled_rss_kib().unwrap();
    // The finding: 1 Hz made the decoder reach for ~64 GB and the node abort.
    for (rate, size) in [(1, 1000), (1, 4 << 20), (7999, 1000), (1_000_000, 1000)] {
        let (status, body) = http_request(
            node.http,
            "PUT",
            "/api/prompts/en/away_message",
            Some(&token),
            &wav_claiming(rate, size),
        )
        .unwrap();
        assert_eq!(status, 400, "{rate} Hz: {body}");
        assert!(body.contains("sample rate"), "{body}");
        assert!(!body.contains('/'), "the reply names a path: {body}");
    }
    let rss = node.rss_kib().unwrap();
    println!("crafted uploads: RSS {rss0} -> {rss} KiB");
    assert!(rss < rss0 + 32 * 1024, "RSS grew {} KiB", rss - rss0);
    let (status, _) = http_get(node.http, "/health", None).unwrap();
    assert_eq!(status, 200);
    // A good upload still works.
    let good = wav_claiming(8000, 16000);
    let (status, body) = http_request(
        node.http,
        "PUT",
        "/api/prompts/en/away_message",
        Some(&token),
        &good,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
}

#[test]
fn changes_need_the_token_the_node_made_and_strangers_are_throttled() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    // No token in the config: the node made one, readable by its user only.
    let kept = node.data.path().join("data/api-token");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kept).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let token = node.token.clone().unwrap();
    assert!(
        node.logs().contains("api-token"),
        "the log says where the token is"
    );

    // Reads on loopback are open; every change needs the token.
    let (status, _) = http_get(node.http, "/api/calls", None).unwrap();
    assert_eq!(status, 200);
    for (method, path, body) in [
        ("PUT", "/api/agents/301/dnd", &b"on"[..]),
        ("PUT", "/api/agents/301/pause", b"on"),
        ("POST", "/api/agents/301/conversions", b"5"),
        ("PUT", "/api/prompts/en/welcome", b"RIFF"),
        ("DELETE", "/api/prompts/en/welcome", b""),
        ("PUT", "/api/plugins/ivr", b"\0asm"),
        ("PUT", "/api/routes/x", b"{}"),
        ("DELETE", "/api/routes/*", b""),
        ("PUT", "/api/plugins/ivr/settings", b"{}"),
    ] {
        let (status, reply) = http_request(node.http, method, path, None, body).unwrap();
        assert_eq!(status, 401, "{method} {path}: {reply}");
    }
    let (status, _) = http_request(
        node.http,
        "PUT",
        "/api/agents/301/dnd",
        Some(&token),
        b"off",
    )
    .unwrap();
    assert_eq!(status, 204);

    // A page on a rebinding domain cannot use the victim's browser to reach it.
    let (status, _) = http_raw(
        node.http,
        "GET /api/calls HTTP/1.1\r\nhost: rebind.attacker.example:8080",
        b"",
    )
    .unwrap();
    assert_eq!(status, 421);
    let (status, _) = http_raw(
        node.http,
        &format!("GET /phone HTTP/1.1\r\nhost: {}", node.http),
        b"",
    )
    .unwrap();
    assert_eq!(status, 200);

    // Errors never show where the node keeps its files.
    let (status, reply) = http_request(
        node.http,
        "PUT",
        "/api/plugins/ivr",
        Some(&token),
        b"\0asm junk",
    )
    .unwrap();
    assert_eq!(status, 422);
    let data = node.data.path().display().to_string();
    assert!(!reply.contains(&data), "{reply}");

    // A route or a plugin's settings is JSON of at most 64 KiB.
    let big = format!(
        "{{\"number\": \"{}\", \"plugin\": \"ivr\"}}",
        "1".repeat(100 << 10)
    );
    let (status, _) = http_request(
        node.http,
        "PUT",
        "/api/routes/big",
        Some(&token),
        big.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 413);
    let (status, _) = http_get(node.http, "/api/routes", None).unwrap();
    assert_eq!(status, 200);

    // Guessing: ten failures a minute (the nine tokenless changes above and
    // the one refused deploy's neighbours count too), then 429 — the right
    // token too, from that address, until the minute is over.
    let t0 = Instant::now();
    let mut codes = Vec::new();
    for i in 0..12 {
        let (status, _) = http_request(
            node.http,
            "PUT",
            "/api/agents/301/dnd",
            Some(&format!("guess-{i}")),
            b"on",
        )
        .unwrap();
        codes.push(status);
    }
    let earlier = 9;
    assert!(codes[..10 - earlier].iter().all(|c| *c == 401), "{codes:?}");
    assert!(codes[10 - earlier..].iter().all(|c| *c == 429), "{codes:?}");
    let (status, _) =
        http_request(node.http, "PUT", "/api/agents/301/dnd", Some(&token), b"on").unwrap();
    assert_eq!(status, 429);
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn an_api_beyond_loopback_with_no_token_does_not_start_without_insecure_api() {
    let bin = hookline_tests::workspace_root().join("target/debug/hookline");
    let dir = tempfile::tempdir().unwrap();
    let root = hookline_tests::workspace_root();
    let port = hookline_tests::free_tcp_port();
    let sip = hookline_tests::free_sip_port();
    let serve = |extra: &[&str]| {
        Command::new(&bin)
            .current_dir(&root)
            .args(["serve", "--http", &format!("0.0.0.0:{port}")])
            .args([
                "--sip",
                &format!("127.0.0.1:{sip}"),
                "--rtp-ports",
                "47000-47099",
            ])
            .arg("--data")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = serve(&[]).wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("--insecure-api"), "{text}");

    let mut child = serve(&["--insecure-api"]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let up = loop {
        if matches!(http_get(addr, "/health", None), Ok((200, _))) {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Changes still need the token it made.
    let (status, _) =
        http_request(addr, "PUT", "/api/agents/301/dnd", None, b"on").unwrap_or((0, String::new()));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(up, "the node did not start with --insecure-api:\n{log}");
    assert_eq!(status, 401);
    assert!(log.contains("INSECURE"), "{log}");
}
