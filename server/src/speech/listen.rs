//! One recognition on a call. Listening is cheap: a task per call runs the
//! endpointer over the leg's audio as it arrives (a few KiB, no thread). A
//! recognizer — a decoder of a few MiB and a core while it decodes — is
//! engaged only once the caller starts talking, from a node-wide pool
//! (`speech.max_recognitions` permits), and given back when the utterance is
//! recognised. So hundreds of calls can wait for an answer on a node with a
//! handful of recognizers. A caller who talks while every recognizer is busy
//! is held (the utterance buffered, bounded) until one frees up; past the
//! wait the recognition ends `Busy` and the menu takes keys instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::asr::{AsrError, Engine, Hypothesis};
use super::endpoint::{Endpointer, Point};
use crate::media::prompt::FRAME;

/// What the listener reports.
#[derive(Debug)]
pub enum Heard {
    /// The caller started talking.
    Started,
    /// Words so far.
    Partial(String),
    /// The utterance ended and was recognised; with how long after its end.
    Done(Result<Hypothesis, AsrError>),
    /// Stopped before anyone spoke.
    Nothing,
}

/// Trailing quiet that ends an utterance.
pub const END_SILENCE_MS: u32 = 800;
/// Frames between partial results (500 ms).
const PARTIAL_EVERY: usize = 25;
/// Speech held while every recognizer is busy (10 s at 8 kHz, 160 KB): a
/// longer wait ends the recognition `Busy`.
const MAX_HELD: usize = 10 * 8000;
/// How long an utterance that has ended waits for a recognizer.
const MAX_WAIT: Duration = Duration::from_secs(3);

/// What to recognise with: the language's engine, the menu's phrases (none:
/// free speech), and the node's recognizer permits.
pub struct Recognition {
    pub engine: Arc<dyn Engine>,
    pub phrases: Vec<String>,
    pub permits: Arc<Semaphore>,
}

/// A running recognition; dropping it (or `stop`) ends it.
pub struct Listening {
    stop: Arc<Stop>,
    pub heard: UnboundedReceiver<Heard>,
}

#[derive(Default)]
struct Stop {
    asked: AtomicBool,
    notify: Notify,
}

