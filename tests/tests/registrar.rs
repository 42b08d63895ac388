//! Extensions register with digest authentication: baresip (a real phone)
//! registers, shows up in the location service, and unregisters on exit.

use std::time::Duration;

use hookline_tests::{http_get, wait_until, Baresip, NodeSpec, SipUa, TestNode};
use serde_json::Value;

const EXTENSIONS: &str = "[[extensions]]\nuser = \"201\"\npassword = \"s3cret\"\n\n";

fn registrations(node: &TestNode) -> Vec<Value> {
    let (status, body) = http_get(node.http, "/api/registrations", None).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn baresip_registers_with_digest_and_unregisters_on_exit() {
    let node = TestNode::with_routes(EXTENSIONS).unwrap();
    let phone = Baresip::register(&format!(
        "<sip:201@{}>;auth_pass=s3cret;regint=600",
        node.sip
    ))
    .unwrap();
    let registered = wait_until(Duration::from_secs(15), || {
        registrations(&node).iter().any(|r| r["user"] == "201")
    });
    assert!(
        registered,
        "baresip did not register:\n{}\n{}",
        phone.log(),
        node.logs()
    );
    let reg = registrations(&node)
        .into_iter()
        .find(|r| r["user"] == "201")
        .unwrap();
    let contact = reg["contact"].as_str().unwrap();
    assert!(
        contact.starts_with("sip:201") && contact.contains("@127.0.0.1:"),
        "{reg}"
    );
    let phone = phone.quit().unwrap();
    let gone = wait_until(Duration::from_secs(10), || registrations(&node).is_empty());
    assert!(
        gone,
        "still registered after baresip quit:\n{}",
        phone.log()
    );
}

#[test]
fn wrong_password_never_registers_and_repeated_failures_are_blocked() {
    let node = TestNode::with_routes(EXTENSIONS).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    let register = |cseq: u32, auth: &str| {
        ua.request(
            "REGISTER",
            "reg-1",
            "",
            cseq,
            &format!("Contact: <sip:201@127.0.0.1:9>\r\nExpires: 600\r\n{auth}"),
            "",
        )
        .unwrap();
        ua.expect("reg-1", "SIP/2.0 ", Duration::from_secs(5))
            .unwrap()
    };
    let first = register(1, "");
    assert!(first.starts_with("SIP/2.0 401"), "{first}");
    let nonce = first
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let bad = format!(
        "Authorization: Digest username=\"201\", realm=\"hookline\", nonce=\"{nonce}\", uri=\"sip:n\", response=\"00000000000000000000000000000000\"\r\n"
    );
    let mut codes = Vec::new();
    for cseq in 2..14 {
        codes.push(register(cseq, &bad)[8..11].to_string());
    }
    assert!(codes[..8].iter().all(|c| c == "401"), "{codes:?}");
    assert_eq!(codes.last().unwrap(), "403", "{codes:?}");
    assert!(registrations(&node).is_empty());
    // Each refusal is logged, with the user and the address it came from …
    let refused = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("REGISTER refused"))
            .count()
    };
    let logs = node.logs();
    assert!(
        logs.lines().any(|l| l.contains("REGISTER refused")
            && l.contains("user=")
            && l.contains("source=127.0.0.1")
            && l.contains("blocked=true")),
        "{logs}"
    );
    // … but a flood cannot flood the log: 20 lines a second at most, and a
    // later line says how many were dropped.
    let before = refused(&node.logs());
    let flood = std::time::Instant::now();
    // From a socket of its own, whose answers nobody reads.
    let flooder = SipUa::new(node.sip).unwrap();
    for cseq in 14..1014 {
        if cseq % 50 == 0 {
            // Within the kernel's receive buffer: the node sees them all.
            std::thread::sleep(Duration::from_millis(20));
        }
        flooder
            .request(
                "REGISTER",
                &format!("flood-{cseq}"),
                "",
                cseq,
                &format!("Contact: <sip:201@127.0.0.1:9>\r\nExpires: 600\r\n{bad}"),
                "",
            )
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    register(1014, &bad);
    let seconds = flood.elapsed().as_secs() + 1;
    let logs = node.logs();
    let during = refused(&logs) - before;
    assert!(
        (1..=20 * seconds as usize).contains(&during),
        "{during} refusal lines in {seconds} s"
    );
    let dropped: u64 = logs
        .lines()
        .filter(|l| l.contains("REGISTER refused"))
        .filter_map(|l| {
            l.split("dropped=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        dropped + during as u64 >= 900,
        "the flood's refusals were neither logged nor counted: {dropped} dropped, {during} logged"
    );
}

#[test]
fn invites_from_strangers_are_challenged_and_a_phone_with_credentials_gets_through() {
    let node = TestNode::start(NodeSpec {
        extra_routes: "[[extensions]]\nuser = \"301\"\npassword = \"pw301\"\n\n",
        node_section: Some("invite_auth = true"),
        ..NodeSpec::default()
    })
    .unwrap();
    // A stranger without credentials: 407 with a digest challenge, and no call.
    let ua = SipUa::new(node.sip).unwrap();
    ua.invite("stranger", "100", 9).unwrap();
    let r = ua
        .expect("stranger", "SIP/2.0 407", Duration::from_secs(5))
        .unwrap();
    assert!(
        r.contains("Proxy-Authenticate: Digest realm=\"hookline\""),
        "{r}"
    );
    ua.request("ACK", "stranger", &hookline_tests::to_tag(&r), 1, "", "")
        .unwrap();
    // baresip as extension 301, not registered, answers the challenge and gets the IVR.
    let phone = Baresip::start_with_account(
        &format!("<sip:301@{}>;auth_pass=pw301;regint=0", node.sip),
        &format!("sip:100@{}", node.sip),
    )
    .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["caller"] == "301" && c["answered_at"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", phone.log()));
    assert_eq!(call["plugin"], "ivr");
    assert!(
        node.calls().unwrap().iter().all(|c| c["id"] != "stranger"),
        "the stranger's call never started"
    );
}
