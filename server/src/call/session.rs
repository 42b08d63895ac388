//! One call as its plugin sees it: the verbs, as async code over the call's
//! SIP dialog and media leg. Every verb returns `hung-up` once the caller is gone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::error::Error;
use super::{Node, SipCommand};
use crate::codec::Format;
use crate::media::prompt::{Prompt, PromptSet};
use crate::media::worker::{LegId, MediaEngine, MediaEvent};
use crate::plugin::hookline::call::data::LogLevel;

use crate::plugin::CallInfo;
use crate::sip::endpoint::EndCause;
use crate::sip::uac::UacEvent;
use crate::store::Store;

/// What reaches a call from the network and the media engine.
#[derive(Debug)]
pub enum CallEvent {
    Media(MediaEvent),
    Ended(EndCause),
    /// Progress of one of this call's outbound legs (dial).
    Outbound {
        call_id: String,
        event: UacEvent,
    },
    /// The caller re-INVITEd: hold/resume, new media address.
    Reinvite {
        remote: std::net::SocketAddr,
        hold: bool,
        codec: Format,
        dtmf_pt: Option<u8>,
    },
}

/// Longest route path kept in a call record, and longest step.
const MAX_PATH: usize = 256;
const MAX_STEP: usize = 200;

/// The plugin-facing side of a call.
pub struct CallSession {
    pub call_id: String,
    pub plugin: String,
    pub(crate) leg: LegId,
    pub(crate) media: Arc<MediaEngine>,
    pub(crate) prompts: Arc<PromptSet>,
    pub(crate) sip: UnboundedSender<SipCommand>,
    pub(crate) events: crate::call::events::EventRx,
    /// A sender into `events`, for outbound legs' progress.
    pub(crate) events_tx: crate::call::events::EventTx,
    pub(crate) node: Arc<Node>,
    /// The caller's user part (default caller ID when dialling).
    pub(crate) caller: String,
    pub(crate) codec: Format,
    pub(crate) store: Store,
    answer_sdp: Option<String>,
    answered: bool,
    /// Why the call ended, once it has (caller gone or plugin hung up).
    pub ended: Option<String>,
    pub(super) digits: VecDeque<char>,
    pub(crate) next_token: u64,
    /// The route path for the call record.
    pub path: Vec<String>,
    /// What the call was routed with (hand-overs reuse it).
    pub(crate) info: CallInfo,
    /// The plugin runtime's state on the call: deadline, hand-over depth,
    /// the running plugin's config, the caller's hang-up.
    pub(crate) run: crate::plugin::RunState,
    /// BCP 47 language of prompts and speech.
    pub(crate) language: String,
    /// 183 sent: media flows before the answer.
    pub(crate) early: bool,
    /// Max-Forwards the call arrived with (70 for calls the node places).
    pub(crate) max_forwards: u8,
    /// Recordings open on the call's leg (shared with what frees the leg at hang-up).
    pub(crate) recordings_open: Arc<std::sync::atomic::AtomicUsize>,
    /// Hold/resume the caller did, not yet seen by `next-event`.
    pub(crate) hold_events: VecDeque<bool>,
    /// The session recording in progress: id, handle, file.
    pub(crate) session_recording: Option<super::record::Active>,
    /// Waiting in a queue: the music that replaces ringback.
    pub(crate) music: Option<Vec<Arc<Prompt>>>,
    /// When the last dial connected someone (queues measure handle time).
    pub(crate) connected_at: Option<std::time::Instant>,
    /// A call the node places (a queue callback): there is no caller yet;
    /// the first dial's answering leg becomes the session's own leg.
    pub(crate) originating: bool,
    /// That leg once adopted.
    pub(crate) adopted: Option<Adopted>,
}

/// An outbound leg that became a node-originated session's own leg.
#[derive(Debug, Clone)]
pub(crate) struct Adopted {
    pub call_id: String,
    pub port: u16,
    /// Who answered (an agent's name), for presence.
    pub label: String,
    /// Whether the dial reserved the agent (busy until the session ends).
    pub reserved: bool,
    pub codec: &'static str,
}

