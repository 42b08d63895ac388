//! Test kit: runs a real `hookline` node process and real peers (SIPp,
//! baresip) against it, and reads back what the node did (call records, RTP).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod audio;
mod baresip;
mod http;
mod node;
mod plugins;
mod rtp;
mod sip_ua;
mod sipp;
mod speech;

pub use audio::*;
pub use baresip::*;
pub use http::*;
pub use node::*;
pub use plugins::*;
pub use rtp::*;
pub use sip_ua::*;
pub use sipp::*;
pub use speech::*;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The node binary: `$HOOKLINE_BIN`, else `target/<profile>/hookline`.
pub fn hookline_bin(profile: &str) -> PathBuf {
    if let Ok(p) = std::env::var("HOOKLINE_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join(profile).join("hookline")
}

/// The sample IVR component.
pub fn ivr_wasm() -> PathBuf {
    workspace_root().join("target/wasm32-wasip2/release/hookline_ivr.wasm")
}

/// Signalling ports for peers (baresip, SIPp UAS, the node's SIP and HTTP)
/// come from 6000-9999: below SIPp's media ports and the nodes' RTP ranges,
/// and outside the kernel's ephemeral range, where a port asked of the
/// kernel and let go could be handed to someone else before the peer binds
/// it. Each process walks the range from its own random start, so tests
/// running side by side rarely meet; a port in use is skipped.
fn kit_port(free: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 6000;
    const COUNT: u32 = 4000;
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Even ports only: baresip takes the next one for SIP over TLS.
    let start = *START.get_or_init(|| rand_u32() % (COUNT / 2));
    for _ in 0..COUNT / 2 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % (COUNT / 2) * 2) as u16;
        if free(port) {
            return port;
        }
    }
    panic!("no free port in {FIRST}-{}", FIRST + COUNT - 1)
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

pub fn free_udp_port() -> u16 {
    kit_port(udp_free)
}

/// A media port for SIPp: SIPp binds it and the next three (RTCP, video RTP/RTCP),
/// so pick a run of four free ports below the kernel's ephemeral range, where
/// nothing else in the tests takes ports at random.
pub fn free_media_port() -> u16 {
    for _ in 0..200 {
        let base = 10_000 + (rand_u32() % 2_400) as u16 * 4;
        if (base..base + 4).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    free_udp_port()
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ std::process::id() as u128);
    h.finish() as u32
}

/// A port free for both UDP and TCP (the node's SIP listens on both).
pub fn free_sip_port() -> u16 {
    kit_port(|p| udp_free(p) && tcp_free(p))
}

pub fn free_tcp_port() -> u16 {
    kit_port(tcp_free)
}

/// A call record's route path as strings.
pub fn path_of(call: &Value) -> Vec<String> {
    call["path"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A call record's path as borrowed steps (for `contains(&"step")`).
pub fn steps(call: &Value) -> Vec<&str> {
    call["path"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Config for agents reached straight through the IVR: per `(user,
/// password, number)` an extension, and a route on `number` whose IVR says
/// nothing and dials the extension (30 s), so the dial decides when the
/// caller is answered.
pub fn agent_dial_routes(agents: &[(&str, &str, &str)]) -> String {
    agents
        .iter()
        .map(|(user, password, number)| {
            format!(
                "[[extensions]]\nuser = \"{user}\"\npassword = \"{password}\"\n\n\
                 [[routes]]\nnumber = \"{number}\"\nplugin = \"ivr\"\n\
                 config = {{ fallback = {{ name = \"agent\", dial = [\"{user}\"], dial_timeout_ms = 30000 }} }}\n\n"
            )
        })
        .collect()
}

/// A record's timestamp field (`started_at`, `answered_at`, `ended_at`);
/// fails the test when it is not set, so an open record is never read as
/// "ended at the beginning of time".
pub fn at<'a>(record: &'a Value, field: &str) -> &'a str {
    record[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not set: {record:#}"))
}

/// A record's timestamp field as seconds since the epoch (fails like [`at`]).
pub fn secs_of(record: &Value, field: &str) -> f64 {
    let t: jiff::Timestamp = at(record, field)
        .parse()
        .unwrap_or_else(|e| panic!("{field}: {e}: {record:#}"));
    t.as_millisecond() as f64 / 1000.0
}

/// Whether a command is installed (tests that need a peer say so when it is missing).
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Who took a call: its `answered:<agent>` step.
pub fn answered_by(record: &Value) -> String {
    steps(record)
        .iter()
        .find_map(|s| s.strip_prefix("answered:"))
        .unwrap_or("")
        .to_string()
}

/// Polls `f` every 200 ms until it holds or `timeout` passes; its last answer.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// The SIPp caller of `uac_ivr_dtmf.xml` reached the support branch of the
/// sample IVR; its record.
pub fn sipp_reached_support(node: &TestNode) -> Value {
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "sipp" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert!(
        path_of(&call).contains(&"branch:support".to_string()),
        "{call:#}"
    );
    call
}

/// What a sink got ends with the whole support prompt, unbroken and audible
/// (A-law): the caller heard the menu's answer, not silence or a fragment.
pub fn heard_the_support_prompt(node: &TestNode, packets: &[Received]) {
    let spurts = talkspurts(packets, 8);
    let support = spurts.last().expect("no talkspurt at all");
    let prompt_ms = wav_duration_ms(&node.prompt_wav("support")).unwrap();
    assert!(
        (support.len() as u64 * 20).abs_diff(prompt_ms) <= 60,
        "support prompt {prompt_ms} ms, heard {} ms",
        support.len() * 20
    );
    for w in support.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
    }
    let pcm: Vec<i16> = support
        .iter()
        .flat_map(|p| p.payload.iter().map(|b| alaw_to_linear(*b)))
        .collect();
    assert!(rms(&pcm) > 500.0);
}
