//! Calls listening for speech at scale: N calls wait in a spoken menu (the
//! node's listener per call: endpointer only), a few of them speak, and a
//! handful of pooled recognizers serve whoever speaks. In process, the
//! node's own `speech::listen` with PocketSphinx and its permits.
//!
//! Workload: every call gets one 20 ms chunk of 8 kHz audio every 20 ms (50
//! chunks per call per second in; nothing out): quiet, except that from 2 s
//! on `--speakers-per-s` calls a second each say "technical support" once
//! (espeak-ng) into a menu of four phrases.
//!
//! Reported: CPU of listening alone (the quiet first 2 s) as listening calls
//! per core, memory per listening call (RSS), and for the speakers the time
//! from the end of their speech to the result (it includes the endpointer's
//! 800 ms of trailing silence; `decode_ms` is what is left after it), how
//! many were recognised as the right phrase, and how many found every
//! recognizer busy.
//!
//! `cargo bench -p hookline-benches --bench listening -- --calls 500 --recognizers 4 --seconds 30 --speakers-per-s 2`

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookline::speech::asr::{match_phrase, AsrError, Engine};
use hookline::speech::listen::{listen, Heard, Recognition, END_SILENCE_MS};
use hookline::speech::pocketsphinx::{PocketSphinx, DEFAULT_MODEL};
use hookline::speech::tts::{Espeak, Synthesizer};
use hookline_benches::arg;
use hookline_benches::proc_stats::{cpu_seconds, rss_mib};
use tokio::sync::mpsc::unbounded_channel;

const FRAME: usize = 160;

/// A call's recognition: which call, when it came, what was recognised.
type Outcome = (usize, Instant, Result<String, AsrError>);

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let calls = arg("--calls", 500) as usize;
    let permits = arg("--recognizers", 4) as usize;
    let seconds = arg("--seconds", 30);
    let speakers_per_s = arg("--speakers-per-s", 2);
    let pid = std::process::id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let menu: Vec<String> = ["sales", "technical support", "billing", "operator"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut word = vec![0i16; 8 * FRAME];
    word.extend(
        Espeak
            .synthesize("technical support", "en")
            .expect("espeak-ng"),
    );
    let word_ticks = word.len().div_ceil(FRAME);
    word.resize(word_ticks * FRAME, 0);
    // The decoders are loaded before the count: they are the node's, not the calls'.
    let engine: Arc<dyn Engine> = Arc::new(
        PocketSphinx::new(Path::new(DEFAULT_MODEL), permits, permits).expect("pocketsphinx"),
    );
    let pool = Arc::new(tokio::sync::Semaphore::new(permits));
    let speakers: Vec<usize> = (0..(seconds.saturating_sub(4) * speakers_per_s) as usize)
        .map(|k| (k * 7919) % calls)
        .collect();
    // Tick at which each call starts speaking (none for most).
    let mut starts = vec![None; calls];
    for (k, &c) in speakers.iter().enumerate() {
        starts[c] = Some(100 + k * 50 / speakers_per_s as usize);
    }
    let ended: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; calls]));
    let results: Arc<Mutex<Vec<Outcome>>> = Default::default();

    let (listen_cpu, kib_per_call) = rt.block_on(async {
        let rss0 = rss_mib(pid);
        let mut senders = Vec::with_capacity(calls);
        for i in 0..calls {
            let (tx, rx) = unbounded_channel::<Vec<i16>>();
            let job = Recognition {
                engine: engine.clone(),
                phrases: menu.clone(),
                permits: pool.clone(),
            };
            let mut l = listen(job, rx, 10_000);
            let results = results.clone();
            tokio::spawn(async move {
                while let Some(h) = l.heard.recv().await {
                    let r = match h {
                        Heard::Done(r) => r.map(|h| h.text),
                        Heard::Nothing => Ok(String::new()),
                        Heard::Started | Heard::Partial(_) => continue,
                    };
                    results.lock().unwrap().push((i, Instant::now(), r));
                    break;
                }
            });
            senders.push(tx);
        }
        let quiet = vec![0i16; FRAME];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let (mut cpu_at, mut listen_cpu, mut kib) = (0.0, 0.0, 0.0);
        for n in 0..(seconds * 50) as usize {
            tick.tick().await;
            if n == 25 {
                cpu_at = cpu_seconds(pid);
                kib = (rss_mib(pid) - rss0) * 1024.0 / calls as f64;
            }
            if n == 100 {
                listen_cpu = (cpu_seconds(pid) - cpu_at) / 1.5;
            }
            for (i, tx) in senders.iter().enumerate() {
                let chunk = match starts[i] {
                    Some(s) if n >= s && n < s + word_ticks => {
                        if n + 1 == s + word_ticks {
                            ended.lock().unwrap()[i] = Some(Instant::now());
                        }
                        word[(n - s) * FRAME..(n - s + 1) * FRAME].to_vec()
                    }
                    _ => quiet.clone(),
                };
                let _ = tx.send(chunk);
            }
        }
        // The last speakers' results come up to a second or so after their
        // speech (the endpointer's trailing silence, then the decode): the
        // calls go on hearing silence until every speaker has one, or 5 s,
        // so the last are not counted as unrecognised for the run's end.
        for _ in 0..250 {
            let heard = results
                .lock()
                .unwrap()
                .iter()
                .filter(|r| starts[r.0].is_some())
                .count();
            if heard >= speakers.len() {
                break;
            }
            tick.tick().await;
            for tx in &senders {
                let _ = tx.send(quiet.clone());
            }
        }
        (listen_cpu, kib)
    });
    let ended = ended.lock().unwrap();
    let results = results.lock().unwrap();
    let mut after_speech = Vec::new();
    let (mut right, mut busy) = (0, 0);
    for (i, at, r) in results.iter() {
        let Some(end) = ended[*i] else { continue };
        match r {
            Ok(text) => {
                after_speech.push((*at - end).as_secs_f64() * 1e3);
                right += (match_phrase(text, &menu) == Some(1)) as usize;
            }
            Err(AsrError::Busy(_)) => busy += 1,
            Err(e) => println!("call {i}: {e}"),
        }
    }
    after_speech.sort_by(|a, b| a.total_cmp(b));
    let p50 = pct(&after_speech, 0.5);
    let p99 = pct(&after_speech, 0.99);
    let end = END_SILENCE_MS as f64;
    println!(
        "bench=listening calls={calls} recognizers={permits} seconds={seconds} chunks_per_call_per_s_in=50 \
         listening_cpu_pct={:.1} listening_calls_per_core={:.0} listening_kib_per_call={kib_per_call:.1} \
         speakers={} recognised={} right_phrase={right} busy={busy} \
         result_after_speech_ms_p50={p50:.0} result_after_speech_ms_p99={p99:.0} \
         decode_ms_p50={:.0} decode_ms_p99={:.0}",
        listen_cpu * 100.0,
        calls as f64 / listen_cpu.max(1e-9),
        speakers.len(),
        after_speech.len(),
        p50 - end,
        p99 - end,
    );
}