/// Everything a session is built from.
pub struct SessionParts {
    pub call_id: String,
    pub plugin: String,
    pub leg: LegId,
    pub media: Arc<MediaEngine>,
    pub prompts: Arc<PromptSet>,
    pub sip: UnboundedSender<SipCommand>,
    pub events: crate::call::events::EventRx,
    pub events_tx: crate::call::events::EventTx,
    pub node: Arc<Node>,
    pub caller: String,
    pub codec: Format,
    pub store: Store,
    pub answer_sdp: String,
    pub info: CallInfo,
    pub language: String,
}

impl CallSession {
    pub fn new(p: SessionParts) -> Self {
        CallSession {
            call_id: p.call_id,
            plugin: p.plugin,
            leg: p.leg,
            media: p.media,
            prompts: p.prompts,
            sip: p.sip,
            events: p.events,
            events_tx: p.events_tx,
            node: p.node,
            caller: p.caller,
            codec: p.codec,
            store: p.store,
            answer_sdp: Some(p.answer_sdp),
            answered: false,
            ended: None,
            digits: VecDeque::new(),
            next_token: 0,
            path: Vec::new(),
            info: p.info,
            run: Default::default(),
            language: p.language,
            early: false,
            hold_events: VecDeque::new(),
            session_recording: None,
            music: None,
            connected_at: None,
            originating: false,
            adopted: None,
            recordings_open: Default::default(),
            max_forwards: 70,
        }
    }

    /// Turns a fresh session into one the node places: nothing to answer,
    /// and the first dial's answering leg becomes the session's leg.
    pub(crate) fn originate(mut self) -> Self {
        self.answered = true;
        self.answer_sdp = None;
        self.originating = true;
        self
    }

    pub fn is_answered(&self) -> bool {
        self.answered
    }

    /// The SDP answer (for 183 before the 200).
    pub(crate) fn answer_sdp_ref(&self) -> Option<String> {
        self.answer_sdp.clone()
    }

    /// The oldest key in the digit buffer.
    pub(crate) fn take_digit(&mut self) -> Option<char> {
        self.digits.pop_front()
    }

    /// Keeps a key for later verbs.
    pub(crate) fn keep_digit(&mut self, k: char) {
        if self.digits.len() < 64 {
            self.digits.push_back(k);
        }
    }

    pub(crate) fn check_live(&mut self) -> Result<(), Error> {
        // Pick up a hang-up that arrived while the plugin was busy elsewhere.
        while let Ok(ev) = self.events.try_recv() {
            if let Some(ev) = self.convert(ev) {
                self.absorb(ev);
            }
        }
        match self.ended {
            Some(_) => Err(Error::HungUp),
            None => Ok(()),
        }
    }

    /// Applies an event that no verb is waiting for.
    pub(crate) fn absorb(&mut self, ev: CallEvent) {
        match ev {
            CallEvent::Media(MediaEvent::Dtmf(k)) => self.digits.push_back(k),
            CallEvent::Media(
                MediaEvent::PlayDone { .. }
                | MediaEvent::RtpTimeout
                | MediaEvent::Final(_)
                | MediaEvent::Silence { .. },
            ) => {}
            CallEvent::Ended(cause) => self.end(cause.as_str()),
            CallEvent::Outbound { .. } | CallEvent::Reinvite { .. } => {}
        }
    }

    pub(crate) fn end(&mut self, cause: &str) {
        if self.ended.is_none() {
            self.ended = Some(cause.to_string());
        }
    }

    /// Waits for the next event; a closed channel means the node is shutting down.
    pub(crate) async fn next_event(&mut self) -> CallEvent {
        loop {
            match self.events.recv().await {
                Some(ev) => {
                    if let Some(ev) = self.convert(ev) {
                        return ev;
                    }
                }
                None => return CallEvent::Ended(EndCause::CallerBye),
            }
        }
    }

