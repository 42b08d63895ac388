//! `hookline:call@0.1.x` imports, implemented on a call's plugin state (the
//! plugin runtime links them through `plugin::Session`): grants
//! are checked here, the work is done by the call's session and the services.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::call::dial::DialStatus;
use crate::call::session::CallSession;
use crate::call::shallow::in_box;
use crate::call::targets::Target;
use crate::plugin::hookline::call::{data, media, routing, types};
use crate::plugin::manifest::Capability;
use crate::plugin::{self as runtime, quotas, services};
use crate::plugin::{blocking, failed, CallInfo, CallPlugin, Outcome, MAX_HAND_OVER_DEPTH};
use types::CallError;

/// The store data of a call's plugin on this node.
type CallState = runtime::CallState<CallSession>;

impl runtime::Session for CallSession {
    fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        CallPlugin::add_to_linker::<_, HasSelf<CallState>>(linker, |s| s)
    }

    fn call_id(&self) -> &str {
        &self.call_id
    }

    fn run_state(&mut self) -> &mut runtime::RunState {
        &mut self.run
    }
}

/// Grant refusals said per call (log and path); more are only counted.
const MAX_REFUSALS_SAID: u8 = 8;

impl CallState {
    /// The call (absent only while a manifest is read).
    fn call(&mut self) -> Result<&mut CallSession, CallError> {
        self.session.as_mut().ok_or(CallError::Unavailable)
    }

    /// Whether the plugin's grants cover `c` for `verb`. A refusal is said
    /// where the author looks — the node log and the call's path
    /// (`not-allowed:<verb>:<grant>`) — naming the verb and the grant to add
    /// (the WIT's `not-allowed` carries no text); the first few per call only,
    /// so a plugin retrying in a loop cannot flood either.
    fn granted(&mut self, verb: &str, c: &Capability) -> Result<(), CallError> {
        if self
            .plugin
            .as_ref()
            .is_some_and(|p| p.manifest.grants.allows(c))
        {
            return Ok(());
        }
        self.say_refused(verb, &c.as_grant());
        Err(CallError::NotAllowed)
    }

    /// Says that `verb` was refused for want of `grant` (see `granted`).
    fn say_refused(&mut self, verb: &str, grant: &str) {
        if self.used.refusals >= MAX_REFUSALS_SAID {
            return;
        }
        self.used.refusals += 1;
        let plugin = self.plugin_name();
        if let Ok(s) = self.call() {
            tracing::warn!(
                call = %s.call_id,
                %plugin,
                "{verb} refused: the plugin is not granted {grant:?} (add it to the plugin's grants in [[plugins]])"
            );
            s.mark(&format!("not-allowed:{verb}:{grant}"));
        }
    }

    fn quotas(&self) -> quotas::Quotas {
        self.plugin
            .as_ref()
            .map(|p| p.manifest.quotas)
            .unwrap_or_default()
    }

    /// Charges the speech in `items` that is not cached yet to the call's
    /// and the plugin's per-minute quota: a plugin that says many distinct
    /// long texts is refused before the synthesiser runs.
    fn charge_tts<'a>(
        &mut self,
        items: impl IntoIterator<Item = &'a media::PlayItem>,
    ) -> Result<(), CallError> {
        let q = self.quotas();
        let Some(plugin) = self.plugin.clone() else {
            return Ok(());
        };
        let session = self.call()?;
        let tts = session.node.tts.clone();
        let language = session.language.clone();
        let new: u64 = items
            .into_iter()
            .filter_map(|i| match i {
                media::PlayItem::Say(t) => Some(t),
                _ => None,
            })
            .filter(|t| {
                let lang = t.language.as_deref().unwrap_or(&language);
                tts.cached(&t.text, lang).is_none()
            })
            .map(|t| t.text.chars().count() as u64)
            .sum();
        if new == 0 {
            return Ok(());
        }
        if self.used.tts_chars + new > q.tts_chars_per_call as u64 {
            return Err(quotas::exceeded(format_args!(
                "speech of {} characters per call (tts-chars-per-call)",
                q.tts_chars_per_call
            )));
        }
        let mut minute = plugin.tts_minute.lock().unwrap_or_else(|e| e.into_inner());
        if !minute.take(
            std::time::Instant::now(),
            Duration::from_secs(60),
            new,
            q.tts_chars_per_minute as u64,
        ) {
            return Err(quotas::exceeded(format_args!(
                "speech of {} characters per minute for the plugin (tts-chars-per-minute)",
                q.tts_chars_per_minute
            )));
        }
        drop(minute);
        self.used.tts_chars += new;
        Ok(())
    }

    fn plugin_name(&self) -> String {
        self.plugin
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }
}

impl types::Host for CallState {}

