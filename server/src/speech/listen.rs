//! One recognition on a call: a thread takes the leg's audio as it arrives,
//! finds the utterance (endpointer) and feeds it to the engine, reporting
//! the start of speech (for barge-in), partial words and the result.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::asr::{AsrError, Hypothesis, Utterance};
use super::endpoint::{Endpointer, Point};
use crate::media::prompt::FRAME;

/// What the listener reports.
#[derive(Debug)]
pub enum Heard {
    /// The caller started talking.
    Started,
    /// Words so far.
    Partial(String),
    /// The utterance ended and was recognised.
    Done(Result<Hypothesis, AsrError>),
    /// Stopped before anyone spoke.
    Nothing,
}

/// Trailing quiet that ends an utterance.
pub const END_SILENCE_MS: u32 = 800;
/// Frames between partial results (500 ms).
const PARTIAL_EVERY: u32 = 25;

/// A running recognition; dropping it (or `stop`) ends the thread.
pub struct Listening {
    stop: Arc<AtomicBool>,
    pub heard: UnboundedReceiver<Heard>,
}

impl Listening {
    /// Asks for the result of what was heard so far.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts recognising `audio` (8 kHz chunks) with `utterance`.
pub fn listen(
    utterance: Box<dyn Utterance>,
    audio: Receiver<Vec<i16>>,
    max_ms: u32,
) -> std::io::Result<Listening> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, heard) = unbounded_channel();
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("asr".into())
        .spawn(move || run(utterance, audio, max_ms, flag, tx))?;
    Ok(Listening { stop, heard })
}

fn run(
    mut utt: Box<dyn Utterance>,
    audio: Receiver<Vec<i16>>,
    max_ms: u32,
    stop: Arc<AtomicBool>,
    out: UnboundedSender<Heard>,
) {
    let mut ep = Endpointer::new(END_SILENCE_MS, max_ms);
    let mut rest: Vec<i16> = Vec::with_capacity(2 * FRAME);
    let mut since_partial = 0;
    let mut last_partial = String::new();
    let finish = |utt: &mut Box<dyn Utterance>, started: bool| {
        let _ = out.send(if started {
            Heard::Done(utt.finish())
        } else {
            Heard::Nothing
        });
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return finish(&mut utt, ep.started());
        }
        let chunk = match audio.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return finish(&mut utt, ep.started()),
        };
        rest.extend_from_slice(&chunk);
        let whole = rest.len() / FRAME * FRAME;
        for f in rest[..whole].chunks_exact(FRAME) {
            let frame: &[i16; FRAME] = f.try_into().expect("chunks_exact");
            let fed = match ep.push(frame) {
                Point::Waiting => Ok(()),
                Point::Started => {
                    let _ = out.send(Heard::Started);
                    ep.pre_roll()
                        .try_for_each(|p| utt.accept(&p))
                        .and_then(|_| utt.accept(frame))
                }
                Point::Speaking => utt.accept(frame),
                Point::Ended { .. } => {
                    let _ = utt.accept(frame);
                    return finish(&mut utt, true);
                }
            };
            if let Err(e) = fed {
                let _ = out.send(Heard::Done(Err(e)));
                return;
            }
            if ep.started() {
                since_partial += 1;
                if since_partial >= PARTIAL_EVERY {
                    since_partial = 0;
                    if let Some(p) = utt.partial().filter(|p| *p != last_partial) {
                        last_partial = p.clone();
                        let _ = out.send(Heard::Partial(p));
                    }
                }
            }
        }
        rest.drain(..whole);
    }
}
