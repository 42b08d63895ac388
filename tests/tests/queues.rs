//! A queue in front of a department, against a registered baresip agent: two
//! callers wait while the agent is in do-not-disturb, hear music and their
//! positions, and are connected first come, first served; a third leaves the
//! queue with its key and lands in voicemail (the no-answer action).

use std::time::Duration;

use hookline_tests::{
    at, http_get, http_request, read_wav_i16, rms, secs_of, steps, tone_share, Baresip, TestNode,
};
use serde_json::Value;

const SETUP: &str = r#"[[extensions]]
user = "203"
password = "three"

[[groups]]
name = "help"
strategy = "all"
members = ["203"]

[[queues]]
name = "support"
number = "700"
group = "help"
announce_s = 4
leave_digit = "0"
ring_s = 10

[[routes]]
number = "700"
plugin = "ivr"
config = { fallback = { name = "queue", dial = ["support"], dial_timeout_ms = 90000, hand_over = "voicemail", hand_over_args = { mailbox = "support" } } }
"#;

fn dnd(node: &TestNode, on: bool) {
    let body: &[u8] = if on { b"on" } else { b"off" };
    let (status, _) = http_request(
        node.http,
        "PUT",
        "/api/agents/203/dnd",
        node.token.as_deref(),
        body,
    )
    .unwrap();
    assert_eq!(status, 204);
}

fn record_of(node: &TestNode, known: &[Value]) -> Value {
    node.wait_for_call(Duration::from_secs(60), |c| {
        c["callee"] == "700"
            && c["parent"].is_null()
            && c["hangup_cause"].is_string()
            && !known.contains(&c["id"])
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()))
}

/// The leg that connected a queued caller to the agent.
fn answered_leg(node: &TestNode, record: &Value) -> Value {
    node.ended_legs_of(record)
        .into_iter()
        .find(|c| c["answered_at"].is_string())
        .unwrap_or_else(|| panic!("no answered leg for {record:#}"))
}

fn metric(node: &TestNode, name: &str) -> String {
    let (_, metrics) = http_get(node.http, "/metrics", None).unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or("")
        .to_string()
}

#[test]
fn callers_wait_with_music_and_positions_and_are_served_in_order() {
    let node = TestNode::with_routes(SETUP).unwrap();
    let _agent = node.agent("203", "three", &vec![0; 8000 * 120]).unwrap();
    dnd(&node, true);

    let first =
        Baresip::start_with_mic(&format!("sip:700@{}", node.sip), &vec![0; 8000 * 20]).unwrap();
    // The first caller is in the queue before the second dials.
    let waiting = |n: usize| {
        metric(&node, "hookline_queue_waiting{queue=\"support\"}")
            == format!("hookline_queue_waiting{{queue=\"support\"}} {n}")
    };
    assert!(
        hookline_tests::wait_until(Duration::from_secs(20), || waiting(1)),
        "{}",
        node.logs()
    );
    let second =
        Baresip::start_with_mic(&format!("sip:700@{}", node.sip), &vec![0; 8000 * 40]).unwrap();
    // Both wait: nobody is free.
    assert!(
        hookline_tests::wait_until(Duration::from_secs(20), || waiting(2)),
        "{}",
        node.logs()
    );
    // Long enough to hear an announcement (every 4 s) over the music.
    std::thread::sleep(Duration::from_secs(5));
    dnd(&node, false);

    let a = record_of(&node, &[]);
    let b = record_of(&node, std::slice::from_ref(&a["id"]));
    let (pa, pb) = (steps(&a), steps(&b));
    assert!(pa.contains(&"queue:support"), "{a:#}");
    assert!(pa.contains(&"queue:position:1"), "{a:#}");
    assert!(pb.contains(&"queue:position:2"), "{b:#}");
    assert!(
        pa.contains(&"answered:203") && pb.contains(&"answered:203"),
        "{a:#}\n{b:#}"
    );
    // First come, first served: the first caller's leg rang first.
    let (leg_a, leg_b) = (answered_leg(&node, &a), answered_leg(&node, &b));
    assert!(
        at(&leg_a, "started_at") < at(&leg_b, "started_at"),
        "the second caller was served first:\n{a:#}\n{b:#}"
    );
    // The second caller heard announcements and music for the whole wait
    // (measured 0.82 of it audible: the announcements have pauses),
    // from its answer until the agent's, and then the agent (who sends
    // silence): the music stopped.
    let second = second.quit().unwrap();
    let heard = read_wav_i16(&second.heard().expect("recorded")).unwrap();
    let audible: Vec<bool> = heard.chunks_exact(800).map(|c| rms(c) > 300.0).collect();
    let waited = ((secs_of(&leg_b, "answered_at") - secs_of(&b, "answered_at")) * 10.0) as usize;
    assert!(waited >= 50, "the second caller waited {waited} × 100 ms");
    let share = |w: &[bool]| w.iter().filter(|a| **a).count() as f64 / w.len().max(1) as f64;
    let (during, after) = (
        share(&audible[..waited.min(audible.len())]),
        share(&audible[(waited + 5).min(audible.len())..]),
    );
    // The hold music itself (the node's notes, each a pure tone), not only
    // the announcements' speech: windows where one note holds most energy.
    let notes = [262.0, 294.0, 330.0, 349.0, 392.0, 523.0];
    let wait = &heard[..(waited * 800).min(heard.len())];
    let music: Vec<bool> = wait
        .chunks_exact(800)
        .map(|w| rms(w) > 300.0 && notes.iter().any(|hz| tone_share(w, 8000, *hz) > 0.5))
        .collect();
    let music = share(&music);
    eprintln!(
        "audible while waiting {during:.2} (music {music:.2}), after the agent answered {after:.2}"
    );
    // Measured 0.36 (4 s of music between announcements); 0 before the
    // queue counted its interval from the end of an announcement.
    assert!(music >= 0.2, "hold music in only {music:.2} of the wait");
    assert!(
        during >= 0.7,
        "music and announcements in {during:.2} of the {waited} × 100 ms wait"
    );
    assert!(
        after <= 0.1,
        "the music went on after the agent answered: {after:.2}"
    );
    drop(first);
    assert_eq!(
        metric(&node, "hookline_queue_answered_total{queue=\"support\"}"),
        "hookline_queue_answered_total{queue=\"support\"} 2"
    );

    // Leaving with 0: the no-answer action (voicemail) takes the call.
    dnd(&node, true);
    let leaver =
        Baresip::start_with_mic(&format!("sip:700@{}", node.sip), &vec![0; 8000 * 12]).unwrap();
    leaver.press_when_answered(&node, "0");
    let c = record_of(&node, &[a["id"].clone(), b["id"].clone()]);
    let pc = steps(&c);
    assert!(pc.contains(&"queue:left"), "{c:#}");
    assert!(pc.contains(&"hand-over:voicemail"), "{c:#}");
}