fn target(t: routing::DialTarget) -> Target {
    match t {
        routing::DialTarget::Extension(e) => Target::Extension(e),
        routing::DialTarget::Uri(u) => Target::Uri(u),
        routing::DialTarget::Number(n) => Target::Number(n),
        routing::DialTarget::Trunk(t) => Target::Trunk {
            trunk: t.trunk,
            number: t.number,
        },
    }
}

impl media::Host for CallState {
    async fn answer(&mut self) -> Result<(), CallError> {
        self.call()?.answer().map_err(CallError::from)
    }

    async fn pre_answer(&mut self) -> Result<(), CallError> {
        self.call()?.pre_answer().map_err(CallError::from)
    }

    async fn play(
        &mut self,
        items: Vec<media::PlayItem>,
        barge_in: bool,
    ) -> Result<media::PlayEnd, CallError> {
        self.charge_tts(&items)?;
        let call = self.call()?;
        let interrupted = in_box(|| call.play_items(&items, barge_in)).await?;
        Ok(if interrupted {
            media::PlayEnd::Interrupted
        } else {
            media::PlayEnd::Finished
        })
    }

    async fn collect_digits(
        &mut self,
        options: media::CollectOptions,
    ) -> Result<media::Collected, CallError> {
        // One charge for everything the collection may say.
        self.charge_tts(
            options
                .prompts
                .iter()
                .chain(&options.invalid_prompts)
                .chain(&options.timeout_prompts),
        )?;
        let call = self.call()?;
        in_box(|| call.collect_digits(&options))
            .await
            .map_err(CallError::from)
    }

    async fn collect_speech(
        &mut self,
        options: media::SpeechOptions,
    ) -> Result<media::Recognized, CallError> {
        self.granted("collect-speech", &Capability::Speech)?;
        self.charge_tts(&options.prompts)?;
        let call = self.call()?;
        in_box(|| call.collect_speech(&options))
            .await
            .map_err(CallError::from)
    }

    async fn record(
        &mut self,
        options: media::RecordOptions,
    ) -> Result<media::Recording, CallError> {
        self.granted("record", &Capability::Recording)?;
        let call = self.call()?;
        in_box(|| call.record(&options))
            .await
            .map_err(CallError::from)
    }

    async fn start_session_recording(&mut self) -> Result<String, CallError> {
        self.granted("start-session-recording", &Capability::Recording)?;
        self.call()?
            .start_session_recording()
            .await
            .map_err(CallError::from)
    }

    async fn stop_session_recording(&mut self) -> Result<media::Recording, CallError> {
        self.granted("stop-session-recording", &Capability::Recording)?;
        self.call()?
            .stop_session_recording()
            .await
            .map_err(CallError::from)
    }

    async fn send_dtmf(&mut self, digits: String) -> Result<(), CallError> {
        self.call()?
            .send_dtmf(&digits)
            .await
            .map_err(CallError::from)
    }

    async fn sleep(&mut self, ms: u32) -> Result<(), CallError> {
        self.call()?.sleep(ms).await.map_err(CallError::from)
    }

    async fn next_event(&mut self, timeout_ms: u32) -> Result<media::CallEvent, CallError> {
        self.call()?
            .wait_event(timeout_ms)
            .await
            .map_err(CallError::from)
    }

    async fn set_language(&mut self, language: String) -> Result<(), CallError> {
        self.call()?
            .set_language(&language)
            .map_err(CallError::from)
    }
}

impl routing::Host for CallState {
    async fn hangup(&mut self) -> Result<(), CallError> {
        self.call()?.hangup().map_err(CallError::from)
    }

    async fn reject(&mut self, code: u16) -> Result<(), CallError> {
        self.call()?.reject(code).map_err(CallError::from)
    }

    async fn dial(
        &mut self,
        options: routing::DialOptions,
    ) -> Result<routing::DialResult, CallError> {
        if options.targets.is_empty() || options.targets.len() > 32 {
            return Err(CallError::InvalidArgument(
                "dial needs 1 to 32 targets".into(),
            ));
        }
        let targets: Vec<Target> = options.targets.into_iter().map(target).collect();
        let timeout = Duration::from_millis(options.timeout_ms.clamp(1000, 600_000).into());
        let session = self.call()?;
        let caller_id = options.caller_id;
        let out = match options.strategy {
            routing::RingStrategy::Simultaneous => {
                in_box(|| session.dial(&targets, timeout, caller_id)).await?
            }
            routing::RingStrategy::Sequential => {
                in_box(|| session.dial_sequential(&targets, timeout, caller_id)).await?
            }
        };
        Ok(routing::DialResult {
            status: match out.status {
                DialStatus::Completed => routing::DialStatus::Completed,
                DialStatus::NoAnswer => routing::DialStatus::NoAnswer,
                DialStatus::Busy => routing::DialStatus::Busy,
                DialStatus::Failed => routing::DialStatus::Failed,
            },
            answered_target: out.answered_target,
            talk_seconds: out.talk_seconds,
        })
    }

