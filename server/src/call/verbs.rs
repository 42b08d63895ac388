//! The media and routing verbs beyond play/collect: what to play (resolving
//! speech, tones, silence and recordings into audio), early media, DTMF out,
//! events, reject, language, transfer.

use std::sync::Arc;
use std::time::Duration;

use super::dial::DialStatus;
use super::error::{blocking, failed, Error};
use super::session::{CallEvent, CallSession};
use super::shallow::in_box;
use super::targets::Target;
use super::SipCommand;
use crate::media::prompt::Prompt;
use crate::media::tone;
use crate::media::worker::MediaEvent;
use crate::plugin::hookline::call::media::{CallEvent as PluginEvent, PlayItem};

/// Longest generated tone or silence item.
const MAX_GENERATED_MS: u32 = 60_000;
/// Most items in one play request.
const MAX_ITEMS: usize = 64;

/// One thing to play: audio at hand, or text still to be spoken.
pub(crate) enum Piece {
    Ready(Arc<Prompt>),
    Say { text: String, language: String },
}

/// A play item as far as it resolves without waiting.
enum AtHand<'a> {
    Piece(Piece),
    /// Speech to synthesise now (not deferred to the player).
    Say {
        text: String,
        language: String,
    },
    Recording(&'a str),
}

impl Piece {
    pub(crate) fn ready(self) -> Option<Arc<Prompt>> {
        match self {
            Piece::Ready(p) => Some(p),
            Piece::Say { .. } => None,
        }
    }
}

impl CallSession {
    /// Turns play items into audio, in order. Speech is synthesised (cached)
    /// and recordings are read on a blocking thread.
    pub(crate) async fn resolve(&mut self, items: &[PlayItem]) -> Result<Vec<Arc<Prompt>>, Error> {
        Ok(self
            .resolve_pieces(items, false)
            .await?
            .into_iter()
            .filter_map(Piece::ready)
            .collect())
    }

