//! Browser signalling and SIP against a stranger: bad and abandoned WebRTC
//! offers give back every socket they opened, one agent cannot hold the
//! node's peer connections or end another's call, an INVITE from an unknown
//! source on a public listener is challenged, and Max-Forwards ends a loop.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hookline_tests::{http_request, path_of, wait_until, NodeSpec, SipUa, TestNode};

const TOKEN_A: &str = "agent-301-token-for-tests";
const TOKEN_B: &str = "agent-302-token-for-tests";

/// A browser's offer (Opus and PCMU, ICE credentials, a DTLS fingerprint)
/// whose candidate nobody answers: the call is set up, the media never flows.
fn offer() -> String {
    let fp: Vec<String> = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect();
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
        "c=IN IP4 127.0.0.1",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:AbCd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        &format!("a=fingerprint:sha-256 {}", fp.join(":")),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:0 PCMU/8000",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
        "",
    ]
    .join("\r\n")
}

fn webrtc_node(limits: &str) -> TestNode {
    let section = format!(
        "agents = [{{ user = \"301\", token = \"{TOKEN_A}\" }}, {{ user = \"302\", token = \"{TOKEN_B}\" }}]\n{limits}"
    );
    TestNode::start(NodeSpec {
        webrtc_section: Some(&section),
        ..NodeSpec::default()
    })
    .unwrap()
}

fn post(node: &TestNode, token: &str, body: &str) -> (u16, String) {
    http_request(
        node.http,
        "POST",
        "/webrtc/call/100",
        Some(token),
        body.as_bytes(),
    )
    .unwrap()
}

#[test]
fn a_thousand_bad_and_abandoned_offers_give_back_every_socket() {
    let node = webrtc_node("max_calls_per_agent = 100\nmax_offers_per_minute = 100000");
    // One good call first, so what the stack opens once (and keeps) is counted in the baseline.
    let (status, answer) = post(&node, TOKEN_A, &offer());
    assert_eq!(status, 201, "{answer}");
    let id = answer_location(&node);
    let (status, _) = http_request(node.http, "DELETE", &id, Some(TOKEN_A), b"").unwrap();
    assert_eq!(status, 200);
    assert!(wait_until(Duration::from_secs(20), || node
        .metric("hookline_active_calls")
        .unwrap()
        == 0.0));
    std::thread::sleep(Duration::from_secs(1));
    let fds0 = node.open_fds().unwrap();
    let rss0 = node.settled_rss_kib().unwrap();

    let bad = [
        "not sdp at all".to_string(),
        offer()
            .replace("opus/48000/2", "G729/8000")
            .replace("PCMU/8000", "iLBC/8000"),
        offer().replace("m=audio", "m=video"),
        offer().replace("a=fingerprint", "a=nofingerprint"),
    ];
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..1000 {
        let (status, _) = post(&node, TOKEN_A, &bad[i % bad.len()]);
        *codes.entry(status).or_insert(0) += 1;
    }
    println!("bad offers answered: {codes:?}");
    assert!(codes.keys().all(|c| (400..500).contains(c)), "{codes:?}");
    // Abandoned: offers that set up a call whose browser never connects, hung up by its agent.
    for _ in 0..20 {
        let (status, body) = post(&node, TOKEN_A, &offer());
        assert_eq!(status, 201, "{body}");
    }
    // A call's record is written by the store's batching writer, so the
    // last one may show a moment after its 201.
    let up = || -> Vec<String> {
        node.calls()
            .unwrap()
            .into_iter()
            .filter(|c| c["hangup_cause"].is_null())
            .map(|c| format!("/webrtc/call/{}", c["id"].as_str().unwrap()))
            .collect()
    };
    wait_until(Duration::from_secs(5), || up().len() >= 20);
    let ids = up();
    assert_eq!(ids.len(), 20, "calls up: {:#?}", node.calls());
    for id in &ids {
        let (status, _) = http_request(node.http, "DELETE", id, Some(TOKEN_A), b"").unwrap();
        assert_eq!(status, 200, "{id}");
    }
    assert!(wait_until(Duration::from_secs(30), || {
        node.metric("hookline_active_calls").unwrap() == 0.0
            && node.metric("hookline_media_legs").unwrap() == 0.0
    }));
    let back = wait_until(Duration::from_secs(30), || {
        node.open_fds().unwrap() <= fds0 + 4
    });
    let fds = node.open_fds().unwrap();
    let rss = node.rss_kib().unwrap();
    println!(
        "after 1,000 bad and 20 abandoned offers: fds {fds0} -> {fds}, RSS {rss0} -> {rss} KiB"
    );
    assert!(back, "file descriptors {fds0} -> {fds}");
    assert!(rss < rss0 + 64 * 1024, "RSS {rss0} -> {rss} KiB");
}