    async fn transfer(
        &mut self,
        target_: routing::DialTarget,
        timeout_ms: u32,
    ) -> Result<(), CallError> {
        let timeout = Duration::from_millis(timeout_ms.clamp(1000, 600_000).into());
        self.call()?
            .transfer(target(target_), timeout)
            .await
            .map_err(CallError::from)
    }

    async fn enqueue(
        &mut self,
        queue: String,
        options: routing::EnqueueOptions,
    ) -> Result<routing::QueueEnd, CallError> {
        use crate::call::queue::QueueExit;
        let max_wait = Duration::from_millis(options.max_wait_ms.into());
        let exit = self
            .call()?
            .enqueue(&queue, options.priority, max_wait)
            .await?;
        Ok(match exit {
            QueueExit::Answered => routing::QueueEnd::Answered,
            QueueExit::Timeout => routing::QueueEnd::Timeout,
            QueueExit::Full => routing::QueueEnd::Full,
            QueueExit::Left => routing::QueueEnd::Left,
            QueueExit::Callback => routing::QueueEnd::Callback,
        })
    }

    async fn conference(&mut self, room: String, muted: bool) -> Result<(), CallError> {
        self.call()?
            .conference(&room, muted)
            .await
            .map_err(CallError::from)
    }

    async fn hand_over(
        &mut self,
        plugin: String,
        arguments: String,
    ) -> Result<routing::HandOverResult, CallError> {
        self.call()?.check_live()?;
        self.granted("hand-over", &Capability::HandOver(plugin.clone()))?;
        if serde_json::from_str::<serde_json::Value>(&arguments).is_err() {
            return Err(CallError::InvalidArgument("arguments must be JSON".into()));
        }
        let mut session = self.session.take().ok_or(CallError::Unavailable)?;
        if session.run.depth >= MAX_HAND_OVER_DEPTH {
            self.session = Some(session);
            return Err(CallError::Failed(format!(
                "hand-overs nest at most {MAX_HAND_OVER_DEPTH} deep"
            )));
        }
        let node = session.node.clone();
        let Some(next) = node.plugins.get(&plugin) else {
            self.session = Some(session);
            return Err(CallError::InvalidArgument(format!("no plugin {plugin:?}")));
        };
        let info = CallInfo {
            arguments: Some(arguments),
            config: node.plugin_config_json(&plugin),
            ..session.info.clone()
        };
        let caller_plugin = std::mem::replace(&mut session.plugin, plugin.clone());
        session.run.depth += 1;
        session.mark(&format!("hand-over:{plugin}"));
        let (outcome, mut session) = Box::pin(node.plugins.run(&next, session, info)).await;
        session.run.depth -= 1;
        session.plugin = caller_plugin;
        let result = match outcome {
            Outcome::Done => routing::HandOverResult {
                ok: true,
                reason: None,
            },
            Outcome::Failed(r) => routing::HandOverResult {
                ok: false,
                reason: Some(r),
            },
            Outcome::Trapped(t) => {
                session.mark(&format!("plugin-trap:{plugin}"));
                routing::HandOverResult {
                    ok: false,
                    reason: Some(format!("trapped: {t}")),
                }
            }
        };
        self.session = Some(session);
        Ok(result)
    }
}

impl data::Host for CallState {
    async fn log(&mut self, level: data::LogLevel, message: String) {
        let per_s = self.quotas().log_lines_per_s;
        // One budget for the call's log lines and its stdout/stderr.
        let (admit, dropped) = self.output.as_ref().map_or((true, None), |o| o.admit());
        if !admit {
            return;
        }
        if let Ok(s) = self.call() {
            if let Some(n) = dropped {
                s.log(data::LogLevel::Warn, &quotas::dropped_line(n, per_s));
            }
            s.log(level, &message);
        }
    }

    async fn mark(&mut self, step: String) {
        if let Ok(s) = self.call() {
            s.mark(&step);
        }
    }

    async fn config(&mut self) -> String {
        self.config.clone()
    }

    async fn counter_add(&mut self, name: String, delta: u64) {
        let plugin = self.plugin_name();
        let cap = self.quotas().counters;
        if let Ok(s) = self.call() {
            s.node.counters.add(&plugin, &name, delta, cap);
        }
    }

