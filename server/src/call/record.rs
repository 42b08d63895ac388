//! The `record` verb (a message from the caller, e.g. voicemail) and session
//! recording (the whole call, both directions). Files land in
//! `<data>/recordings/<id>.wav`; each is listed in the `recordings` table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::error::{blocking, failed, Error};
use super::session::{CallEvent, CallSession};
use crate::media::prompt::{Prompt, RATE};
use crate::media::recorder::RecordingHandle;
use crate::media::tone;
use crate::media::worker::MediaEvent;
use crate::plugin::hookline::call::media::{RecordEnd, RecordOptions, Recording};
use crate::store::plugin_data::RecordingRow;

/// A recording in progress. While one is open the call's media leg outlives
/// a hang-up until the recording is finished and listed.
pub struct Active {
    pub id: String,
    pub handle: RecordingHandle,
    pub path: PathBuf,
    _open: OpenRecording,
}

/// Counts a call's open recordings; dropping it counts one less.
pub(crate) struct OpenRecording(Arc<std::sync::atomic::AtomicUsize>);

impl OpenRecording {
    pub(crate) fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> OpenRecording {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OpenRecording(count.clone())
    }
}

impl Drop for OpenRecording {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// How long the writer may take to finish a file.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

impl CallSession {
    fn new_recording(&self) -> (String, PathBuf) {
        let id = format!("r{:016x}", rand::random::<u64>());
        let path = self
            .node
            .data_dir
            .join("recordings")
            .join(format!("{id}.wav"));
        (id, path)
    }

