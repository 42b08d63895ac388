//! The `collect-speech` verb: prompts the caller can interrupt by talking or
//! pressing a key, then one utterance recognised (menu phrases or free speech).

use std::time::Duration;

use tokio::time::Instant;

use super::error::{failed, Error};
use super::session::{CallEvent, CallSession};
use crate::media::worker::MediaEvent;
use crate::plugin::hookline::call::media::{Recognized, SpeechOptions};
use crate::speech::asr::{match_phrase, AsrError, Hypothesis};
use crate::speech::listen::{listen, Heard, Listening, Recognition};

/// Most phrases in one grammar, and longest phrase.
const MAX_PHRASES: usize = 500;
const MAX_PHRASE: usize = 200;
/// How long the engine may take to finish after the caller stopped.
const FINISH_WAIT: Duration = Duration::from_secs(10);

impl CallSession {
    pub async fn collect_speech(&mut self, o: &SpeechOptions) -> Result<Recognized, Error> {
        self.check_live()?;
        if !(500..=60_000).contains(&o.timeout_ms) {
            return Err(Error::InvalidArgument(
                "timeout-ms must be 500 .. 60000".into(),
            ));
        }
        if !(1000..=120_000).contains(&o.max_ms) {
            return Err(Error::InvalidArgument(
                "max-ms must be 1000 .. 120000".into(),
            ));
        }
        if o.phrases.len() > MAX_PHRASES || o.phrases.iter().any(|p| p.len() > MAX_PHRASE) {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_PHRASES} phrases of {MAX_PHRASE} bytes"
            )));
        }
        let language = o.language.clone().unwrap_or_else(|| self.language.clone());
        let engine = self
            .node
            .recognizers
            .get(&language)
            .ok_or(Error::Unavailable)?;
        let prompts = self.resolve(&o.prompts).await?;
        if !self.early {
            self.answer()?;
        }
        // A key pressed during an earlier prompt answers at once (type-ahead).
        if let Some(k) = self.take_digit() {
            self.mark(&format!("digits:{k}"));
            return Ok(key(k));
        }
        // A recognizer is engaged only once the caller speaks (see speech::listen).
        let job = Recognition {
            engine,
            phrases: o.phrases.clone(),
            permits: self.node.recognizers.permits.clone(),
        };
        let (handle, audio) = self.media.listen(self.leg);
        let mut listening = listen(job, audio, o.max_ms);
        self.mark_items(&o.prompts);
        self.mark(&format!("listen:{language}"));
        let result = self.hear(&mut listening, prompts, o).await;
        // Ending the tap closes the audio channel; the listener thread ends.
        drop(self.media.stop_record(self.leg, handle));
        if let Ok(r) = &result {
            if let Some(d) = &r.digit {
                self.mark(&format!("digits:{d}"));
            } else {
                self.mark(&format!("speech:{}", r.text));
            }
        }
        result
    }

    async fn hear(
        &mut self,
        listening: &mut Listening,
        prompts: Vec<std::sync::Arc<crate::media::prompt::Prompt>>,
        o: &SpeechOptions,
    ) -> Result<Recognized, Error> {
        let timeout = Duration::from_millis(o.timeout_ms.into());
        let mut playing = None;
        if !prompts.is_empty() {
            self.next_token += 1;
            playing = Some(self.next_token);
            self.media.play(self.leg, prompts, self.next_token);
        }
        // No speech by then: stop listening. Armed once the prompts end.
        let mut deadline = playing.is_none().then(|| Instant::now() + timeout);
        let mut stopping = false;
        loop {
            let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ev = self.next_event() => match ev {
                    CallEvent::Media(MediaEvent::PlayDone { token, .. }) if Some(token) == playing => {
                        playing = None;
                        if deadline.is_none() {
                            deadline = Some(Instant::now() + timeout);
                        }
                    }
                    CallEvent::Media(MediaEvent::Dtmf(k)) => {
                        if playing.is_some() {
                            self.media.stop(self.leg);
                        }
                        return Ok(key(k));
                    }
                    ev @ CallEvent::Ended(_) => {
                        self.absorb(ev);
                        return Err(Error::HungUp);
                    }
                    ev => self.absorb(ev),
                },
                heard = listening.heard.recv() => match heard {
                    Some(Heard::Started) => {
                        // Barge-in by voice; the utterance has its own length cap.
                        if playing.take().is_some() {
                            self.media.stop(self.leg);
                        }
                        deadline = Some(Instant::now() + Duration::from_millis(o.max_ms.into()) + FINISH_WAIT);
                    }
                    Some(Heard::Partial(words)) => {
                        tracing::debug!(call = %self.call_id, "heard so far: {words}");
                    }
                    Some(Heard::Done(Ok(h))) => return Ok(said(h, &o.phrases)),
                    // Every recognizer stayed busy while the caller spoke: the
                    // menu takes keys instead.
                    Some(Heard::Done(Err(AsrError::Busy(why)))) => {
                        tracing::info!(call = %self.call_id, "{why}: collect-speech unavailable");
                        return Err(Error::Unavailable);
                    }
                    Some(Heard::Done(Err(e))) => return Err(failed(e)),
                    Some(Heard::Nothing) | None => return Ok(said(Hypothesis { text: String::new(), confidence: 0.0 }, &[])),
                },
                _ = tokio::time::sleep_until(wake), if deadline.is_some() => {
                    if stopping {
                        return Err(Error::Failed("the recognizer did not finish".into()));
                    }
                    // Take what was heard (nothing, or an utterance cut short).
                    stopping = true;
                    listening.stop();
                    deadline = Some(Instant::now() + FINISH_WAIT);
                }
            }
        }
    }
}

fn key(k: char) -> Recognized {
    Recognized {
        text: String::new(),
        confidence: 0.0,
        phrase: None,
        digit: Some(k.to_string()),
    }
}

fn said(h: Hypothesis, phrases: &[String]) -> Recognized {
    Recognized {
        phrase: match_phrase(&h.text, phrases),
        text: h.text,
        confidence: h.confidence,
        digit: None,
    }
}