    async fn http_fetch(
        &mut self,
        request: data::HttpRequest,
    ) -> Result<data::HttpResponse, CallError> {
        let Some(plugin) = self.plugin.clone() else {
            return Err(CallError::NotAllowed);
        };
        let q = plugin.manifest.quotas;
        if self.used.http_requests >= q.http_requests_per_call {
            return Err(quotas::exceeded(format_args!(
                "{} HTTP requests per call (http-requests-per-call)",
                q.http_requests_per_call
            )));
        }
        let room = q.http_bytes_per_call.saturating_sub(self.used.http_bytes);
        if room == 0 {
            return Err(quotas::exceeded(format_args!(
                "{} HTTP response bytes per call (http-bytes-per-call)",
                q.http_bytes_per_call
            )));
        }
        let node = self.call()?.node.clone();
        self.used.http_requests += 1;
        let destination = reqwest::Url::parse(&request.url).ok().map(|u| {
            let port = u.port_or_known_default().unwrap_or(80);
            format!("http:{}:{port}", u.host_str().unwrap_or_default())
        });
        let out = services::http_fetch(
            &node.http,
            &node.net_guard,
            &plugin.manifest.grants,
            request,
            room,
        )
        .await;
        if let (Err(CallError::NotAllowed), Some(grant)) = (&out, destination) {
            self.say_refused("http-fetch", &grant);
        }
        let out = out?;
        self.used.http_bytes += out.body.len() as u64;
        Ok(out)
    }

    async fn kv_get(&mut self, key: String) -> Result<Option<String>, CallError> {
        self.granted("kv-get", &Capability::Kv)?;
        let plugin = self.plugin_name();
        let store = self.call()?.node.plugin_data.clone();
        check_key(&key)?;
        blocking(move || store.kv_get(&plugin, &key))
            .await?
            .map_err(failed)
    }

    async fn kv_set(
        &mut self,
        key: String,
        value: String,
        ttl_s: Option<u32>,
    ) -> Result<(), CallError> {
        self.granted("kv-set", &Capability::Kv)?;
        check_key(&key)?;
        let q = self.quotas();
        let max_value = (q.kv_value_bytes as usize).min(crate::store::plugin_data::MAX_VALUE);
        if value.len() > max_value {
            return Err(quotas::exceeded(format_args!(
                "a value of at most {max_value} bytes (kv-value-bytes)"
            )));
        }
        let plugin = self.plugin_name();
        let store = self.call()?.node.plugin_data.clone();
        let limits = crate::store::plugin_data::KvLimits {
            keys: q.kv_keys as u64,
            bytes: q.kv_bytes,
        };
        blocking(move || store.kv_set(&plugin, &key, &value, ttl_s, limits))
            .await?
            .map_err(failed)?
            .map_err(quotas::exceeded)
    }

    async fn kv_delete(&mut self, key: String) -> Result<(), CallError> {
        self.granted("kv-delete", &Capability::Kv)?;
        check_key(&key)?;
        let plugin = self.plugin_name();
        let store = self.call()?.node.plugin_data.clone();
        blocking(move || store.kv_delete(&plugin, &key))
            .await?
            .map_err(failed)
    }

    async fn now_ms(&mut self) -> u64 {
        crate::store::now_ms() as u64
    }

    async fn local_time(&mut self, zone: String) -> Result<data::CivilTime, CallError> {
        services::civil_time(&zone, crate::store::now_ms())
    }

    async fn call_history(
        &mut self,
        number: String,
        limit: u32,
    ) -> Result<Vec<data::PastCall>, CallError> {
        self.granted("call-history", &Capability::History)?;
        if number.is_empty() || number.len() > 64 {
            return Err(CallError::InvalidArgument(
                "number of 1-64 characters".into(),
            ));
        }
        let store = self.call()?.node.plugin_data.clone();
        let rows = blocking(move || store.call_history(&number, limit.clamp(1, 50)))
            .await?
            .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|r| data::PastCall {
                call_id: r.call_id,
                started_ms: r.started_ms.max(0) as u64,
                caller: r.caller,
                callee: r.callee,
                answered_by: r.answered_by,
                duration_s: r.duration_s,
            })
            .collect())
    }
}

fn check_key(key: &str) -> Result<(), CallError> {
    if key.is_empty() || key.len() > crate::store::plugin_data::MAX_KEY {
        return Err(CallError::InvalidArgument("key of 1-256 bytes".into()));
    }
    Ok(())
}

/// Call control's errors, as the plugin sees them: the one place the WIT
/// type is made from them.
impl From<crate::call::error::Error> for CallError {
    fn from(e: crate::call::error::Error) -> CallError {
        use crate::call::error::Error;
        match e {
            Error::HungUp => CallError::HungUp,
            Error::Unavailable => CallError::Unavailable,
            Error::NotAllowed => CallError::NotAllowed,
            Error::InvalidArgument(s) => CallError::InvalidArgument(s),
            Error::Failed(s) => CallError::Failed(s),
        }
    }
}
