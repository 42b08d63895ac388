//! The plugin platform end to end against SIPp: voicemail (reached by an IVR
//! hand-over), survey, the sandbox refusing what a plugin was not granted,
//! `hookline plugin check`, and deploying a new version while a call runs.

use std::time::Duration;

use hookline_tests::{
    hostile_routes, http_get, http_request, path_of, plugin_check, plugin_wasm, read_wav_i16, rms,
    sipp, workspace_root, HttpSink, NodeSpec, SipUa, TestNode,
};
use serde_json::Value;

fn has(path: &[String], prefix: &str) -> bool {
    path.iter().any(|s| s.starts_with(prefix))
}

#[test]
fn ivr_hands_over_to_voicemail_and_the_message_is_kept_when_the_caller_hangs_up() {
    let hook = HttpSink::start().unwrap();
    let routes = format!(
        r#"[[routes]]
number = "vm"
plugin = "ivr"
config = {{ fallback = {{ name = "voicemail", hand_over = "voicemail", hand_over_args = {{ mailbox = "sales", webhook = "http://{}/voicemail" }} }} }}
"#,
        hook.addr
    );
    let node = TestNode::with_routes(&routes).unwrap();
    sipp(
        &node,
        "uac_voicemail.xml",
        "vm",
        &[("caller", "380441112233".into()), ("rtp_sink", "9".into())],
    )
    .unwrap();

    // The webhook announced the message.
    let posted = hook
        .next(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no webhook:\n{}\n{:#?}", node.logs(), node.calls()));
    assert_eq!(posted.method, "POST");
    assert_eq!(posted.path, "/voicemail");
    let msg: Value = serde_json::from_str(&posted.body).unwrap();
    assert_eq!(msg["mailbox"], "sales");
    assert_eq!(msg["caller"], "380441112233");
    assert_eq!(msg["ended_by"], "hung-up", "{msg:#}");
    let id = msg["recording"].as_str().unwrap().to_string();

    // The call record shows the composition and the message.
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "380441112233" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    assert!(
        path.contains(&"hand-over:voicemail".to_string()),
        "{path:?}"
    );
    assert!(path.contains(&format!("voicemail:sales:{id}")), "{path:?}");
    assert!(path.contains(&"voicemail:notified".to_string()), "{path:?}");
    assert_eq!(call["hangup_cause"], "caller-bye");

    // The recording is listed and on disk, and it holds the caller's speech.
    let list = node.recordings().unwrap();
    let rec = list
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap_or_else(|| panic!("recording not listed: {list:#?}"));
    assert_eq!(rec["plugin"], "voicemail");
    assert_eq!(rec["kind"], "message");
    let ms = rec["duration_ms"].as_u64().unwrap();
    assert!((5000..=12000).contains(&ms), "duration {ms} ms: {rec:#}");
    let pcm = read_wav_i16(std::path::Path::new(rec["path"].as_str().unwrap())).unwrap();
    assert_eq!(pcm.len() as u64, ms * 8);
    let loud = pcm.chunks(8000).filter(|s| rms(s) > 300.0).count();
    assert!(
        loud >= 4,
        "only {loud} seconds above silence in the message"
    );
}

#[test]
fn survey_validates_answers_and_posts_the_results() {
    let hook = HttpSink::start().unwrap();
    let routes = format!(
        r#"[[routes]]
number = "svy"
plugin = "survey"
config = {{ webhook = "http://{}/survey", timeout_ms = 6000, questions = [{{ id = "q1", text = "Rate us from 1 to 5.", min = 1, max = 5 }}, {{ id = "q2", text = "Press 1 for yes, 2 for no.", min = 1, max = 2 }}] }}
"#,
        hook.addr
    );
    let node = TestNode::with_routes(&routes).unwrap();
    sipp(
        &node,
        "uac_survey.xml",
        "svy",
        &[
            ("caller", "surveyed".into()),
            ("rtp_sink", "9".into()),
            ("d0", "7".into()),
            ("d1", "4".into()),
            ("d2", "2".into()),
        ],
    )
    .unwrap();
    let posted = hook
        .next(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no webhook:\n{}", node.logs()));
    let result: Value = serde_json::from_str(&posted.body).unwrap();
    assert_eq!(
        result["answers"],
        serde_json::json!({"q1": 4, "q2": 2}),
        "{result:#}"
    );
    assert_eq!(result["complete"], true);
    // The answers are readable over the API too, from the survey's own store.
    let (code, kv) = http_get(node.http, "/api/plugins/survey/kv?prefix=result:", None).unwrap();
    assert_eq!(code, 200, "{kv}");
    let kv: Value = serde_json::from_str(&kv).unwrap();
    let stored: Value = serde_json::from_str(kv[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        stored["answers"],
        serde_json::json!({"q1": 4, "q2": 2}),
        "{kv:#}"
    );
    assert_eq!(kv.as_array().unwrap().len(), 1, "{kv:#}");
    let (code, _) = http_get(node.http, "/api/plugins/nobody/kv", None).unwrap();
    assert_eq!(code, 404);
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "surveyed" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    // The out-of-range key was refused before the valid one.
    let seven = path.iter().position(|s| s == "digits:7");
    let four = path.iter().position(|s| s == "answer:q1=4");
    assert!(seven.is_some() && four > seven, "{path:?}");
    assert!(path.contains(&"answer:q2=2".to_string()), "{path:?}");
    assert_eq!(call["hangup_cause"], "plugin-hangup");
    let (_, metrics) = http_get(node.http, "/metrics", None).unwrap();
    assert!(
        metrics.contains("hookline_plugin_counter_total{plugin=\"survey\",name=\"completed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_plugin_gets_nothing_it_was_not_granted() {
    // A listening address: HTTP and TCP to it would succeed if the sandbox let them.
    let target = HttpSink::start().unwrap();
    let routes = hostile_routes(&[("escape", &format!("escape:{}", target.addr))]);
    let node = TestNode::with_routes(&routes).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    ua.call("escape-1", "escape", 9).unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(15), |c| {
            c["callee"] == "escape" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    for expected in [
        "escape:http=not-allowed",
        "escape:kv=not-allowed",
        "escape:history=not-allowed",
        "escape:record=not-allowed",
        "escape:hand-over=not-allowed",
        "escape:speech=not-allowed",
        "escape:fs=denied",
        "escape:net=denied",
        "escape:enqueue=invalid-argument",
    ] {
        assert!(path.contains(&expected.to_string()), "{expected}: {path:?}");
    }
    assert!(
        target.next(Duration::from_millis(500)).is_none(),
        "a request reached the listener"
    );
    // The author is told which verb wanted which grant: in the call's path
    // and in the node log.
    for (verb, grant) in [
        ("kv-get", "kv"),
        ("call-history", "history"),
        ("record", "recording"),
        ("hand-over", "hand-over:"),
        ("http-fetch", "http:127.0.0.1:"),
    ] {
        assert!(
            path.iter()
                .any(|s| s.starts_with(&format!("not-allowed:{verb}:{grant}"))),
            "no not-allowed:{verb}:{grant}… in {path:?}"
        );
    }
    let logs = node.logs();
    assert!(
        logs.contains("record refused: the plugin is not granted \"recording\""),
        "{logs}"
    );
}

#[test]
fn plugin_check_prints_the_manifest_and_refuses_what_is_not_a_plugin() {
    let config = workspace_root().join("hookline.toml");
    let out = plugin_check(
        &plugin_wasm("hookline-voicemail"),
        &["--config".as_ref(), config.as_os_str()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("name:        voicemail"), "{text}");
    assert!(
        text.contains("needs:       recording, kv, http:*"),
        "{text}"
    );
    assert!(text.contains("grants and routes in"), "{text}");
    // Not a component at all.
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"\0asm\x01\0\0\0garbage").unwrap();
    let out = plugin_check(junk.path(), &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a usable plugin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deploys over the API while a call runs: the running call finishes on the
/// version it started with, the next call gets the new one. The new version
/// is a plugin built against the frozen 0.1.0 WIT: a 0.1.0 plugin runs on
/// this 0.1.x node (the versioning promise).
#[test]
fn deploying_a_new_version_keeps_running_calls_and_serves_new_ones() {
    let routes = format!(
        r#"[[plugins]]
name = "api-0-1-0"
path = "{}"
grants = ["hand-over:voicemail", "speech"]

[[routes]]
number = "hot"
plugin = "api-0-1-0"
config = {{ greeting = ["welcome", "main_menu", "welcome", "main_menu"], fallback = {{ name = "old-version", prompts = ["operator"] }} }}
"#,
        plugin_wasm("hookline-ivr").display()
    );
    let mut node = TestNode::start(NodeSpec {
        extra_routes: &routes,
        node_section: Some("api_token = \"s3cret\""),
        ..NodeSpec::default()
    })
    .unwrap();
    let new_version = std::fs::read(plugin_wasm("hookline-test-api-0-1-0")).unwrap();
    let (code, _) = http_request(
        node.http,
        "PUT",
        "/api/plugins/api-0-1-0",
        None,
        &new_version,
    )
    .unwrap();
    assert_eq!(code, 401, "deploy without the token");

    std::thread::scope(|s| {
        // A call in progress on the old version (6 s).
        let running = s.spawn(|| {
            sipp(
                &node,
                "uac_talk.xml",
                "hot",
                &[("caller", "early".into()), ("rtp_sink", "9".into())],
            )
        });
        std::thread::sleep(Duration::from_millis(1500));
        let (code, body) = http_request(
            node.http,
            "PUT",
            "/api/plugins/api-0-1-0",
            Some("s3cret"),
            &new_version,
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["deployed"]["api_version"], "0.1.0", "{v:#}");
        // A new call while the first still runs gets the new version.
        let ua = SipUa::new(node.sip).unwrap();
        ua.call("after-deploy", "hot", 9).unwrap();
        running.join().unwrap().unwrap();
    });
    let early = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "early" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let later = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == "after-deploy" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let (early_path, later_path) = (path_of(&early), path_of(&later));
    // The running call stayed in the old version's greeting until the caller left.
    assert_eq!(early_path[0], "prompt:welcome", "{early_path:?}");
    assert!(!has(&early_path, "api:"), "{early_path:?}");
    assert_eq!(early["hangup_cause"], "caller-bye");
    assert_eq!(later_path, ["api:0.1.0", "prompt:support"], "{later:#}");
    // Each record says which version of the plugin the call ran on.
    assert_eq!(later["plugin_version"], "0.1.0", "{later:#}");
    assert!(early["plugin_version"].is_string(), "{early:#}");

    let (_, list) = http_get(node.http, "/api/plugins", Some("s3cret")).unwrap();
    assert!(
        list.contains("\"name\":\"api-0-1-0\",\"version\":\"0.1.0\""),
        "{list}"
    );

    // A version that needs more than the plugin was granted is refused; the
    // deployed one stays.
    let greedy = std::fs::read(plugin_wasm("hookline-voicemail")).unwrap();
    let (code, body) = http_request(
        node.http,
        "PUT",
        "/api/plugins/api-0-1-0",
        Some("s3cret"),
        &greedy,
    )
    .unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("does not grant this plugin"), "{body}");
    let (code, _) = http_request(
        node.http,
        "PUT",
        "/api/plugins/api-0-1-0",
        Some("s3cret"),
        b"not wasm",
    )
    .unwrap();
    assert_eq!(code, 422);
    // A component named otherwise is refused, naming both: deployed, it would
    // have run in this plugin's place.
    let ivr = std::fs::read(plugin_wasm("hookline-ivr")).unwrap();
    let (code, body) = http_request(
        node.http,
        "PUT",
        "/api/plugins/api-0-1-0",
        Some("s3cret"),
        &ivr,
    )
    .unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("names itself \"ivr\", not \"api-0-1-0\""),
        "{body}"
    );
    let ua = SipUa::new(node.sip).unwrap();
    ua.call("after-refusal", "hot", 9).unwrap();
    let again = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == "after-refusal" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(path_of(&again)[0], "api:0.1.0");

    // After a restart the deployed version still runs, and the log says it
    // wins over the config's path.
    node.crash_and_restart().unwrap();
    let logs = node.logs();
    assert!(
        logs.contains("plugin api-0-1-0: running the version deployed over the API"),
        "{logs}"
    );
    let ua = SipUa::new(node.sip).unwrap();
    ua.call("after-restart", "hot", 9).unwrap();
    let restarted = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == "after-restart" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(path_of(&restarted)[0], "api:0.1.0");
}

#[test]
fn early_media_dtmf_out_and_a_rejection_from_a_plugin() {
    let routes = hostile_routes(&[("verbs", "verbs")]);
    let node = TestNode::with_routes(&routes).unwrap();
    let sink = hookline_tests::RtpSink::bind().unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    ua.invite("verbs-1", "verbs", sink.port).unwrap();
    let early = ua
        .expect("verbs-1", "SIP/2.0 183", Duration::from_secs(10))
        .unwrap();
    assert!(
        early.contains("m=audio"),
        "183 carries the SDP answer: {early}"
    );
    ua.expect("verbs-1", "SIP/2.0 486", Duration::from_secs(10))
        .unwrap();
    let packets = sink.finish();
    // The tone and the two keys were heard before the call was refused.
    assert!(packets.len() >= 30, "{} early media packets", packets.len());
    let audible =
        hookline_tests::audible_windows(&hookline_tests::heard_between(&packets, 0.0, 60.0), 8000);
    assert!(
        audible >= 3,
        "the tone and keys: {audible} audible 100 ms windows of early media"
    );
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["callee"] == "verbs" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert!(call["answered_at"].is_null(), "{call:#}");
    assert_eq!(call["hangup_cause"], "rejected-486");
    let path = path_of(&call);
    // Kyiv's offset when the call ran, from the zone database (EET or EEST:
    // a literal would fail half of the year).
    let started: jiff::Timestamp = call["started_at"].as_str().unwrap().parse().unwrap();
    let kyiv = started
        .to_zoned(jiff::tz::TimeZone::get("Europe/Kyiv").unwrap())
        .offset()
        .seconds();
    let offset = format!("verbs:kyiv-offset={kyiv}");
    for step in [
        "early-media",
        "verbs:event=timeout",
        "send-dtmf:15",
        "language:uk",
        offset.as_str(),
        "verbs:bad-prompt=invalid-argument",
        "reject:486",
    ] {
        assert!(path.contains(&step.to_string()), "{step}: {path:?}");
    }
}

#[test]
fn a_recorded_route_keeps_both_sides_of_the_call() {
    let routes = r#"[[routes]]
number = "rec"
plugin = "ivr"
record = true
config = { greeting = ["welcome", "main_menu", "welcome", "main_menu", "welcome", "main_menu"], fallback = { name = "end" } }
"#;
    let node = TestNode::with_routes(routes).unwrap();
    // The caller listens for 6 s, then talks for ~7 s and hangs up.
    sipp(
        &node,
        "uac_voicemail.xml",
        "rec",
        &[("caller", "recorded".into()), ("rtp_sink", "9".into())],
    )
    .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "recorded" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let list = node.recordings().unwrap();
    let rec = list
        .iter()
        .find(|r| r["call_id"] == call["id"])
        .unwrap_or_else(|| panic!("no recording for the call: {list:#?}"));
    assert_eq!(rec["kind"], "session");
    let ms = rec["duration_ms"].as_u64().unwrap();
    assert!((11_000..=16_000).contains(&ms), "{ms} ms");
    let channels =
        hookline_tests::read_wav_channels(std::path::Path::new(rec["path"].as_str().unwrap()))
            .unwrap();
    assert_eq!(channels.len(), 2);
    let (left, right) = (&channels[0], &channels[1]);
    let second =
        |ch: &[i16], s: usize| rms(&ch[(s * 8000).min(ch.len())..((s + 1) * 8000).min(ch.len())]);
    // First seconds: the caller is silent and hears the greeting.
    assert!(
        second(right, 1) > 500.0,
        "greeting not in the right channel"
    );
    assert!(
        second(left, 1) < 100.0,
        "caller channel not silent before they talk"
    );
    // Later: the caller's speech is in the left channel.
    let talking = (7..12).filter(|s| second(left, *s) > 300.0).count();
    assert!(
        talking >= 3,
        "caller's speech missing: {talking} loud seconds"
    );
}

#[test]
fn a_plugin_past_its_wall_clock_budget_loses_the_call_and_nothing_else() {
    let routes = hostile_routes(&[("wall", "park")]);
    let node = TestNode::start(NodeSpec {
        extra_routes: &routes,
        node_section: Some("max_calls = 100\nmax_call_s = 2"),
        ..NodeSpec::default()
    })
    .unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    ua.invite("wall-1", "wall", 9).unwrap();
    // The plugin waits forever; the node ends the call at the budget (480: never answered).
    ua.expect("wall-1", "SIP/2.0 480", Duration::from_secs(10))
        .unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["callee"] == "wall" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(call["hangup_cause"], "plugin-trap", "{call:#}");
    // The node still takes calls.
    let (code, _) = http_get(node.http, "/health", None).unwrap();
    assert_eq!(code, 200);
}

/// Routes with schedules: on a holiday the office route is closed and the
/// next route with the same number (the out-of-hours one) takes the call.
#[test]
fn a_closed_schedule_sends_the_call_to_the_out_of_hours_route() {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    // Civil date from days since 1970-01-01 (UTC), Howard Hinnant's algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let today = format!("{y:04}-{m:02}-{d:02}");
    let routes = format!(
        r#"[[routes]]
number = "office"
plugin = "ivr"
schedule = {{ timezone = "UTC", holidays = ["{today}"] }}
config = {{ fallback = {{ name = "open", prompts = ["sales"] }} }}

[[routes]]
number = "office"
plugin = "ivr"
config = {{ fallback = {{ name = "closed", prompts = ["operator"] }} }}

[[routes]]
number = "always"
plugin = "ivr"
schedule = {{ timezone = "Asia/Omsk", days = ["mon-sun"], hours = ["00:00-24:00"] }}
config = {{ fallback = {{ name = "open", prompts = ["sales"] }} }}
"#
    );
    let node = TestNode::with_routes(&routes).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    for (id, number, branch) in [
        ("s1", "office", "branch:closed"),
        ("s2", "always", "branch:open"),
    ] {
        ua.call(id, number, 9).unwrap();
        let call = node
            .wait_for_call(Duration::from_secs(15), |c| {
                c["id"] == id && c["hangup_cause"].is_string()
            })
            .unwrap();
        assert!(
            path_of(&call).contains(&branch.to_string()),
            "{number}: {call:#}"
        );
    }
}