impl Listening {
    /// Asks for the result of what was heard so far.
    pub fn stop(&self) {
        self.stop.asked.store(true, Ordering::Relaxed);
        self.stop.notify.notify_one();
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts listening to `audio` (8 kHz chunks) on the current runtime.
pub fn listen(job: Recognition, audio: UnboundedReceiver<Vec<i16>>, max_ms: u32) -> Listening {
    let stop = Arc::new(Stop::default());
    let (tx, heard) = unbounded_channel();
    tokio::spawn(run(job, audio, max_ms, stop.clone(), tx));
    Listening { stop, heard }
}

/// Where the utterance is.
enum State {
    /// Nobody has spoken yet.
    Quiet,
    /// Speaking, every recognizer busy: the speech so far.
    Held(Vec<i16>),
    /// A recognizer has it: frames go to its thread, the result comes back.
    Feeding(Feeder),
}

struct Feeder {
    frames: std::sync::mpsc::Sender<Vec<i16>>,
    result: tokio::sync::oneshot::Receiver<Result<Hypothesis, AsrError>>,
}

/// How much lower than the media threads a decoding thread runs (nice):
/// with every recognizer busy the cores still play every call's media on time.
const DECODER_NICENESS: i32 = 5;

impl Feeder {
    /// Engages a recognizer (the permit goes with it) on `first` audio, on a
    /// thread of its own (at most one per permit).
    fn start(
        job: &Recognition,
        permit: OwnedSemaphorePermit,
        first: Vec<i16>,
        out: &UnboundedSender<Heard>,
    ) -> Feeder {
        let (frames, rx) = std::sync::mpsc::channel::<Vec<i16>>();
        let _ = frames.send(first);
        let (done, result) = tokio::sync::oneshot::channel();
        let (engine, phrases, out) = (job.engine.clone(), job.phrases.clone(), out.clone());
        let spawned = std::thread::Builder::new()
            .name("asr".into())
            .spawn(move || {
                // SAFETY: plain syscalls on this thread's own id.
                unsafe {
                    libc::setpriority(
                        libc::PRIO_PROCESS,
                        libc::gettid() as libc::id_t,
                        DECODER_NICENESS,
                    );
                }
                let heard = decode(engine, &phrases, rx, out);
                // The permit goes back once the decoder has, before the result is
                // reported: a caller told "done" finds the recognizer free.
                drop(permit);
                let _ = done.send(heard);
            });
        if let Err(e) = spawned {
            tracing::warn!("recognizer thread: {e}");
        }
        Feeder { frames, result }
    }

    async fn finish(self) -> Result<Hypothesis, AsrError> {
        drop(self.frames);
        self.result
            .await
            .unwrap_or_else(|_| Err(AsrError::Failed("the recognizer thread ended".into())))
    }
}

/// One utterance through a recognizer: what arrives on `frames` until it closes.
fn decode(
    engine: Arc<dyn Engine>,
    phrases: &[String],
    frames: std::sync::mpsc::Receiver<Vec<i16>>,
    out: UnboundedSender<Heard>,
) -> Result<Hypothesis, AsrError> {
    let mut utt = engine.open(phrases)?;
    let (mut fed, mut last_partial) = (0usize, String::new());
    while let Ok(chunk) = frames.recv() {
        utt.accept(&chunk)?;
        fed += chunk.len();
        if fed >= PARTIAL_EVERY * FRAME {
            fed = 0;
            if let Some(p) = utt.partial().filter(|p| *p != last_partial) {
                last_partial = p.clone();
                let _ = out.send(Heard::Partial(p));
            }
        }
    }
    utt.finish()
}

impl State {
    /// More of the utterance; a held one engages a recognizer once one is free.
    fn speech(
        self,
        job: &Recognition,
        pcm: Vec<i16>,
        out: &UnboundedSender<Heard>,
    ) -> Result<State, AsrError> {
        match self {
            State::Quiet => State::Held(Vec::new()).speech(job, pcm, out),
            State::Feeding(f) => {
                let _ = f.frames.send(pcm);
                Ok(State::Feeding(f))
            }
            State::Held(mut held) => {
                held.extend_from_slice(&pcm);
                match job.permits.clone().try_acquire_owned() {
                    Ok(permit) => Ok(State::Feeding(Feeder::start(job, permit, held, out))),
                    Err(_) if held.len() > MAX_HELD => Err(busy(job)),
                    Err(_) => Ok(State::Held(held)),
                }
            }
        }
    }

    /// The utterance ended (or listening was stopped): its result.
    async fn finish(self, job: &Recognition) -> Heard {
        match self {
            State::Quiet => Heard::Nothing,
            State::Feeding(f) => Heard::Done(f.finish().await),
            State::Held(held) => {
                let permit =
                    tokio::time::timeout(MAX_WAIT, job.permits.clone().acquire_owned()).await;
                match permit {
                    Ok(Ok(permit)) => {
                        let (tx, _) = unbounded_channel();
                        Heard::Done(Feeder::start(job, permit, held, &tx).finish().await)
                    }
                    _ => Heard::Done(Err(busy(job))),
                }
            }
        }
    }
}

fn busy(job: &Recognition) -> AsrError {
    AsrError::Busy(format!(
        "all {} recognizers stayed busy while the caller spoke",
        job.permits.available_permits().max(1)
    ))
}

async fn run(
    job: Recognition,
    mut audio: UnboundedReceiver<Vec<i16>>,
    max_ms: u32,
    stop: Arc<Stop>,
    out: UnboundedSender<Heard>,
) {
    let mut ep = Endpointer::new(END_SILENCE_MS, max_ms);
    let mut rest: Vec<i16> = Vec::with_capacity(2 * FRAME);
    let mut state = State::Quiet;
    let mut ended_at = None;
    'listening: while !stop.asked.load(Ordering::Relaxed) {
        let chunk = tokio::select! {
            _ = stop.notify.notified() => break,
            c = audio.recv() => match c {
                Some(c) => c,
                None => break,
            },
        };
        rest.extend_from_slice(&chunk);
        let whole = rest.len() / FRAME * FRAME;
        for f in rest[..whole].chunks_exact(FRAME) {
            let frame: &[i16; FRAME] = f.try_into().expect("chunks_exact");
            let point = ep.push(frame);
            let pcm: Vec<i16> = match point {
                Point::Waiting => continue,
                Point::Started => {
                    let _ = out.send(Heard::Started);
                    ep.pre_roll()
                        .flatten()
                        .chain(frame.iter().copied())
                        .collect()
                }
                Point::Speaking | Point::Ended { .. } => frame.to_vec(),
            };
            state = match state.speech(&job, pcm, &out) {
                Ok(s) => s,
                Err(e) => {
                    let _ = out.send(Heard::Done(Err(e)));
                    return;
                }
            };
            if matches!(point, Point::Ended { .. }) {
                ended_at = Some(Instant::now());
                break 'listening;
            }
        }
        rest.drain(..whole);
    }
    if out.is_closed() {
        // The verb is gone (the caller hung up): nobody wants the result.
        return;
    }
    let heard = state.finish(&job).await;
    if let (Some(t), Heard::Done(Ok(h))) = (ended_at, &heard) {
        tracing::debug!(
            "recognised {:?} {} ms after the caller stopped",
            h.text,
            t.elapsed().as_millis()
        );
    }
    let _ = out.send(heard);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::asr::Utterance;
    use std::sync::atomic::AtomicUsize;

    /// An engine that "recognises" how many samples it was fed, and counts
    /// how many utterances it has open.
    struct Counting {
        open: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }
    struct Fed(usize, Arc<AtomicUsize>);
    impl Engine for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn open(&self, _: &[String]) -> Result<Box<dyn Utterance>, AsrError> {
            let n = self.open.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            Ok(Box::new(Fed(0, self.open.clone())))
        }
    }
    impl Utterance for Fed {
        fn accept(&mut self, pcm: &[i16]) -> Result<(), AsrError> {
            self.0 += pcm.len();
            Ok(())
        }
        fn partial(&mut self) -> Option<String> {
            None
        }
        fn finish(&mut self) -> Result<Hypothesis, AsrError> {
            std::thread::sleep(Duration::from_millis(30));
            self.1.fetch_sub(1, Ordering::SeqCst);
            Ok(Hypothesis {
                text: self.0.to_string(),
                confidence: 1.0,
            })
        }
    }

