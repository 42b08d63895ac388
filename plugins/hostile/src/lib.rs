//! A hostile plugin for the sandbox tests. Its route config is one word, the
//! misbehaviour: `loop` (burn CPU forever), `trap` (panic), `memory` (allocate
//! until the sandbox refuses), `recurse` (recursion without end), `escape:<host:port>` (try everything it was not
//! granted, HTTP and TCP to that listening address among it, and note each
//! refusal in the call record). Benchmarks use `park` (wait in a
//! verb, as an IVR waiting for a key does) and `ping:<n>` (n host calls).
//!
//! Its `prepare` (run ahead of a call on a spare instance) keeps what it saw
//! for the call to note as `prepared:<what>` when the mode starts with
//! `prepare`: the config (`prepared`), the outcome of verbs tried there
//! (`prepare-escape`), or it burns CPU forever (`prepare-loop`) or sleeps
//! (`prepare-sleep`).

use hookline_sdk::media::{RecordOptions, SpeechOptions};
use hookline_sdk::{data, media, routing, CallError, CallInfo, Manifest, Plugin};

struct Hostile;

thread_local! {
    /// What `prepare` saw, for the call to note.
    static PREPARED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn mode_of(config: &str) -> String {
    config.trim_matches(|c| c == '"' || c == ' ').to_string()
}

impl Plugin for Hostile {
    fn prepare(config: String) {
        let mode = mode_of(&config);
        let seen = match mode.as_str() {
            // Waits (a WASI sleep): the epoch does not see it, the clock must.
            "prepare-sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(600));
                "slept".to_string()
            }
            "prepare-loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            // No call and no grants here: each must be refused.
            "prepare-escape" => format!(
                "answer={},kv={},hangup={}",
                outcome(media::answer()),
                outcome(data::kv_get("k")),
                outcome(routing::hangup())
            ),
            _ => format!("config={mode}"),
        };
        PREPARED.with(|p| *p.borrow_mut() = Some(seen));
    }

    fn manifest() -> Manifest {
        // Asks for nothing: every capability below must be refused. Its CPU
        // is bounded by the node's budget, which each test sets.
        Manifest {
            cpu_ms: 10_000,
            ..hookline_sdk::manifest("hostile", env!("CARGO_PKG_VERSION"))
        }
    }

    fn handle_call(info: CallInfo) -> Result<(), String> {
        let mode = mode_of(&info.config);
        if mode.starts_with("prepare") {
            let seen = PREPARED.with(|p| p.borrow_mut().take());
            media::answer().map_err(|e| e.to_string())?;
            data::mark(&format!("prepared:{}", seen.as_deref().unwrap_or("none")));
            return routing::hangup().map_err(|e| e.to_string());
        }
        if let Some(n) = mode.strip_prefix("ping:") {
            let n: u64 = n.parse().unwrap_or(0);
            let mut t = 0;
            for _ in 0..n {
                t ^= data::now_ms();
            }
            std::hint::black_box(t);
            return Ok(());
        }
        if mode == "park" {
            return media::next_event(600_000)
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        if mode == "verbs" {
            return verbs().map_err(|e| e.to_string());
        }
        media::answer().map_err(|e| e.to_string())?;
        match mode.as_str() {
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "trap" => panic!("hostile plugin traps on purpose"),
            // Recursion without end, as a runaway interpreter does: the
            // guest's stack limit must trap it (the node's own stack is not
            // the guest's to overflow).
            "recurse" => {
                std::hint::black_box(deep(0));
                Ok(())
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            // Busy computing for MS milliseconds, reading no events
            // meanwhile (the test floods the call with keys).
            m if m.starts_with("spin:") => {
                let ms: u64 = m["spin:".len()..].parse().unwrap_or(0);
                let end = data::now_ms() + ms;
                while data::now_ms() < end {}
                data::mark("spun");
                Ok(())
            }
            m if m.starts_with("escape:") => {
                escape(&info, &m["escape:".len()..]);
                routing::hangup().map_err(|e| e.to_string())
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

/// Recurses until the stack runs out; each frame keeps a buffer so no
/// optimiser turns it into a loop.
fn deep(n: u64) -> u64 {
    let frame = std::hint::black_box([n as u8; 256]);
    if std::hint::black_box(n) == u64::MAX {
        return 0; // never: the stack ends first
    }
    deep(n + 1).wrapping_add(frame[0] as u64)
}

fn outcome<T>(r: Result<T, CallError>) -> String {
    match r {
        Ok(_) => "allowed".into(),
        Err(CallError::NotAllowed) => "not-allowed".into(),
        Err(CallError::Unavailable) => "unavailable".into(),
        Err(CallError::InvalidArgument(_)) => "invalid-argument".into(),
        Err(e) => format!("{e:?}").to_lowercase(),
    }
}

/// Verbs that need no grant, before answering: early media, a tone, an
/// event wait, DTMF out, language, local time, then a SIP rejection.
fn verbs() -> Result<(), CallError> {
    media::pre_answer()?;
    media::play(&[hookline_sdk::tone(&[440], 300)], false)?;
    match media::next_event(300)? {
        media::CallEvent::Timeout => data::mark("verbs:event=timeout"),
        other => data::mark(&format!("verbs:event={other:?}")),
    }
    media::send_dtmf("15")?;
    media::set_language("uk")?;
    let t = data::local_time("Europe/Kyiv")?;
    data::mark(&format!("verbs:kyiv-offset={}", t.utc_offset_s));
    let bad = media::play(&[hookline_sdk::prompt("no-such-prompt")], false);
    data::mark(&format!("verbs:bad-prompt={}", outcome(bad)));
    routing::reject(486)
}

/// Tries what a plugin with no grants must not do; marks each outcome.
fn escape(info: &CallInfo, target: &str) {
    let http = data::http_fetch(&data::HttpRequest {
        method: "GET".into(),
        url: format!("http://{target}/"),
        headers: vec![],
        body: None,
        timeout_ms: 1000,
    });
    data::mark(&format!("escape:http={}", outcome(http)));
    data::mark(&format!("escape:kv={}", outcome(data::kv_get("k"))));
    data::mark(&format!(
        "escape:history={}",
        outcome(data::call_history(&info.caller, 5))
    ));
    let rec = media::record(&RecordOptions {
        beep: false,
        max_ms: 1000,
        silence_ms: 0,
        terminators: String::new(),
    });
    data::mark(&format!("escape:record={}", outcome(rec)));
    data::mark(&format!(
        "escape:hand-over={}",
        outcome(routing::hand_over("ivr", "{}"))
    ));
    let speech = media::collect_speech(&SpeechOptions {
        prompts: vec![],
        language: None,
        phrases: vec![],
        timeout_ms: 1000,
        max_ms: 1000,
    });
    data::mark(&format!("escape:speech={}", outcome(speech)));
    // WASI: no directories are preopened and no sockets are allowed.
    let fs = std::fs::read("/etc/passwd").map(|_| ()).map_err(|_| ());
    data::mark(&format!(
        "escape:fs={}",
        if fs.is_ok() { "read" } else { "denied" }
    ));
    let net = std::net::TcpStream::connect(target)
        .map(|_| ())
        .map_err(|_| ());
    data::mark(&format!(
        "escape:net={}",
        if net.is_ok() { "connected" } else { "denied" }
    ));
    // A queue the node does not have is refused cleanly (no wait, no trap).
    let q = routing::enqueue(
        "sales",
        hookline_sdk::routing::EnqueueOptions {
            priority: 0,
            max_wait_ms: 0,
        },
    );
    data::mark(&format!("escape:enqueue={}", outcome(q)));
}

hookline_sdk::export!(Hostile);
