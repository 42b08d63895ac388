//! The host API as a scripted call: every verb is written down, the caller's
//! part comes from the script, and nothing touches SIP, media or disk. The
//! rules mirror the node's verbs closely enough to test call logic (keys
//! checked against the valid list with retries, barge-in, hang-ups seen by
//! every later caller-facing verb); grants and quotas are not applied.

use std::collections::{BTreeMap, VecDeque};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::script::{CallerStep, HttpAnswer, PastCall, Script};
use crate::plugin::hookline::call::{data, media, routing, types};
use crate::plugin::rules::{entry_is_valid, played_step};
use types::CallError;

/// The scripted call, and what the plugin did to it.
pub struct ScriptState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) config: String,
    caller: VecDeque<CallerStep>,
    dial: VecDeque<String>,
    queue: VecDeque<String>,
    http: VecDeque<HttpAnswer>,
    history: Vec<PastCall>,
    pub(super) kv: BTreeMap<String, String>,
    pub(super) verbs: Vec<String>,
    pub(super) path: Vec<String>,
    pub(super) logs: Vec<String>,
    /// The caller has gone (hung up, or the plugin hung up or rejected).
    gone: bool,
    answered: bool,
    now_ms: u64,
    recordings: u32,
    /// A key stopped the last barge-in play: the next collect skips its
    /// prompts, as the node does with keys typed ahead.
    typed_ahead: bool,
}

impl ScriptState {
    pub(super) fn new(
        script: &Script,
        config: String,
        now_ms: u64,
        output: &std::sync::Arc<crate::plugin::output::PluginOutput>,
    ) -> ScriptState {
        let (stdout, stderr) = output.streams();
        ScriptState {
            wasi: WasiCtx::builder().stdout(stdout).stderr(stderr).build(),
            table: ResourceTable::new(),
            config,
            caller: script.caller.iter().cloned().collect(),
            dial: script.dial.iter().cloned().collect(),
            queue: script.queue.iter().cloned().collect(),
            http: script.http.iter().cloned().collect(),
            history: script.history.clone(),
            kv: script.kv.clone(),
            verbs: Vec::new(),
            path: Vec::new(),
            logs: Vec::new(),
            gone: false,
            answered: false,
            now_ms,
            recordings: 0,
            typed_ahead: false,
        }
    }

    /// A caller-facing verb: written down, and refused once the caller left
    /// (or leaves now: a hang-up is the next thing the caller does).
    fn facing(&mut self, verb: String) -> Result<(), CallError> {
        self.verbs.push(verb);
        if !self.gone && self.caller.front().is_some_and(|s| s.hangup) {
            self.caller.pop_front();
            self.gone = true;
        }
        if self.gone {
            return Err(CallError::HungUp);
        }
        Ok(())
    }

    fn answer_implicitly(&mut self) {
        self.answered = true;
    }

    /// The steps the node writes in the record for what it plays.
    fn mark_items(&mut self, list: &[media::PlayItem]) {
        self.path.extend(list.iter().filter_map(played_step));
    }

    /// One entry of keys, as the caller's next step gives it.
    fn collect_once(
        &mut self,
        o: &media::CollectOptions,
    ) -> Result<(String, media::CollectEnd), CallError> {
        match self.take_step() {
            Some(s) if s.hangup => {
                self.gone = true;
                Err(CallError::HungUp)
            }
            Some(CallerStep {
                keys: Some(keys), ..
            }) => {
                let term = o.terminator.as_deref().and_then(|t| t.chars().next());
                let mut digits = String::new();
                for k in keys.chars() {
                    if Some(k) == term {
                        return Ok((digits, media::CollectEnd::Terminator));
                    }
                    digits.push(k);
                    if digits.len() as u32 >= o.max_digits {
                        return Ok((digits, media::CollectEnd::MaxDigits));
                    }
                }
                // Fewer keys than the most: the inter-digit timeout ends it.
                Ok((digits, media::CollectEnd::Timeout))
            }
            // Silence, or nothing more scripted: the entry times out.
            _ => Ok((String::new(), media::CollectEnd::Timeout)),
        }
    }

    /// The caller's next keys, if pressing keys is what they do next.
    fn next_keys(&mut self) -> Option<String> {
        let keys = self.caller.front()?.keys.clone()?;
        self.caller.pop_front();
        Some(keys)
    }

    /// Whatever the caller does next, taken.
    fn take_step(&mut self) -> Option<CallerStep> {
        self.caller.pop_front()
    }
}