    /// Like `resolve`, but with `defer_speech` text not said before is left
    /// for the player to stream (`Piece::Say`).
    pub(crate) async fn resolve_pieces(
        &mut self,
        items: &[PlayItem],
        defer_speech: bool,
    ) -> Result<Vec<Piece>, Error> {
        if items.len() > MAX_ITEMS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_ITEMS} items per play"
            )));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // Only speech said now and recordings wait (on a blocking thread).
            let p = match self.resolve_at_hand(item, defer_speech)? {
                AtHand::Piece(p) => p,
                AtHand::Say { text, language } => {
                    let tts = self.node.tts.clone();
                    let said = in_box(|| blocking(move || tts.say(&text, &language))).await?;
                    Piece::Ready(said.map_err(|e| match e {
                        crate::speech::tts::TtsError::NoVoice(_) => {
                            Error::InvalidArgument(e.to_string())
                        }
                        e => failed(e),
                    })?)
                }
                AtHand::Recording(id) => Piece::Ready(in_box(|| self.load_recording(id)).await?),
            };
            out.push(p);
        }
        Ok(out)
    }

    /// An item resolved without waiting, or what must be waited for. Out of
    /// line: the verbs' polls run on the plugin's fiber stack, whose touched
    /// pages stay resident for the call (see `await_play`).
    #[inline(never)]
    fn resolve_at_hand<'a>(
        &self,
        item: &'a PlayItem,
        defer_speech: bool,
    ) -> Result<AtHand<'a>, Error> {
        let p = match item {
            // The call's language first, then the node's default.
            PlayItem::Prompt(id) => self
                .node
                .prompt_sets
                .get(&self.language)
                .and_then(|set| set.get(id))
                .or_else(|| self.prompts.get(id))
                .ok_or_else(|| Error::InvalidArgument(format!("unknown prompt id {id:?}")))?,
            PlayItem::Say(t) => {
                let language = t.language.clone().unwrap_or_else(|| self.language.clone());
                if defer_speech && t.text.len() > crate::speech::tts::MAX_TEXT {
                    return Err(Error::InvalidArgument(format!(
                        "text longer than {} bytes",
                        crate::speech::tts::MAX_TEXT
                    )));
                }
                if !defer_speech {
                    return Ok(AtHand::Say {
                        text: t.text.clone(),
                        language,
                    });
                }
                match self.node.tts.cached(&t.text, &language) {
                    Some(p) => p,
                    None => {
                        return Ok(AtHand::Piece(Piece::Say {
                            text: t.text.clone(),
                            language,
                        }))
                    }
                }
            }
            PlayItem::Tone(t) => {
                let ok = (1..=2).contains(&t.frequencies.len())
                    && t.frequencies.iter().all(|f| (50..=4000).contains(f))
                    && t.duration_ms <= MAX_GENERATED_MS;
                if !ok {
                    return Err(Error::InvalidArgument(
                        "a tone has 1-2 frequencies of 50-4000 Hz and lasts at most 60 s".into(),
                    ));
                }
                Arc::new(Prompt::from_pcm(
                    "tone",
                    tone::tone(&t.frequencies, t.duration_ms),
                ))
            }
            PlayItem::Silence(ms) => {
                if *ms > MAX_GENERATED_MS {
                    return Err(Error::InvalidArgument("silence lasts at most 60 s".into()));
                }
                Arc::new(Prompt::from_pcm("silence", tone::silence(*ms)))
            }
            PlayItem::Recording(id) => return Ok(AtHand::Recording(id)),
        };
        Ok(AtHand::Piece(Piece::Ready(p)))
    }

    /// A recording this plugin made, as audio.
    async fn load_recording(&self, id: &str) -> Result<Arc<Prompt>, Error> {
        let data = self.node.plugin_data.clone();
        let owner_id = id.to_string();
        let found = blocking(move || data.recording_owner(&owner_id))
            .await?
            .map_err(failed)?;
        let Some((plugin, path)) = found else {
            return Err(Error::InvalidArgument(format!("no recording {id:?}")));
        };
        if plugin != self.plugin {
            return Err(Error::NotAllowed);
        }
        let id = id.to_string();
        blocking(move || Prompt::load(&id, std::path::Path::new(&path)))
            .await?
            .map(Arc::new)
            .map_err(failed)
    }

    /// 183 with SDP: the caller hears what is played before the call is answered.
    pub fn pre_answer(&mut self) -> Result<(), Error> {
        self.check_live()?;
        if self.early || self.is_answered() {
            return Ok(());
        }
        let Some(sdp) = self.answer_sdp_ref() else {
            return Ok(());
        };
        let _ = self.sip.send(SipCommand::EarlyMedia {
            call_id: self.call_id.clone(),
            sdp,
        });
        self.early = true;
        self.keep_media_flowing();
        self.mark("early-media");
        Ok(())
    }

    /// Sends DTMF as tones in the audio.
    pub async fn send_dtmf(&mut self, digits: &str) -> Result<(), Error> {
        self.check_live()?;
        if digits.is_empty() || digits.len() > 64 {
            return Err(Error::InvalidArgument("1 to 64 digits".into()));
        }
        let pcm = tone::dtmf(digits).ok_or_else(|| {
            Error::InvalidArgument(format!("{digits:?} has a character that is not a key"))
        })?;
        if !self.early {
            self.answer()?;
        }
        self.mark(&format!("send-dtmf:{digits}"));
        self.play_prompts(vec![Arc::new(Prompt::from_pcm("dtmf", pcm))], false)
            .await
            .map(|_| ())
    }

    /// The next key, hold change or a timeout.
    pub async fn wait_event(&mut self, timeout_ms: u32) -> Result<PluginEvent, Error> {
        self.check_live()?;
        let until =
            tokio::time::Instant::now() + Duration::from_millis(timeout_ms.min(600_000).into());
        loop {
            if let Some(k) = self.take_digit() {
                return Ok(PluginEvent::Digit(k.to_string()));
            }
            if let Some(h) = self.hold_events.pop_front() {
                return Ok(PluginEvent::Hold(h));
            }
            tokio::select! {
                ev = self.next_event() => match ev {
                    CallEvent::Media(MediaEvent::Dtmf(k)) => return Ok(PluginEvent::Digit(k.to_string())),
                    ev => {
                        self.absorb(ev);
                        if self.ended.is_some() {
                            return Err(Error::HungUp);
                        }
                    }
                },
                _ = tokio::time::sleep_until(until) => return Ok(PluginEvent::Timeout),
            }
        }
    }

    /// Refuses an unanswered call with a SIP status.
    pub fn reject(&mut self, code: u16) -> Result<(), Error> {
        self.check_live()?;
        if self.is_answered() {
            return Err(Error::InvalidArgument(
                "the call is answered: hang up instead".into(),
            ));
        }
        if !(400..=699).contains(&code) {
            return Err(Error::InvalidArgument(format!(
                "{code} is not a final error status (400-699)"
            )));
        }
        let _ = self.sip.send(SipCommand::Reject {
            call_id: self.call_id.clone(),
            code,
        });
        self.mark(&format!("reject:{code}"));
        self.end(&format!("rejected-{code}"));
        Ok(())
    }

    pub fn set_language(&mut self, language: &str) -> Result<(), Error> {
        self.check_live()?;
        let ok = (2..=16).contains(&language.len())
            && language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "{language:?} is not a BCP 47 tag"
            )));
        }
        self.language = language.to_ascii_lowercase();
        self.mark(&format!("language:{}", self.language));
        Ok(())
    }

    /// Blind transfer: ring the target; once they have talked, the call ends.
    pub async fn transfer(&mut self, target: Target, timeout: Duration) -> Result<(), Error> {
        self.mark("transfer");
        let out = self.dial(&[target], timeout, None).await?;
        match out.status {
            DialStatus::Completed => {
                let _ = self.hangup();
                Ok(())
            }
            DialStatus::NoAnswer => Err(Error::Failed("no-answer".into())),
            DialStatus::Busy => Err(Error::Failed("busy".into())),
            DialStatus::Failed => Err(Error::Failed("failed".into())),
        }
    }
}
