//! An uploaded auto-responder message: an operator PUTs a WAV over the API
//! and a department's no-answer action plays it to the next caller, with no
//! restart; a bad upload is refused and never replaces a good prompt; the
//! upload survives a restart and can be removed.

use std::time::Duration;

use hookline_tests::{
    http_get, http_request, steps, tone, tone_windows, write_wav, Baresip, TestNode,
};

const SETUP: &str = r#"[[extensions]]
user = "206"
password = "six"

[[groups]]
name = "night"
number = "690"
members = ["206"]

[[routes]]
number = "690"
plugin = "ivr"
config = { greeting = [], fallback = { name = "night", dial = ["night"], dial_timeout_ms = 3000, unanswered = ["away_message"] } }
"#;

/// The message's tone: 900 Hz, recorded at 16 kHz in stereo (the node
/// converts it to its 8 kHz mono prompt form).
const HZ: f64 = 900.0;

fn upload(node: &TestNode, lang: &str, id: &str, body: &[u8]) -> (u16, String) {
    let path = format!("/api/prompts/{lang}/{id}");
    http_request(node.http, "PUT", &path, node.token.as_deref(), body).unwrap()
}

fn call(node: &TestNode) -> (Baresip, serde_json::Value) {
    let phone = Baresip::start(&format!("sip:690@{}", node.sip)).unwrap();
    let record = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["caller"] == "bs" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    (phone.quit().unwrap(), record)
}

#[test]
fn an_uploaded_message_is_what_an_unanswered_caller_hears() {
    let mut node = TestNode::with_routes(SETUP).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("away.wav");
    // Stereo: the same tone in both channels.
    write_wav(&wav, 16_000, 2, &tone(HZ, 16_000, 3)).unwrap();
    let good = std::fs::read(&wav).unwrap();

    // Refused: not a WAV, a bad id, a language the node does not speak.
    assert_eq!(upload(&node, "en", "away_message", b"RIFF junk").0, 400);
    assert_eq!(upload(&node, "en", "Away.Message", &good).0, 400);
    assert_eq!(upload(&node, "xx", "away_message", &good).0, 404);

    let (status, body) = upload(&node, "en", "away_message", &good);
    assert_eq!(status, 201, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        (2900..=3100).contains(&info["duration_ms"].as_u64().unwrap_or(0)),
        "{info}"
    );
    // A broken upload later leaves the good one in place.
    assert_eq!(upload(&node, "en", "away_message", &good[..40]).0, 400);

    // Nobody in the department is registered: the no-answer action plays
    // the uploaded message.
    let (phone, record) = call(&node);
    assert!(
        steps(&record).contains(&"prompt:away_message"),
        "{record:#}"
    );
    let path = phone
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", phone.log()));
    let heard = tone_windows(&path, HZ);
    eprintln!("windows with the message tone: {heard}");
    assert!(heard >= 20, "the message's tone in {heard} of 30 windows");

    // Kept across a restart, listed as uploaded; removed on DELETE.
    node.crash_and_restart().unwrap();
    let (_, list) = http_get(node.http, "/api/prompts", None).unwrap();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let uploaded = &list["en"]["uploaded"];
    assert!(
        uploaded
            .as_array()
            .is_some_and(|u| u.contains(&"away_message".into())),
        "{list}"
    );
    let (status, _) = http_request(
        node.http,
        "DELETE",
        "/api/prompts/en/away_message",
        node.token.as_deref(),
        b"",
    )
    .unwrap();
    assert_eq!(status, 204);
    let (_, list) = http_get(node.http, "/api/prompts", None).unwrap();
    assert!(!list.contains("away_message"), "{list}");
}