impl WasiView for ScriptState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn item(i: &media::PlayItem) -> String {
    match i {
        media::PlayItem::Prompt(id) => format!("prompt:{id}"),
        media::PlayItem::Say(s) => format!("say:{}", s.text),
        media::PlayItem::Tone(t) => format!(
            "tone:{}/{}ms",
            t.frequencies
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+"),
            t.duration_ms
        ),
        media::PlayItem::Silence(ms) => format!("silence:{ms}ms"),
        media::PlayItem::Recording(id) => format!("recording:{id}"),
    }
}

fn items(list: &[media::PlayItem]) -> String {
    list.iter().map(item).collect::<Vec<_>>().join(", ")
}

fn target(t: &routing::DialTarget) -> String {
    match t {
        routing::DialTarget::Extension(e) => format!("extension:{e}"),
        routing::DialTarget::Uri(u) => format!("uri:{u}"),
        routing::DialTarget::Number(n) => format!("number:{n}"),
        routing::DialTarget::Trunk(t) => format!("trunk:{}:{}", t.trunk, t.number),
    }
}

impl types::Host for ScriptState {}

impl media::Host for ScriptState {
    async fn answer(&mut self) -> Result<(), CallError> {
        self.facing("answer".into())?;
        self.answered = true;
        Ok(())
    }

    async fn pre_answer(&mut self) -> Result<(), CallError> {
        self.facing("pre-answer".into())?;
        self.path.push("early-media".into());
        Ok(())
    }

    async fn play(
        &mut self,
        list: Vec<media::PlayItem>,
        barge_in: bool,
    ) -> Result<media::PlayEnd, CallError> {
        self.facing(format!("play {}", items(&list)))?;
        self.answer_implicitly();
        self.mark_items(&list);
        // A key pressed during a barge-in play stops it; the key is kept
        // for the next collect, as on the node.
        let key_next = self
            .caller
            .front()
            .is_some_and(|s| s.keys.is_some() && s.early);
        self.typed_ahead = barge_in && key_next;
        Ok(if self.typed_ahead {
            media::PlayEnd::Interrupted
        } else {
            media::PlayEnd::Finished
        })
    }

    async fn collect_digits(
        &mut self,
        o: media::CollectOptions,
    ) -> Result<media::Collected, CallError> {
        self.facing(
            format!("collect-digits {}", items(&o.prompts))
                .trim_end()
                .into(),
        )?;
        if o.max_digits == 0 || o.min_digits > o.max_digits || o.max_digits > 64 {
            return Err(CallError::InvalidArgument(format!(
                "need min-digits ({}) <= max-digits ({}), 1 <= max-digits <= 64",
                o.min_digits, o.max_digits
            )));
        }
        self.answer_implicitly();
        let mut last = media::Collected {
            digits: String::new(),
            end: media::CollectEnd::Timeout,
            valid: false,
            attempts: 0,
        };
        // The node's rules: prompts each attempt (skipped for keys typed
        // ahead), the entry, then the invalid or no-input prompts before
        // the next attempt.
        for attempt in 1..=o.attempts.clamp(1, 10) {
            if !std::mem::take(&mut self.typed_ahead) {
                self.mark_items(&o.prompts);
            }
            let (digits, end) = self.collect_once(&o)?;
            self.path.push(format!("digits:{digits}"));
            let valid = entry_is_valid(&o, &digits);
            let silent = digits.is_empty();
            last = media::Collected {
                digits,
                end,
                valid,
                attempts: attempt,
            };
            if valid {
                break;
            }
            let retry = if silent && !o.timeout_prompts.is_empty() {
                o.timeout_prompts.clone()
            } else {
                o.invalid_prompts.clone()
            };
            if attempt < o.attempts.clamp(1, 10) {
                self.mark_items(&retry);
            }
        }
        Ok(last)
    }

    async fn collect_speech(
        &mut self,
        o: media::SpeechOptions,
    ) -> Result<media::Recognized, CallError> {
        self.facing(
            format!("collect-speech {}", items(&o.prompts))
                .trim_end()
                .into(),
        )?;
        self.answer_implicitly();
        let mut heard = media::Recognized {
            text: String::new(),
            confidence: 0.0,
            phrase: None,
            digit: None,
        };
        match self.take_step() {
            Some(s) if s.hangup => {
                self.gone = true;
                return Err(CallError::HungUp);
            }
            Some(CallerStep {
                say: Some(text), ..
            }) => {
                heard.phrase = o
                    .phrases
                    .iter()
                    .position(|p| p.eq_ignore_ascii_case(text.trim()))
                    .map(|i| i as u32);
                heard.confidence = 0.9;
                heard.text = text;
            }
            Some(CallerStep { keys: Some(k), .. }) => {
                heard.digit = k.chars().next().map(String::from);
            }
            _ => {}
        }
        Ok(heard)
    }

