//! The play verb: items resolved into audio (speech streamed as it is
//! synthesised), marked in the call's path, played with or without barge-in.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::error::Error;
use super::session::{CallEvent, CallSession};
use super::shallow::in_box;
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
        in_box(|| self.await_open_play(token, barge_in, more)).await
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
        self.await_play(token, barge_in).await
    }

    /// Waits for play `token` to end (or a key, with barge-in).
    ///
    /// This wait is the deepest point of a call on the plugin's fiber stack,
    /// whose touched pages stay resident for the call's life (see
    /// `call::shallow`): it awaits nothing but the next event, and handles
    /// events out of line, to keep each frame on the way small.
    async fn await_play(&mut self, token: u64, barge_in: bool) -> Result<bool, Error> {
        loop {
            let ev = self.next_event().await;
            if let Some(end) = self.play_event(ev, token, barge_in) {
                return end;
            }
        }
    }

    /// Like `await_play`, appending the pieces `more` brings to the open
    /// play as they are made.
    async fn await_open_play(
        &mut self,
        token: u64,
        barge_in: bool,
        mut more: UnboundedReceiver<Arc<Prompt>>,
    ) -> Result<bool, Error> {
        let mut open = true;
        loop {
            tokio::select! {
                piece = more.recv(), if open => {
                    open = piece.is_some();
                    self.media.append(self.leg, token, piece);
                }
                ev = self.next_event() => {
                    if let Some(end) = self.play_event(ev, token, barge_in) {
                        return end;
                    }
                }
            }
        }
    }

    /// What an event means to play `token`: `Some` when the play is over.
    #[inline(never)]
    fn play_event(
        &mut self,
        ev: CallEvent,
        token: u64,
        barge_in: bool,
    ) -> Option<Result<bool, Error>> {
        match ev {
            CallEvent::Media(MediaEvent::PlayDone { token: t, .. }) if t == token => {
                Some(Ok(false))
            }
            CallEvent::Media(MediaEvent::Dtmf(k)) => {
                self.digits.push_back(k);
                if barge_in {
                    self.media.stop(self.leg);
                    return Some(Ok(true));
                }
                None
            }
            ev @ CallEvent::Ended(_) => {
                self.absorb(ev);
                Some(Err(Error::HungUp))
            }
            ev => {
                self.absorb(ev);
                None
            }
        }
    }
}
