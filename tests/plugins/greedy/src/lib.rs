//! A plugin that uses what it was granted without restraint, for the quota
//! tests: its route config is one word, the excess. It notes in the call
//! record how far it got and the error that stopped it, then hangs up.
//!
//! - `kv`: distinct 60 KiB values until the store refuses.
//! - `log`: 100,000 log lines as fast as it can.
//! - `say`: distinct short texts (espeak-ng, Bulgarian) until speech is refused.
//! - `http:<url>`: GETs of the URL until HTTP is refused (or 500 tries).
//! - `fetch:<url>`: one GET; the outcome (status or error) goes in the record.
//! - `counters`: 1,000 distinct counter names.
//! - `linger`: waits for the hang-up, then keeps running (a slow webhook).

use hookline_sdk::{data, media, routing, CallError, CallInfo, Manifest, Plugin};

struct Greedy;

fn outcome<T>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(CallError::NotAllowed) => "not-allowed".into(),
        Err(CallError::Failed(m)) if m.starts_with("quota-exceeded") => "quota-exceeded".into(),
        Err(e) => format!("{e:?}").to_lowercase(),
    }
}

impl Plugin for Greedy {
    fn manifest() -> Manifest {
        let mut m = hookline_sdk::manifest("greedy", env!("CARGO_PKG_VERSION"));
        m.needs = vec!["kv".into(), "http:*".into()];
        m.cpu_ms = 60_000;
        m
    }

    fn handle_call(info: CallInfo) -> Result<(), String> {
        let mode = info
            .config
            .trim_matches(|c| c == '"' || c == ' ')
            .to_string();
        media::answer().map_err(|e| e.to_string())?;
        match mode.as_str() {
            "kv" => {
                let value = "v".repeat(60 << 10);
                let mut n = 0;
                let end = loop {
                    let r = data::kv_set(&format!("k{n}"), &value, None);
                    if r.is_err() || n >= 10_000 {
                        break r;
                    }
                    n += 1;
                };
                data::mark(&format!("greedy:kv:{n}:{}", outcome(&end)));
            }
            "log" => {
                for i in 0..100_000 {
                    hookline_sdk::info(&format!("greedy log line {i} {}", "x".repeat(200)));
                }
                data::mark("greedy:log:done");
            }
            "say" => {
                let mut n = 0;
                let end = loop {
                    let text = format!("{n}. {}", "ла ".repeat(12));
                    let r = media::play(&[hookline_sdk::say_in(&text, "bg")], false);
                    if r.is_err() || n >= 1000 {
                        break r;
                    }
                    n += 1;
                };
                data::mark(&format!("greedy:say:{n}:{}", outcome(&end)));
            }
            "counters" => {
                for i in 0..1000 {
                    data::counter_add(&format!("c{i}"), 1);
                }
                data::mark("greedy:counters:done");
            }
            "linger" => {
                while !matches!(media::next_event(60_000), Err(CallError::HungUp)) {}
                data::mark("greedy:linger:hung-up");
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            m if m.starts_with("http:") => {
                let url = &m["http:".len()..];
                let mut n = 0;
                let end = loop {
                    let r = hookline_sdk::http_get(url, 2000);
                    if r.is_err() || n >= 500 {
                        break r.map(|_| ());
                    }
                    n += 1;
                };
                data::mark(&format!("greedy:http:{n}:{}", outcome(&end)));
            }
            m if m.starts_with("fetch:") => {
                let r = hookline_sdk::http_get(&m["fetch:".len()..], 2000);
                let what = match &r {
                    Ok((status, _)) => format!("status-{status}"),
                    Err(_) => outcome(&r),
                };
                data::mark(&format!("greedy:fetch:{what}"));
            }
            other => return Err(format!("unknown mode {other:?}")),
        }
        routing::hangup().map_err(|e| e.to_string())
    }
}

hookline_sdk::export!(Greedy);