    async fn record(&mut self, o: media::RecordOptions) -> Result<media::Recording, CallError> {
        self.facing("record".into())?;
        self.answer_implicitly();
        self.recordings += 1;
        let id = format!("rec-{}", self.recordings);
        let (duration_ms, end) = match self.take_step() {
            Some(CallerStep {
                message_ms: Some(ms),
                hangup,
                ..
            }) => {
                // A message, then (if the step says so) the caller hangs up:
                // kept, as on the node.
                self.gone |= hangup;
                let end = if hangup {
                    media::RecordEnd::HungUp
                } else {
                    media::RecordEnd::Silence
                };
                (ms.min(o.max_ms.max(1)), end)
            }
            Some(s) if s.hangup => {
                self.gone = true;
                (0, media::RecordEnd::HungUp)
            }
            _ => (0, media::RecordEnd::Silence),
        };
        Ok(media::Recording {
            id,
            duration_ms,
            end,
            terminator: None,
        })
    }

    async fn start_session_recording(&mut self) -> Result<String, CallError> {
        self.facing("start-session-recording".into())?;
        self.recordings += 1;
        Ok(format!("rec-{}", self.recordings))
    }

    async fn stop_session_recording(&mut self) -> Result<media::Recording, CallError> {
        self.verbs.push("stop-session-recording".into());
        Ok(media::Recording {
            id: format!("rec-{}", self.recordings),
            duration_ms: 0,
            end: media::RecordEnd::MaxLength,
            terminator: None,
        })
    }

    async fn send_dtmf(&mut self, digits: String) -> Result<(), CallError> {
        self.facing(format!("send-dtmf {digits}"))?;
        self.path.push(format!("send-dtmf:{digits}"));
        Ok(())
    }

    async fn sleep(&mut self, ms: u32) -> Result<(), CallError> {
        self.facing(format!("sleep {ms}"))?;
        self.now_ms += u64::from(ms);
        Ok(())
    }

    async fn next_event(&mut self, timeout_ms: u32) -> Result<media::CallEvent, CallError> {
        self.facing("next-event".into())?;
        if let Some(keys) = self.next_keys() {
            let mut rest = keys.chars();
            let first = rest.next().map(String::from).unwrap_or_default();
            let rest: String = rest.collect();
            if !rest.is_empty() {
                self.caller.push_front(CallerStep {
                    keys: Some(rest),
                    ..CallerStep::default()
                });
            }
            return Ok(media::CallEvent::Digit(first));
        }
        if self.caller.front().is_some_and(|s| s.silence) {
            self.caller.pop_front();
        }
        self.now_ms += u64::from(timeout_ms);
        Ok(media::CallEvent::Timeout)
    }

    async fn set_language(&mut self, language: String) -> Result<(), CallError> {
        self.facing(format!("set-language {language}"))?;
        self.path.push(format!("language:{language}"));
        Ok(())
    }
}

impl routing::Host for ScriptState {
    async fn hangup(&mut self) -> Result<(), CallError> {
        self.facing("hangup".into())?;
        self.gone = true;
        Ok(())
    }

    async fn reject(&mut self, code: u16) -> Result<(), CallError> {
        self.facing(format!("reject {code}"))?;
        if self.answered || !(400..=699).contains(&code) {
            return Err(CallError::InvalidArgument(format!("reject {code}")));
        }
        self.path.push(format!("reject:{code}"));
        self.gone = true;
        Ok(())
    }

    async fn dial(&mut self, o: routing::DialOptions) -> Result<routing::DialResult, CallError> {
        let to: Vec<String> = o.targets.iter().map(target).collect();
        self.facing(format!("dial {}", to.join(", ")))?;
        let outcome = self.dial.pop_front().unwrap_or_else(|| "no-answer".into());
        let status = match outcome.as_str() {
            "completed" => routing::DialStatus::Completed,
            "busy" => routing::DialStatus::Busy,
            "failed" => routing::DialStatus::Failed,
            _ => routing::DialStatus::NoAnswer,
        };
        let done = status == routing::DialStatus::Completed;
        if done {
            self.answered = true;
        }
        Ok(routing::DialResult {
            status,
            answered_target: done.then_some(0),
            talk_seconds: if done { 30 } else { 0 },
        })
    }