    /// Handles what no verb needs to see (hold), and turns dead media into a
    /// hang-up: the BYE goes out and verbs see `hung-up`.
    fn convert(&mut self, ev: CallEvent) -> Option<CallEvent> {
        match ev {
            CallEvent::Media(MediaEvent::RtpTimeout) => {
                if self.ended.is_none() {
                    let _ = self.sip.send(SipCommand::Hangup {
                        call_id: self.call_id.clone(),
                    });
                }
                Some(CallEvent::Ended(EndCause::RtpTimeout))
            }
            CallEvent::Reinvite {
                remote,
                hold,
                codec,
                dtmf_pt,
            } => {
                if codec != self.codec {
                    // Prompts exist in both G.711 laws; other codecs get a new coder.
                    self.codec = codec;
                    self.media.set_remote(self.leg, remote, codec, dtmf_pt);
                    self.mark(&format!("codec:{}", codec.name().to_ascii_lowercase()));
                }
                self.media.hold(self.leg, hold, remote);
                self.mark(if hold { "hold" } else { "resume" });
                if self.hold_events.len() < 16 {
                    self.hold_events.push_back(hold);
                }
                None
            }
            CallEvent::Outbound {
                call_id,
                event: crate::sip::uac::UacEvent::RemoteBye,
            } if self.adopted.as_ref().is_some_and(|a| a.call_id == call_id) => {
                // The adopted leg is the session's caller now: its BYE ends the call.
                Some(CallEvent::Ended(EndCause::CallerBye))
            }
            ev => Some(ev),
        }
    }

    pub fn mark(&mut self, step: &str) {
        if self.path.len() < MAX_PATH {
            let mut s = step.to_string();
            s.truncate(s.floor_char_boundary_compat(MAX_STEP));
            self.path.push(s);
        }
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        let msg = &message[..message.floor_char_boundary_compat(4096)];
        let (call, plugin) = (&self.call_id, &self.plugin);
        match level {
            LogLevel::Debug => tracing::debug!(%call, %plugin, "{msg}"),
            LogLevel::Info => tracing::info!(%call, %plugin, "{msg}"),
            LogLevel::Warn => tracing::warn!(%call, %plugin, "{msg}"),
            LogLevel::Error => tracing::error!(%call, %plugin, "{msg}"),
        }
    }

    pub fn answer(&mut self) -> Result<(), Error> {
        self.check_live()?;
        if self.answered {
            return Ok(());
        }
        if let Some(sdp) = self.answer_sdp.take() {
            let _ = self.sip.send(SipCommand::Answer {
                call_id: self.call_id.clone(),
                sdp,
            });
            self.answered = true;
            self.store.call_answered(&self.call_id);
            self.keep_media_flowing();
        }
        Ok(())
    }

    pub async fn sleep(&mut self, ms: u32) -> Result<(), Error> {
        self.check_live()?;
        let until = tokio::time::Instant::now() + Duration::from_millis(ms.min(600_000).into());
        loop {
            tokio::select! {
                ev = self.next_event() => {
                    self.absorb(ev);
                    if self.ended.is_some() {
                        return Err(Error::HungUp);
                    }
                }
                _ = tokio::time::sleep_until(until) => return Ok(()),
            }
        }
    }

    pub fn hangup(&mut self) -> Result<(), Error> {
        self.check_live()?;
        // A call the node placed hangs up the leg it adopted.
        let call_id = match &self.adopted {
            Some(a) => a.call_id.clone(),
            None => self.call_id.clone(),
        };
        let _ = self.sip.send(SipCommand::Hangup { call_id });
        self.end("plugin-hangup");
        Ok(())
    }
}

trait CharBoundary {
    fn floor_char_boundary_compat(&self, max: usize) -> usize;
}

impl CharBoundary for str {
    /// The largest char boundary not above `max` (str::floor_char_boundary is unstable).
    fn floor_char_boundary_compat(&self, max: usize) -> usize {
        if max >= self.len() {
            return self.len();
        }
        (0..=max)
            .rev()
            .find(|i| self.is_char_boundary(*i))
            .unwrap_or(0)
    }
}