    /// Refuses a new recording while the disk it goes to is nearly full,
    /// saying so in the log; the plugin gets the reason.
    fn check_disk(&self, path: &std::path::Path) -> Result<(), Error> {
        let dir = path.parent().unwrap_or(path);
        let _ = std::fs::create_dir_all(dir);
        let min = self.node.config.node.min_free_disk_mib;
        match free_mib(dir) {
            Some(free) if free < min => {
                tracing::warn!(
                    call = %self.call_id,
                    free_mib = free,
                    min_free_disk_mib = min,
                    "recording refused: disk nearly full"
                );
                Err(Error::Failed(format!(
                    "disk full: {free} MiB free, recordings need {min} MiB"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Lists a recording before its first frame (state `recording`), with
    /// what its plugin runs on: a crash mid-message leaves a row to recover.
    async fn write_ahead(&self, id: &str, path: &std::path::Path, kind: &str) -> Result<(), Error> {
        let row = RecordingRow {
            id: id.to_string(),
            call_id: self.call_id.clone(),
            plugin: self.plugin.clone(),
            kind: kind.into(),
            path: path.display().to_string(),
            duration_ms: 0,
            created_ms: crate::store::now_ms(),
            transcript: None,
            state: "recording".into(),
        };
        let (config, arguments) = self
            .run
            .running
            .clone()
            .unwrap_or_else(|| ("{}".into(), None));
        let data = self.node.plugin_data.clone();
        blocking(move || data.recording_started(&row, &config, arguments.as_deref()))
            .await?
            .map_err(failed)
    }

    /// Stops a tap and lists the file; returns its duration in ms.
    async fn finish_recording(&mut self, a: &Active, kind: &str) -> Result<u32, Error> {
        let done = self.media.stop_record(self.leg, a.handle);
        let duration_ms = match tokio::time::timeout(CLOSE_WAIT, done).await {
            Ok(Ok(Ok(frames))) => (frames * 1000 / RATE as u64) as u32,
            Ok(Ok(Err(e))) => {
                // A write failed (the disk filled mid-message): what reached
                // the disk is made whole and kept, and listed as such.
                tracing::warn!(call = %self.call_id, recording = %a.id, "recording ended early: {e}");
                let path = a.path.clone();
                let repaired = blocking(move || crate::media::recorder::repair(&path)).await?;
                match repaired {
                    Ok((frames, rate)) => (frames * 1000 / u64::from(rate.max(1))) as u32,
                    Err(e) => return Err(Error::Failed(format!("recording: {e}"))),
                }
            }
            _ => return Err(Error::Failed("recording writer did not answer".into())),
        };
        let row = RecordingRow {
            id: a.id.clone(),
            call_id: self.call_id.clone(),
            plugin: self.plugin.clone(),
            kind: kind.into(),
            path: a.path.display().to_string(),
            duration_ms: duration_ms as u64,
            created_ms: crate::store::now_ms(),
            transcript: None,
            state: "done".into(),
        };
        let data = self.node.plugin_data.clone();
        blocking(move || data.recording_saved(&row))
            .await?
            .map_err(failed)?;
        Ok(duration_ms)
    }

    /// Records the caller until a terminator key, silence, the length limit or
    /// a hang-up (which keeps the recording).
    pub async fn record(&mut self, o: &RecordOptions) -> Result<Recording, Error> {
        self.check_live()?;
        if !(1000..=3_600_000).contains(&o.max_ms) {
            return Err(Error::InvalidArgument(
                "max-ms must be 1000 .. 3600000".into(),
            ));
        }
        if o.terminators
            .chars()
            .any(|k| tone::dtmf_frequencies(k).is_none())
        {
            return Err(Error::InvalidArgument(format!(
                "terminators {:?}: only 0-9 * # A-D",
                o.terminators
            )));
        }
        if !self.early {
            self.answer()?;
        }
        if o.beep {
            let beep = Arc::new(Prompt::from_pcm("beep", tone::tone(&[1000], 250)));
            self.play_prompts(vec![beep], false).await?;
        }
        let (id, path) = self.new_recording();
        self.check_disk(&path)?;
        self.write_ahead(&id, &path, "message").await?;
        let handle = self
            .media
            .record(self.leg, path.clone(), false, o.silence_ms);
        let active = Active {
            id,
            handle,
            path,
            _open: OpenRecording::new(&self.recordings_open),
        };
        self.mark(&format!("record:{}", active.id));
        let until = tokio::time::Instant::now() + Duration::from_millis(o.max_ms.into());
        let mut terminator = None;
        let end = loop {
            tokio::select! {
                ev = self.next_event() => match ev {
                    CallEvent::Media(MediaEvent::Dtmf(k)) => {
                        if o.terminators.contains(k) {
                            terminator = Some(k.to_string());
                            break RecordEnd::Terminator;
                        }
                        self.keep_digit(k);
                    }
                    CallEvent::Media(MediaEvent::Silence { handle: h }) if h == handle => {
                        break RecordEnd::Silence;
                    }
                    ev @ CallEvent::Ended(_) => {
                        self.absorb(ev);
                        break RecordEnd::HungUp;
                    }
                    ev => self.absorb(ev),
                },
                _ = tokio::time::sleep_until(until) => break RecordEnd::MaxLength,
            }
        };
        let duration_ms = self.finish_recording(&active, "message").await?;
        self.transcribe(&active);
        Ok(Recording {
            id: active.id,
            duration_ms,
            end,
            terminator,
        })
    }

    /// Transcribes a message in the background (the caller need not wait).
    fn transcribe(&self, a: &Active) {
        transcribe(&self.node, &self.language, a.id.clone(), a.path.clone());
    }

    pub async fn start_session_recording(&mut self) -> Result<String, Error> {
        self.check_live()?;
        if let Some(a) = &self.session_recording {
            return Ok(a.id.clone());
        }
        let (id, path) = self.new_recording();
        self.check_disk(&path)?;
        self.write_ahead(&id, &path, "session").await?;
        let handle = self.media.record(self.leg, path.clone(), true, 0);
        self.mark(&format!("session-recording:{id}"));
        self.session_recording = Some(Active {
            id: id.clone(),
            handle,
            path,
            _open: OpenRecording::new(&self.recordings_open),
        });
        Ok(id)
    }

    pub async fn stop_session_recording(&mut self) -> Result<Recording, Error> {
        let Some(a) = self.session_recording.take() else {
            return Err(Error::InvalidArgument(
                "no session recording is running".into(),
            ));
        };
        let duration_ms = self.finish_recording(&a, "session").await?;
        let end = if self.ended.is_some() {
            RecordEnd::HungUp
        } else {
            RecordEnd::Terminator
        };
        Ok(Recording {
            id: a.id,
            duration_ms,
            end,
            terminator: None,
        })
    }

    /// At the end of the call: a session recording still running is closed
    /// and listed (the plugin may be long gone).
    pub async fn close_recordings(&mut self) {
        if let Some(a) = self.session_recording.take() {
            if let Err(e) = self.finish_recording(&a, "session").await {
                tracing::warn!(call = %self.call_id, "session recording {}: {e:?}", a.id);
            }
        }
    }
}

/// Transcribes a recording in the background; the text lands in the
/// recordings table. Nothing happens where the node has no recognizer for
/// `language`, or transcripts are off.
pub(crate) fn transcribe(node: &super::Node, language: &str, id: String, path: PathBuf) {
    if !node.config.speech.transcribe {
        return;
    }
    let Some(engine) = node.recognizers.get(language) else {
        return;
    };
    let data = node.plugin_data.clone();
    tokio::task::spawn_blocking(move || {
        let text = crate::speech::transcribe_file(engine.as_ref(), &path);
        match text.map_err(|e| e.to_string()).and_then(|t| {
            data.recording_transcribed(&id, &t)
                .map(|_| t)
                .map_err(|e| e.to_string())
        }) {
            Ok(t) => tracing::info!("recording {id} transcribed: {t:?}"),
            Err(e) => tracing::warn!("recording {id}: no transcript: {e}"),
        }
    });
}

/// MiB free for unprivileged writers on the file system of `dir`.
fn free_mib(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize) >> 20)
}
