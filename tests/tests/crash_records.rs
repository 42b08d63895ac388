//! A node killed with calls up (SIGKILL: the OOM killer, a host reboot)
//! leaves no call record open: at the next start each is closed with cause
//! `node-restart` at the last moment the node was known alive. A message
//! being left at the kill is repaired, filed in its mailbox and announced
//! by the voicemail plugin's webhook, once.

use std::time::{Duration, Instant};

use hookline_tests::{
    path_of, read_wav_i16, tone, tone_share, wait_until, Baresip, HttpSink, NodeSpec, SipUa,
    TestNode,
};
use serde_json::Value;

#[test]
fn records_of_calls_up_at_a_sigkill_are_closed_as_node_restart() {
    let mut node = TestNode::start(NodeSpec::default()).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    // Two callers in the IVR, answered and listening to the menu.
    ua.call("crash-1", "100", 9).unwrap();
    ua.call("crash-2", "100", 9).unwrap();
    for id in ["crash-1", "crash-2"] {
        node.wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == id && c["answered_at"].is_string() && c["ended_at"].is_null()
        })
        .unwrap();
    }
    // Long enough for a heartbeat after the answers.
    std::thread::sleep(Duration::from_secs(3));
    let killed = Instant::now();
    let killed_at = jiff::Timestamp::now();
    node.crash_and_restart().unwrap();
    println!("restarted {:?} after the kill", killed.elapsed());
    for id in ["crash-1", "crash-2"] {
        let call = node
            .wait_for_call(Duration::from_secs(10), |c| c["id"] == id)
            .unwrap();
        assert_eq!(call["hangup_cause"], "node-restart", "{call:#}");
        let answered: jiff::Timestamp = call["answered_at"].as_str().unwrap().parse().unwrap();
        let ended: jiff::Timestamp = call["ended_at"]
            .as_str()
            .unwrap_or_else(|| panic!("still open: {call:#}"))
            .parse()
            .unwrap();
        assert!(ended >= answered, "{call:#}");
        // At the last heartbeat (every 2 s; a loaded machine may delay one), not at the restart.
        let lag = killed_at.duration_since(ended).as_secs_f64();
        assert!(
            (0.0..=4.0).contains(&lag),
            "ended {lag} s before the kill: {call:#}"
        );
        println!(
            "{id}: {:?} ended {lag:.2} s before the kill",
            path_of(&call)
        );
    }
    // Nothing is left open, and the node serves calls again.
    assert!(node
        .calls()
        .unwrap()
        .iter()
        .all(|c| c["ended_at"].is_string()));
    let tag = ua.call("after", "100", 9).unwrap();
    ua.request("BYE", "after", &tag, 2, "", "").unwrap();
    node.wait_for_call(Duration::from_secs(10), |c| {
        c["id"] == "after" && c["hangup_cause"] == "caller-bye"
    })
    .unwrap();
}

#[test]
fn a_message_cut_by_a_sigkill_is_repaired_filed_and_announced_once() {
    let hook = HttpSink::start().unwrap();
    let routes = format!(
        r#"
[[routes]]
number = "leave-message"
plugin = "voicemail"
config = {{ greeting_text = "Leave a message.", mailbox = "crash", max_ms = 60000, silence_ms = 60000, webhook = "http://{}/vm" }}
"#,
        hook.addr
    );
    let mut node = TestNode::start(NodeSpec {
        extra_routes: &routes,
        ..NodeSpec::default()
    })
    .unwrap();
    // The caller speaks (a 440 Hz tone) for longer than the node lives.
    let caller = Baresip::start_with_mic(
        &format!("sip:leave-message@{}", node.sip),
        &tone(440.0, 8000, 40),
    )
    .unwrap();
    let recording = |node: &TestNode| -> Option<Value> {
        node.recordings()
            .ok()?
            .into_iter()
            .find(|r| r["kind"] == "message")
    };
    assert!(
        wait_until(Duration::from_secs(20), || recording(&node)
            .is_some_and(|r| r["state"] == "recording")),
        "the message was not listed while being recorded: {:?}\n{}",
        node.recordings(),
        node.logs()
    );
    // Three seconds of message on disk, then the kill.
    std::thread::sleep(Duration::from_secs(3));
    node.crash_and_restart().unwrap();
    drop(caller);
    assert!(
        wait_until(Duration::from_secs(30), || recording(&node)
            .is_some_and(|r| r["state"] == "recovered")),
        "not recovered: {:?}\n{}",
        node.recordings(),
        node.logs()
    );
    let r = recording(&node).unwrap();
    let duration = r["duration_ms"].as_u64().unwrap();
    assert!(duration >= 1500, "{r:#}");
    // The file is whole and holds the caller's voice.
    let pcm = read_wav_i16(std::path::Path::new(r["path"].as_str().unwrap())).unwrap();
    assert_eq!(pcm.len() as u64 / 8, duration, "{r:#}");
    let voiced = pcm
        .chunks_exact(800)
        .filter(|w| tone_share(w, 8000, 440.0) > 0.5)
        .count();
    assert!(
        voiced * 100 * 10 >= duration as usize * 8,
        "the caller in {voiced} of {duration} ms / 100 ms windows"
    );
    // The voicemail plugin filed and announced it, once.
    let seen = hook
        .next(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no webhook\n{}", node.logs()));
    let msg: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(msg["recording"], r["id"], "{msg:#}");
    assert_eq!(msg["mailbox"], "crash", "{msg:#}");
    assert_eq!(msg["ended_by"], "node-restart", "{msg:#}");
    assert_eq!(msg["duration_ms"].as_u64(), Some(duration), "{msg:#}");
    assert!(
        hook.next(Duration::from_secs(3)).is_none(),
        "announced twice"
    );
    // Another restart hands nothing back again.
    node.crash_and_restart().unwrap();
    assert!(
        hook.next(Duration::from_secs(5)).is_none(),
        "announced again after a restart"
    );
    assert_eq!(recording(&node).unwrap()["state"], "recovered");
}
