//! Malformed and hostile SIP over a real socket: the node answers 400 where it
//! can, drops what it cannot answer, never crashes, and keeps taking calls.

use std::net::UdpSocket;
use std::time::Duration;

use hookline_tests::{NodeSpec, TestNode};

fn exchange(sock: &UdpSocket, to: std::net::SocketAddr, msg: &[u8]) -> Option<String> {
    sock.send_to(msg, to).unwrap();
    let mut buf = [0u8; 65536];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn garbage_gets_400_or_silence_and_the_node_stays_up() {
    let mut node = TestNode::start(NodeSpec::default()).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let headers = format!(
        "Via: SIP/2.0/UDP {me};branch=z9hG4bK-h1\r\nFrom: <sip:x@{me}>;tag=1\r\nTo: <sip:100@n>\r\nCall-ID: hostile-1\r\nCSeq: 1 INVITE\r\n"
    );
    // Broken request line, answerable headers: 400.
    let r = exchange(
        &sock,
        node.sip,
        format!("INVITE sip:100@n SIP/9.9 garbage\r\n{headers}\r\n").as_bytes(),
    );
    assert!(
        r.as_deref().unwrap_or("").starts_with("SIP/2.0 400"),
        "{r:?}"
    );
    // Valid request, SDP that is not SDP: 400.
    let body = "this is not sdp";
    let msg = format!("INVITE sip:100@n SIP/2.0\r\n{headers}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let mut replies = Vec::new();
    sock.send_to(msg.as_bytes(), node.sip).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        replies.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if replies.last().unwrap().starts_with("SIP/2.0 400") {
            break;
        }
    }
    assert!(
        replies.iter().any(|r| r.starts_with("SIP/2.0 400")),
        "{replies:?}"
    );
    // Binary junk, huge header floods, lone CRLFs: no reply, no crash.
    for junk in [
        vec![0xffu8; 1400],
        b"\r\n\r\n".to_vec(),
        vec![b'A'; 60000],
        format!("OPTIONS sip:n SIP/2.0\r\n{}", "X-Flood: y\r\n".repeat(4000)).into_bytes(),
    ] {
        sock.send_to(&junk, node.sip).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(node.is_running(), "node died:\n{}", node.logs());
    // Still serving: OPTIONS gets 200 (drain anything left first).
    while sock.recv(&mut buf).is_ok() {}
    let opts = format!(
        "OPTIONS sip:n SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-o\r\nFrom: <sip:x@{me}>;tag=2\r\nTo: <sip:n>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let r = exchange(&sock, node.sip, opts.as_bytes());
    assert!(
        r.as_deref().unwrap_or("").starts_with("SIP/2.0 200"),
        "{r:?}"
    );
}

#[test]
fn no_common_codec_is_488() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let invite = |call_id: &str, codecs: &str| {
        let sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP {codecs}\r\n");
        format!(
            "INVITE sip:100@n SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\nFrom: <sip:x@{me}>;tag=1\r\nTo: <sip:100@n>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    };
    // G.729 (18) is a codec the node does not speak.
    let r = exchange(&sock, node.sip, invite("g729only", "18").as_bytes()).unwrap();
    assert!(r.starts_with("SIP/2.0 488"), "{r}");
    // Acknowledge the 488 so the node stops retransmitting it; then a good offer is accepted.
    let r = exchange(&sock, node.sip, invite("pcmu", "0").as_bytes()).unwrap();
    assert!(
        r.starts_with("SIP/2.0 100") || r.starts_with("SIP/2.0 488"),
        "{r}"
    );
}

/// An OPTIONS over `conn`; the status line of the answer, if one came.
fn options_over(conn: &mut std::net::TcpStream, n: u32) -> Option<String> {
    use std::io::{Read, Write};
    let local = conn.local_addr().ok()?;
    let peer = conn.peer_addr().ok()?;
    let msg = format!(
        "OPTIONS sip:ping@{peer} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=t{n}\r\nTo: <sip:ping@127.0.0.1>\r\n\
         Call-ID: tcp-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    conn.write_all(msg.as_bytes()).ok()?;
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines().next().map(String::from)
}

/// Whether the node closed `conn` (EOF or reset) within `within`.
fn closed_by_node(conn: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match conn.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn sip_over_tcp_is_capped_per_source_and_silent_connections_are_closed() {
    let node = TestNode::start(NodeSpec {
        node_section: Some("sip_tcp_per_source = 4\nsip_tcp_idle_s = 3"),
        ..NodeSpec::default()
    })
    .unwrap();
    let connect = || {
        let c = std::net::TcpStream::connect(node.sip).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c
    };
    // Four connections from this address are served …
    let mut open: Vec<_> = (0..4).map(|_| connect()).collect();
    for (i, c) in open.iter_mut().enumerate() {
        let status = options_over(c, i as u32);
        assert_eq!(status.as_deref(), Some("SIP/2.0 200 OK"), "connection {i}");
    }
    // … a fifth is closed at once, unserved.
    let mut fifth = connect();
    assert!(
        closed_by_node(&mut fifth, Duration::from_secs(2)),
        "a fifth connection from one address was kept"
    );
    // Silent for the idle time, the four are closed, and their places come back.
    for (i, c) in open.iter_mut().enumerate() {
        assert!(
            closed_by_node(c, Duration::from_secs(6)),
            "silent connection {i} was kept"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut again = connect();
    assert_eq!(
        options_over(&mut again, 9).as_deref(),
        Some("SIP/2.0 200 OK"),
        "no place came back"
    );
}

/// A caller floods an answered call with SIP INFO keys while its plugin is
/// busy computing and reads none: the call's event queue stays bounded (the
/// excess is dropped and counted in the record), the node's memory does not
/// follow the flood, and the call ends normally.
#[test]
fn a_key_flood_into_a_busy_call_is_bounded_and_counted() {
    let wasm =
        hookline_tests::workspace_root().join("target/wasm32-wasip2/release/hookline_hostile.wasm");
    let extra = format!(
        "[[plugins]]\nname = \"hostile\"\npath = \"{}\"\n\n\
         [[routes]]\nnumber = \"busy\"\nplugin = \"hostile\"\nconfig = \"spin:3000\"\n\n",
        wasm.display()
    );
    let node = TestNode::start(NodeSpec {
        extra_routes: &extra,
        node_section: Some("plugin_cpu_ms = 30000"),
        ..NodeSpec::default()
    })
    .unwrap();
    // Measured once the node's start-up (a recognizer loading) is over.
    let rss_before = node.settled_rss_kib().unwrap();
    let ua = hookline_tests::SipUa::new(node.sip).unwrap();
    let tag = ua.call("flood", "busy", 9).unwrap();
    const KEYS: u32 = 10_000;
    for cseq in 2..2 + KEYS {
        // In bursts the node's socket buffer takes (a flood past it is the
        // kernel's to drop, not the call's).
        if cseq % 200 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        ua.request(
            "INFO",
            "flood",
            &tag,
            cseq,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=5\r\nDuration=100\r\n",
        )
        .unwrap();
    }
    // The plugin stops spinning after 3 s and returns; the node hangs up.
    ua.expect("flood", "BYE ", Duration::from_secs(30)).unwrap();
    let rss_after = node.rss_kib().unwrap();
    let record = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == "flood" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = hookline_tests::path_of(&record);
    assert!(path.iter().any(|s| s == "spun"), "{path:?}");
    let dropped: u64 = path
        .iter()
        .find_map(|s| s.strip_prefix("events-dropped:"))
        .unwrap_or_else(|| panic!("no events-dropped step in {path:?}"))
        .parse()
        .unwrap();
    // Some INFOs may be lost on the way (UDP); most of the flood must have
    // been dropped, never queued.
    assert!(
        dropped >= (KEYS as u64) / 2 && dropped <= KEYS as u64,
        "dropped {dropped} of {KEYS}"
    );
    assert!(
        rss_after < rss_before + 8 * 1024,
        "node RSS grew {} KiB under the flood",
        rss_after.saturating_sub(rss_before)
    );
}