/// The Location of the newest open browser call (as its agent would keep it).
fn answer_location(node: &TestNode) -> String {
    let calls = node.calls().unwrap();
    let open = calls
        .iter()
        .find(|c| {
            c["hangup_cause"].is_null() && c["id"].as_str().unwrap_or("").starts_with("webrtc-")
        })
        .expect("an open browser call");
    format!("/webrtc/call/{}", open["id"].as_str().unwrap())
}

#[test]
fn one_agent_cannot_hold_the_node_or_end_another_agents_call() {
    let node = webrtc_node("max_calls_per_agent = 2\nmax_offers_per_minute = 5");
    assert_eq!(post(&node, TOKEN_A, &offer()).0, 201);
    assert_eq!(post(&node, TOKEN_A, &offer()).0, 201);
    // A third call at once: 429, nothing opened.
    let (status, why) = post(&node, TOKEN_A, &offer());
    assert_eq!(status, 429, "{why}");
    assert!(why.contains("max_calls_per_agent"), "{why}");
    // Agent 302 is not affected, and cannot hang up 301's calls.
    assert_eq!(post(&node, TOKEN_B, &offer()).0, 201);
    let calls = node.calls().unwrap();
    let of_301: Vec<String> = calls
        .iter()
        .filter(|c| c["caller"] == "301" && c["hangup_cause"].is_null())
        .map(|c| format!("/webrtc/call/{}", c["id"].as_str().unwrap()))
        .collect();
    assert_eq!(of_301.len(), 2);
    let (status, _) = http_request(node.http, "DELETE", &of_301[0], Some(TOKEN_B), b"").unwrap();
    assert_eq!(status, 404, "302 ended 301's call");
    let (status, _) = http_request(node.http, "DELETE", &of_301[0], Some(TOKEN_A), b"").unwrap();
    assert_eq!(status, 200);
    // Offers per minute: two so far (the one refused for calls did not count),
    // so three more may come this minute — each hung up before the next so
    // the call limit stays out of the way — and the sixth is refused for its rate.
    let open_of_301 = |node: &TestNode| {
        node.calls()
            .unwrap()
            .into_iter()
            .filter(|c| c["caller"] == "301" && c["hangup_cause"].is_null())
            .map(|c| format!("/webrtc/call/{}", c["id"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    assert!(wait_until(Duration::from_secs(20), || open_of_301(&node)
        .len()
        == 1));
    // (A hung-up call's slot comes back a moment after its record ends; an
    // offer refused for the call limit is not counted, so it is tried again.)
    let post_when_free = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = post(&node, TOKEN_A, &offer());
            if status != 429 || !body.contains("max_calls_per_agent") || Instant::now() > deadline {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for offer_no in 3..=5 {
        let (status, body) = post_when_free();
        assert_eq!(status, 201, "offer {offer_no}: {body}");
        let newest = open_of_301(&node)
            .into_iter()
            .find(|id| *id != of_301[1])
            .expect("the new call");
        let (status, _) = http_request(node.http, "DELETE", &newest, Some(TOKEN_A), b"").unwrap();
        assert_eq!(status, 200);
        assert!(wait_until(Duration::from_secs(20), || open_of_301(&node)
            .len()
            == 1));
    }
    let (status, why) = post_when_free();
    assert_eq!(status, 429, "{why}");
    assert!(why.contains("max_offers_per_minute"), "{why}");
}

/// One of this machine's addresses that is not loopback.
fn public_ip() -> IpAddr {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("192.0.2.1:9")
        .or_else(|_| s.connect("8.8.8.8:9"))
        .expect("a route off loopback");
    let ip = s.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "no non-loopback address here: {ip}"
    );
    ip
}

#[test]
fn an_invite_from_a_stranger_on_a_public_listener_is_challenged() {
    let ip = public_ip();
    let node = TestNode::start(NodeSpec {
        sip_ip: ip,
        ..NodeSpec::default()
    })
    .unwrap();
    // From another host's point of view (a non-loopback source): 407.
    let stranger = SipUa::bind(ip, node.sip).unwrap();
    stranger.invite("stranger-1", "100", 9).unwrap();
    let r = stranger
        .expect("stranger-1", "SIP/2.0 407", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    assert!(r.contains("Proxy-Authenticate: Digest"), "{r}");
    // From this machine (a local proxy): served.
    let local = SipUa::new(SocketAddr::new(ip, node.sip.port())).unwrap();
    let tag = local.call("local-1", "100", 9).unwrap();
    local.request("BYE", "local-1", &tag, 2, "", "").unwrap();

    // A flood of OPTIONS from the stranger: 50 a second are answered, then
    // 503 with Retry-After, then nothing; this machine is still served.
    let me = stranger.sock.local_addr().unwrap();
    for i in 0..150 {
        let msg = format!(
            "OPTIONS sip:n@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-fl{i}\r\n\
             From: <sip:x@{me}>;tag=f{i}\r\nTo: <sip:n@{node}>\r\nCall-ID: flood-{i}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            node = node.sip
        );
        stranger.sock.send_to(msg.as_bytes(), node.sip).unwrap();
    }
    let mut codes = std::collections::BTreeMap::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(n) = stranger.sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains("Call-ID: flood-") {
                if msg.starts_with("SIP/2.0 503") {
                    assert!(msg.contains("Retry-After:"), "{msg}");
                }
                *codes.entry(msg[8..11].to_string()).or_insert(0) += 1;
            }
        }
    }
    println!("150 OPTIONS in a burst from a stranger: {codes:?}");
    assert!(codes.get("200").copied().unwrap_or(0) <= 50, "{codes:?}");
    assert!(codes.get("503").copied().unwrap_or(0) >= 40, "{codes:?}");
    assert!(codes.values().sum::<i32>() <= 100, "{codes:?}");
    let tag = local.call("local-2", "100", 9).unwrap();
    local.request("BYE", "local-2", &tag, 2, "", "").unwrap();
}

#[test]
fn max_forwards_is_decremented_on_the_legs_a_call_places_and_zero_places_none() {
    // An outside hop that only records the INVITEs it gets.
    let hop = UdpSocket::bind("127.0.0.1:0").unwrap();
    hop.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let hop_port = hop.local_addr().unwrap().port();
    let routes = format!(
        "[[routes]]\nnumber = \"out\"\nplugin = \"ivr\"\n\
         config = {{ greeting = [\"operator\"], attempts = 1, timeout_ms = 500, \
         fallback = {{ name = \"out\", dial = [\"sip:far@127.0.0.1:{hop_port}\"], dial_timeout_ms = 2000 }} }}\n\n"
    );
    let node = TestNode::with_routes(&routes).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    // Retransmissions of an INVITE already seen are skipped (the hop never answers).
    let mut seen = std::collections::HashSet::new();
    ua.invite_full("mf-5", "out", "127.0.0.1", 9, 5).unwrap();
    let ok = ua
        .expect("mf-5", "SIP/2.0 200", Duration::from_secs(10))
        .unwrap();
    ua.request("ACK", "mf-5", &hookline_tests::to_tag(&ok), 1, "", "")
        .unwrap();
    assert_eq!(
        new_invite_at(&hop, &mut seen, Duration::from_secs(20)),
        Some(4)
    );
    ua.request("BYE", "mf-5", &hookline_tests::to_tag(&ok), 2, "", "")
        .unwrap();

    // A call that arrives with no hops left places no leg.
    ua.invite_full("mf-0", "out", "127.0.0.1", 9, 0).unwrap();
    let ok = ua
        .expect("mf-0", "SIP/2.0 200", Duration::from_secs(10))
        .unwrap();
    ua.request("ACK", "mf-0", &hookline_tests::to_tag(&ok), 1, "", "")
        .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["id"] == "mf-0" && path_of(c).iter().any(|p| p == "max-forwards:exhausted")
        })
        .unwrap();
    println!("{:?}", path_of(&call));
    assert_eq!(
        new_invite_at(&hop, &mut seen, Duration::from_secs(3)),
        None,
        "an INVITE went out with no hops left"
    );
}

/// The Max-Forwards of the next INVITE with a Call-ID not `seen` before
/// that reaches the hop within `within`, if one does.
fn new_invite_at(
    hop: &UdpSocket,
    seen: &mut std::collections::HashSet<String>,
    within: Duration,
) -> Option<u32> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        let Ok(n) = hop.recv(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let call_id = msg
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID:"))
            .unwrap_or("")
            .trim()
            .to_string();
        if msg.starts_with("INVITE ") && seen.insert(call_id) {
            return msg
                .lines()
                .find_map(|l| l.strip_prefix("Max-Forwards:"))
                .and_then(|v| v.trim().parse().ok());
        }
    }
    None
}
