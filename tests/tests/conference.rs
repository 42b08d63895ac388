//! A browser, a SIP phone and a trunk caller in one conference room, each in
//! another codec: Chromium on the softphone page (Opus), a baresip phone
//! (G.722) that enters the room's PIN, and a baresip at the carrier's trunk
//! address (PCMA). Each plays its own tone; each SIP party must hear both
//! other parties' tones mixed, and the browser must hear audio.

use std::process::Command;
use std::time::{Duration, Instant};

use hookline_tests::{
    free_udp_port, http_get, read_heard, rms, steps, tone, tone_bursts, tone_share, workspace_root,
    write_wav_i16, Baresip, TestNode,
};
use serde_json::Value;

const TOKEN: &str = "demo-301-change-me";
/// Each party's tone.
const PHONE_HZ: f64 = 600.0;
const BROWSER_HZ: f64 = 1000.0;
const TRUNK_HZ: f64 = 1400.0;

fn members(node: &TestNode) -> Vec<Value> {
    let (status, body) = http_get(node.http, "/api/conferences", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let rooms: Vec<Value> = serde_json::from_str(&body).unwrap();
    rooms
        .iter()
        .find(|r| r["room"] == "team")
        .and_then(|r| r["members"].as_array().cloned())
        .unwrap_or_default()
}

fn wait_members(node: &TestNode, n: usize, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while members(node).len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} members never joined: {:?}\n{}\n{}",
            members(node),
            log(),
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a recording holds, for failure messages: per second, the level and
/// each party's tone share.
fn profile(b: &Baresip) -> String {
    let Some(path) = b.heard() else {
        return "no recording".into();
    };
    let (pcm, rate) = read_heard(&path);
    pcm.chunks(rate as usize)
        .map(|w| {
            format!(
                "rms {:.0} {:.2}/{:.2}/{:.2}",
                rms(w),
                tone_share(w, rate, PHONE_HZ),
                tone_share(w, rate, BROWSER_HZ),
                tone_share(w, rate, TRUNK_HZ)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// 100 ms windows of what a baresip heard in which its own tone is heard
/// at all (a tenth of the window's energy): a mixer must send each member
/// the room minus itself.
fn windows_with_own(b: &Baresip, own_hz: f64) -> usize {
    let path = b.heard().expect("a recording");
    let (pcm, rate) = read_heard(&path);
    pcm.chunks(rate as usize / 10)
        .filter(|w| rms(w) > 300.0 && tone_share(w, rate, own_hz) > 0.1)
        .count()
}

/// 100 ms windows of what a baresip heard in which both tones are loud and
/// clear (each well above its share of noise or the third party's tone).
fn windows_with_both(b: &Baresip, a_hz: f64, b_hz: f64) -> usize {
    let path = b
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", b.log()));
    let (pcm, rate) = read_heard(&path);
    pcm.chunks(rate as usize / 10)
        .filter(|w| {
            rms(w) > 500.0 && tone_share(w, rate, a_hz) > 0.15 && tone_share(w, rate, b_hz) > 0.15
        })
        .count()
}

#[test]
fn browser_sip_phone_and_trunk_caller_talk_in_one_room() {
    let trunk_port = free_udp_port();
    let routes = format!(
        r#"[[trunks]]
name = "carrier"
address = "127.0.0.1:{trunk_port}"

[[routes]]
number = "room"
plugin = "conference"
config = {{ room = "team", greeting = "" }}

[[routes]]
number = "secure"
plugin = "conference"
config = {{ room = "team", pin = "1234" }}
"#
    );
    let node = TestNode::with_routes(&routes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mic = dir.path().join("browser.wav");
    write_wav_i16(&mic, 8000, &tone_bursts(BROWSER_HZ, 8000, 40)).unwrap();

    // The browser joins first and stays 22 s.
    let base = format!("http://{}", node.http);
    let browser = std::thread::spawn(move || {
        let out = Command::new("node")
            .arg(workspace_root().join("tests/browser/softphone.mjs"))
            .args(["call", &base, TOKEN, "room", ""])
            .arg(&mic)
            .arg("22")
            .output()
            .expect("node (scripts/setup.sh --test installs it and playwright-core)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let page: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("softphone printed {stdout:?}: {e}\n{log}"));
        (page, log)
    });
    wait_members(&node, 1, || "the browser did not join".into());

    // A customer through the carrier's trunk.
    let trunk = Baresip::dial_from(
        trunk_port,
        &format!("sip:room@{}", node.sip),
        &tone(TRUNK_HZ, 8000, 30),
        "PCMA",
    )
    .unwrap();
    wait_members(&node, 2, || trunk.log());

    // A colleague on a SIP phone, who must know the PIN.
    let phone = Baresip::dial_with_codec(
        &format!("sip:secure@{}", node.sip),
        &tone(PHONE_HZ, 8000, 30),
        "G722",
    )
    .unwrap();
    phone.answered_call_id(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    for key in ["1", "2", "3", "4", "#"] {
        let reply = phone.command("sndcode", key).unwrap();
        assert!(reply.contains("\"ok\":true"), "{reply}");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_members(&node, 3, || phone.log());
    let who = members(&node);
    assert!(
        who.iter().any(|m| m["caller"] == "301") && who.iter().any(|m| m["caller"] == "carrier"),
        "{who:?}"
    );
    let (_, metrics) = http_get(node.http, "/metrics", None).unwrap();
    assert!(
        metrics.contains("hookline_conference_members{room=\"team\"} 3"),
        "{metrics}"
    );
    // Six seconds of three-way talk.
    std::thread::sleep(Duration::from_secs(6));
    let phone = phone.quit().unwrap();
    let trunk = trunk.quit().unwrap();
    let (page, log) = browser.join().unwrap();

    assert_eq!(page["connected"], true, "{page}\n{log}\n{}", node.logs());
    let level = page["maxLevel"].as_f64().unwrap_or(0.0);
    assert!(
        level > 0.02,
        "the browser heard nothing: level {level}\n{log}"
    );
    let phone_heard = windows_with_both(&phone, BROWSER_HZ, TRUNK_HZ);
    assert!(
        phone_heard >= 20,
        "the phone heard the browser and the trunk together in {phone_heard} windows\n{}\nthe browser: {page}\n{log}\n{}",
        profile(&phone),
        node.logs()
            + &format!("\n{:#?}", node.calls().unwrap_or_default())
    );
    let trunk_heard = windows_with_both(&trunk, BROWSER_HZ, PHONE_HZ);
    let (phone_own, trunk_own) = (
        windows_with_own(&phone, PHONE_HZ),
        windows_with_own(&trunk, TRUNK_HZ),
    );
    eprintln!(
        "windows with both other parties: phone {phone_heard}, trunk {trunk_heard}; \
         with their own tone: phone {phone_own}, trunk {trunk_own}"
    );
    assert!(
        trunk_heard >= 20,
        "the trunk caller heard the browser and the phone together in {trunk_heard} windows\n{}",
        profile(&trunk)
    );
    assert!(
        phone_own + trunk_own <= 2,
        "members heard their own voice: phone {phone_own}, trunk {trunk_own} windows\n{}\n{}",
        profile(&phone),
        profile(&trunk)
    );

    // The records: who came from where, in which codec, into which room.
    let records: Vec<Value> = ["room", "secure"]
        .iter()
        .flat_map(|callee| {
            node.calls()
                .unwrap()
                .into_iter()
                .filter(move |c| c["callee"] == *callee)
        })
        .collect();
    let find = |pred: &dyn Fn(&Value) -> bool| {
        records
            .iter()
            .find(|c| pred(c))
            .cloned()
            .unwrap_or_else(|| panic!("{records:#?}"))
    };
    let from_trunk = find(&|c| steps(c).contains(&"from-trunk:carrier"));
    assert!(
        steps(&from_trunk).contains(&"conference:team"),
        "{from_trunk:#}"
    );
    let from_browser = find(&|c| c["caller"] == "301");
    assert!(steps(&from_browser).contains(&"conference:team"));
    let from_phone = find(&|c| c["callee"] == "secure");
    assert!(
        steps(&from_phone).contains(&"conference:team"),
        "{from_phone:#}"
    );
    assert!(!steps(&from_phone).contains(&"from-trunk:carrier"));
}

#[test]
fn a_wrong_pin_never_reaches_the_room() {
    let node = TestNode::with_routes(
        r#"[[routes]]
number = "secure"
plugin = "conference"
config = { room = "team", pin = "1234", attempts = 1 }
"#,
    )
    .unwrap();
    let phone = Baresip::start_with_mic(
        &format!("sip:secure@{}", node.sip),
        &tone(PHONE_HZ, 8000, 20),
    )
    .unwrap();
    let id = phone.answered_call_id(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    for key in ["9", "9", "9", "9", "#"] {
        let reply = phone.command("sndcode", key).unwrap();
        assert!(reply.contains("\"ok\":true"), "{reply}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let call = node
        .wait_for_call(Duration::from_secs(20), |c| {
            c["id"] == id.as_str() && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    // The keys arrived (a PIN that never came would also keep the caller out).
    assert!(steps(&call).contains(&"digits:9999"), "{call:#}");
    assert!(
        !steps(&call).iter().any(|s| s.starts_with("conference:")),
        "{call:#}"
    );
    assert!(members(&node).is_empty());
}