    fn tone(frames: usize) -> Vec<i16> {
        (0..frames * FRAME)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect()
    }

    async fn done(l: &mut Listening) -> Heard {
        loop {
            match l.heard.recv().await.expect("an answer") {
                Heard::Started | Heard::Partial(_) => continue,
                h => return h,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_calls_listen_and_a_few_recognizers_serve_those_who_speak() {
        let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let engine: Arc<dyn Engine> = Arc::new(Counting {
            open: open.clone(),
            most: most.clone(),
        });
        let permits = Arc::new(Semaphore::new(2));
        let mut calls = Vec::new();
        for _ in 0..200 {
            let (tx, rx) = unbounded_channel();
            let job = Recognition {
                engine: engine.clone(),
                phrases: vec![],
                permits: permits.clone(),
            };
            calls.push((tx, listen(job, rx, 10_000)));
        }
        // Everyone is quiet: no recognizer is engaged.
        for (tx, _) in &calls {
            tx.send(vec![0; 10 * FRAME]).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(most.load(Ordering::SeqCst), 0);
        // Eight speak at once, then fall silent: two recognizers serve all eight.
        let speech = tone(20);
        let silence = vec![0i16; 50 * FRAME];
        for (tx, _) in calls.iter().take(8) {
            tx.send(speech.clone()).unwrap();
            tx.send(silence.clone()).unwrap();
        }
        for (_, l) in calls.iter_mut().take(8) {
            match done(l).await {
                // The utterance with its pre-roll and trailing quiet, all of it heard.
                Heard::Done(Ok(h)) => {
                    assert!(h.text.parse::<usize>().unwrap() >= 20 * FRAME, "{h:?}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "never more than the permits"
        );
        assert_eq!(
            permits.available_permits(),
            2,
            "every recognizer given back"
        );
        // The silent ones, stopped, heard nothing.
        let (_, l) = &mut calls[100];
        l.stop();
        assert!(matches!(done(l).await, Heard::Nothing));
    }

    #[tokio::test]
    async fn a_caller_held_past_the_wait_is_told_busy() {
        let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let engine: Arc<dyn Engine> = Arc::new(Counting { open, most });
        let permits = Arc::new(Semaphore::new(1));
        let _taken = permits.clone().try_acquire_owned().unwrap();
        let (tx, rx) = unbounded_channel();
        let mut l = listen(
            Recognition {
                engine,
                phrases: vec![],
                permits,
            },
            rx,
            60_000,
        );
        // 11 s of speech with no recognizer free: more than is held.
        tx.send(tone(550)).unwrap();
        assert!(matches!(
            done(&mut l).await,
            Heard::Done(Err(AsrError::Busy(_)))
        ));
    }
}
