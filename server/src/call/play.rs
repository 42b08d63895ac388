//! The play verb: items resolved into audio (speech streamed as it is
//! synthesised), marked in the call's path, played with or without barge-in.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::error::Error;
use super::session::{CallEvent, CallSession};
use super::verbs::Piece;
use crate::media::prompt::Prompt;
use crate::media::worker::MediaEvent;
use crate::plugin::hookline::call::media::PlayItem;
use crate::plugin::rules::played_step;

impl CallSession {
    /// From the answer (or early media) on, the caller's stream never stops.
    pub(crate) fn keep_media_flowing(&self) {
        if self.node.config.node.send_silence {
            self.media.keep_alive(self.leg);
        }
    }

    /// Plays prompts from the catalog; `Ok(true)` when a key interrupted them.
    pub async fn play(&mut self, ids: &[String], barge_in: bool) -> Result<bool, Error> {
        let items: Vec<PlayItem> = ids.iter().cloned().map(PlayItem::Prompt).collect();
        self.play_items(&items, barge_in).await
    }

    /// Plays items (prompts, speech, tones, silence, recordings).
    pub async fn play_items(&mut self, items: &[PlayItem], barge_in: bool) -> Result<bool, Error> {
        self.check_live()?;
        let pieces = self.resolve_pieces(items, true).await?;
        if !self.early {
            self.answer()?;
        }
        if barge_in && !self.digits.is_empty() {
            return Ok(true); // type-ahead: the caller already chose
        }
        self.mark_items(items);
        // Audio at hand starts at once; speech not said before follows as it
        // is made, so a long text starts with its first sentence.
        let mut pieces = pieces;
        let first_say = pieces
            .iter()
            .position(|p| matches!(p, Piece::Say { .. }))
            .unwrap_or(pieces.len());
        let rest = pieces.split_off(first_say);
        let ready = pieces.into_iter().filter_map(Piece::ready).collect();
        if rest.is_empty() {
            return self.play_prompts(ready, barge_in).await;
        }
        let more = self.synthesize_behind(rest);
        self.next_token += 1;
        let token = self.next_token;
        self.media.play_open(self.leg, ready, token);
        self.await_play(token, barge_in, Some(more)).await
    }

    /// Turns the pieces into audio in order on a blocking thread, handing
    /// each sentence over as soon as it is made.
    fn synthesize_behind(&self, pieces: Vec<Piece>) -> UnboundedReceiver<Arc<Prompt>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tts = self.node.tts.clone();
        let call = self.call_id.clone();
        tokio::task::spawn_blocking(move || {
            for piece in pieces {
                // The play ended or the caller left: synthesise nothing more for it.
                if tx.is_closed() {
                    return;
                }
                match piece {
                    Piece::Ready(p) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Piece::Say { text, language } => {
                        let said = tts.say_stream(&text, &language, &mut |p| {
                            let _ = tx.send(p);
                        });
                        if let Err(e) = said {
                            tracing::warn!(%call, "say: {e}");
                        }
                    }
                }
            }
        });
        rx
    }

    /// Notes what is played in the call record.
    pub(crate) fn mark_items(&mut self, items: &[PlayItem]) {
        for step in items.iter().filter_map(played_step) {
            self.mark(&step);
        }
    }

    /// Plays resolved audio; `Ok(true)` when a key interrupted it.
    pub(crate) async fn play_prompts(
        &mut self,
        prompts: Vec<Arc<Prompt>>,
        barge_in: bool,
    ) -> Result<bool, Error> {
        self.next_token += 1;
        let token = self.next_token;
        self.media.play(self.leg, prompts, token);
        self.await_play(token, barge_in, None).await
    }

    /// Waits for play `token` to end (or a key, with barge-in), appending
    /// the pieces `more` brings to an open play.
    async fn await_play(
        &mut self,
        token: u64,
        barge_in: bool,
        more: Option<UnboundedReceiver<Arc<Prompt>>>,
    ) -> Result<bool, Error> {
        let mut open = more.is_some();
        let mut more = more.unwrap_or_else(|| tokio::sync::mpsc::unbounded_channel().1);
        loop {
            tokio::select! {
                piece = more.recv(), if open => {
                    open = piece.is_some();
                    self.media.append(self.leg, token, piece);
                }
                ev = self.next_event() => match ev {
                    CallEvent::Media(MediaEvent::PlayDone { token: t, .. }) if t == token => {
                        return Ok(false)
                    }
                    CallEvent::Media(MediaEvent::Dtmf(k)) => {
                        self.digits.push_back(k);
                        if barge_in {
                            self.media.stop(self.leg);
                            return Ok(true);
                        }
                    }
                    ev @ CallEvent::Ended(_) => {
                        self.absorb(ev);
                        return Err(Error::HungUp);
                    }
                    ev => self.absorb(ev),
                }
            }
        }
    }
}
