//! Chaos: one node, killed with SIGKILL at a random moment 20 times while a
//! mix of calls is up — an IVR caller, a caller leaving a voicemail, a
//! caller in a queue asking for a callback, a caller bridged to a baresip
//! agent — and restarted on the same data each time. After every restart:
//! no call record is open, no recording is left half-listed, every message
//! with more than a second of audio is listed with a playable file of that
//! length, every callback place a caller was promised is kept, and no agent
//! is left busy. The seed and the kill moments are printed.

use std::time::{Duration, Instant};

use hookline_tests::{
    http_get, read_wav_i16, wait_until, Baresip, NodeSpec, RtpSink, SipUa, TestNode,
};
use serde_json::Value;

const KILLS: usize = 20;

const SETUP: &str = r#"
[[extensions]]
user = "201"
password = "one"

[[extensions]]
user = "209"
password = "nine"

[[groups]]
name = "nobody-home"
strategy = "all"
members = ["209"]

[[queues]]
name = "chaos-q"
group = "nobody-home"
announce_s = 30
callback_digit = "*"
callback_window_s = 86400

[[routes]]
number = "chaos-q"
plugin = "ivr"
config = { fallback = { name = "queue", enqueue = "chaos-q" } }

[[routes]]
number = "chaos-vm"
plugin = "voicemail"
config = { greeting_text = "Message.", mailbox = "chaos", max_ms = 20000, silence_ms = 60000 }

[[routes]]
number = "chaos-bridge"
plugin = "ivr"
config = { fallback = { name = "agent", dial = ["201"], dial_timeout_ms = 20000 } }
"#;

/// A small deterministic generator for the kill moments (seeded by time,
/// printed, so a failing run can be read back).
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn get(node: &TestNode, path: &str) -> Value {
    let (status, body) = http_get(node.http, path, node.token.as_deref()).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// One call of each kind, and the peers that must stay up meanwhile.
struct Round {
    _uas: Vec<SipUa>,
    _sinks: Vec<RtpSink>,
    _callback: SipUa,
    _agent: Baresip,
    _bridged: Baresip,
}

fn start_round(node: &TestNode, round: usize) -> Round {
    let agent = node.agent("201", "one", &vec![0; 8000 * 30]).unwrap();
    let ivr = SipUa::new(node.sip).unwrap();
    ivr.invite(&format!("ivr-{round}"), "100", 9).unwrap();
    let vm = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    vm.call(&format!("vm-{round}"), "chaos-vm", sink.port)
        .unwrap();
    let number = format!("5550{round:03}");
    let cb = SipUa::new(node.sip).unwrap().as_user(&number);
    let cb_id = format!("cb-{round}");
    let tag = cb.call(&cb_id, "chaos-q", 9).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    cb.request(
        "INFO",
        &cb_id,
        &tag,
        2,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=*\r\nDuration=160\r\n",
    )
    .unwrap();
    let bridged = Baresip::start_with_mic(
        &format!("sip:chaos-bridge@{}", node.sip),
        &vec![0; 8000 * 30],
    )
    .unwrap();
    Round {
        _uas: vec![ivr, vm],
        _sinks: vec![sink],
        _callback: cb,
        _agent: agent,
        _bridged: bridged,
    }
}

/// The node kept everything it promised before the kill.
fn check(node: &TestNode, promised: &[String], round: usize) {
    // No record open.
    let open = || -> Vec<Value> {
        node.calls_limit(1000)
            .unwrap()
            .into_iter()
            .filter(|c| c["ended_at"].is_null())
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(10), || open().is_empty()),
        "round {round}: records open after the restart: {:#?}",
        open()
    );
    // No recording half-listed; every message of a second or more playable.
    let recordings = || get(node, "/api/recordings?limit=1000");
    assert!(
        wait_until(Duration::from_secs(20), || recordings()
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] != "recording")),
        "round {round}: recordings left unfinished: {:#}",
        recordings()
    );
    for r in recordings().as_array().unwrap() {
        let duration = r["duration_ms"].as_u64().unwrap();
        if r["kind"] != "message" || duration < 1000 {
            continue;
        }
        let path = std::path::Path::new(r["path"].as_str().unwrap());
        let pcm = read_wav_i16(path)
            .unwrap_or_else(|e| panic!("round {round}: {} unplayable: {e}", path.display()));
        let ms = pcm.len() as u64 / 8;
        assert!(
            ms.abs_diff(duration) <= 40,
            "round {round}: listed {duration} ms, the file holds {ms} ms: {r:#}"
        );
    }
    // Every promised callback place is kept.
    let kept = get(node, "/api/callbacks");
    for number in promised {
        assert!(
            kept.as_array()
                .unwrap()
                .iter()
                .any(|c| c["number"] == number.as_str()),
            "round {round}: the callback promised to {number} is gone: {kept:#}"
        );
    }
    // No agent left busy.
    let agents = get(node, "/api/agents");
    for a in agents["agents"].as_array().unwrap() {
        assert_eq!(a["calls"], 0, "round {round}: {a:#}");
    }
}

#[test]
fn twenty_kills_lose_nothing_that_was_promised() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    println!("chaos seed {seed}");
    let started = Instant::now();
    let mut node = TestNode::start(NodeSpec {
        extra_routes: SETUP,
        ..NodeSpec::default()
    })
    .unwrap();
    let mut promised: Vec<String> = Vec::new();
    let mut messages_recovered = 0;
    for round in 0..KILLS {
        let calls = start_round(&node, round);
        // Any moment; every fourth round late enough for the callback caller
        // to have been promised a place.
        let wait = if round % 4 == 3 {
            6500 + rng.next_ms(1500)
        } else {
            500 + rng.next_ms(6500)
        };
        std::thread::sleep(Duration::from_millis(wait));
        // Every place the node lists is one it promised: it must survive.
        promised = get(&node, "/api/callbacks")
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["number"].as_str().map(String::from))
            .collect();
        node.crash_and_restart().unwrap();
        drop(calls);
        check(&node, &promised, round);
        messages_recovered = get(&node, "/api/recordings?limit=1000")
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "recovered" && r["duration_ms"].as_u64() >= Some(1000))
            .count();
        println!(
            "kill {:2}: after {wait:4} ms of calls; callbacks promised so far {}, messages recovered {messages_recovered}",
            round + 1,
            promised.len()
        );
    }
    println!(
        "chaos: {KILLS} kills in {:.0} s, invariants held; {} callback places kept, {messages_recovered} messages recovered",
        started.elapsed().as_secs_f64(),
        promised.len()
    );
    assert!(
        messages_recovered > 0,
        "no kill ever caught a message being left"
    );
    assert!(
        !promised.is_empty(),
        "no kill came after a callback was promised"
    );
}