    async fn transfer(
        &mut self,
        to: routing::DialTarget,
        _timeout_ms: u32,
    ) -> Result<(), CallError> {
        self.facing(format!("transfer {}", target(&to)))?;
        let outcome = self.dial.pop_front().unwrap_or_else(|| "no-answer".into());
        if outcome == "completed" {
            self.gone = true;
            Ok(())
        } else {
            Err(CallError::Failed(format!("transfer: {outcome}")))
        }
    }

    async fn enqueue(
        &mut self,
        queue: String,
        _o: routing::EnqueueOptions,
    ) -> Result<routing::QueueEnd, CallError> {
        self.facing(format!("enqueue {queue}"))?;
        self.answer_implicitly();
        Ok(
            match self.queue.pop_front().as_deref().unwrap_or("timeout") {
                "answered" => routing::QueueEnd::Answered,
                "full" => routing::QueueEnd::Full,
                "left" => routing::QueueEnd::Left,
                "callback" => {
                    self.gone = true;
                    routing::QueueEnd::Callback
                }
                _ => routing::QueueEnd::Timeout,
            },
        )
    }

    async fn conference(&mut self, room: String, _muted: bool) -> Result<(), CallError> {
        self.facing(format!("conference {room}"))?;
        self.answer_implicitly();
        Ok(())
    }

    async fn hand_over(
        &mut self,
        plugin: String,
        arguments: String,
    ) -> Result<routing::HandOverResult, CallError> {
        self.facing(format!("hand-over {plugin} {arguments}").trim_end().into())?;
        Ok(routing::HandOverResult {
            ok: true,
            reason: None,
        })
    }
}

impl data::Host for ScriptState {
    async fn log(&mut self, _level: data::LogLevel, message: String) {
        self.logs.push(message);
    }

    async fn mark(&mut self, step: String) {
        self.path.push(step);
    }

    async fn config(&mut self) -> String {
        self.config.clone()
    }

    async fn counter_add(&mut self, name: String, delta: u64) {
        self.verbs.push(format!("counter {name} +{delta}"));
    }

    async fn http_fetch(&mut self, r: data::HttpRequest) -> Result<data::HttpResponse, CallError> {
        self.verbs.push(format!("http {} {}", r.method, r.url));
        let a = self
            .http
            .pop_front()
            .ok_or_else(|| CallError::Failed("no scripted HTTP response left".into()))?;
        Ok(data::HttpResponse {
            status: a.status,
            headers: a.headers.into_iter().collect(),
            body: a.body.into_bytes(),
        })
    }

    async fn kv_get(&mut self, key: String) -> Result<Option<String>, CallError> {
        self.verbs.push(format!("kv-get {key}"));
        Ok(self.kv.get(&key).cloned())
    }

    async fn kv_set(
        &mut self,
        key: String,
        value: String,
        _ttl_s: Option<u32>,
    ) -> Result<(), CallError> {
        self.verbs.push(format!("kv-set {key}"));
        self.kv.insert(key, value);
        Ok(())
    }

    async fn kv_delete(&mut self, key: String) -> Result<(), CallError> {
        self.verbs.push(format!("kv-delete {key}"));
        self.kv.remove(&key);
        Ok(())
    }

    async fn now_ms(&mut self) -> u64 {
        self.now_ms
    }

    async fn local_time(&mut self, zone: String) -> Result<data::CivilTime, CallError> {
        crate::plugin::services::civil_time(&zone, self.now_ms as i64)
    }

    async fn call_history(
        &mut self,
        number: String,
        limit: u32,
    ) -> Result<Vec<data::PastCall>, CallError> {
        self.verbs.push(format!("call-history {number}"));
        Ok(self
            .history
            .iter()
            .filter(|c| c.caller == number)
            .take(limit as usize)
            .enumerate()
            .map(|(i, c)| data::PastCall {
                call_id: format!("past-{i}"),
                started_ms: c.started_ms,
                caller: c.caller.clone(),
                callee: c.callee.clone(),
                answered_by: c.answered_by.clone(),
                duration_s: c.duration_s,
            })
            .collect())
    }
}
