//! Text-to-speech behind a trait, with a cache keyed by (language, text) so a
//! sentence many calls say is synthesised once and shared.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::media::prompt::{resample, Prompt, RATE};

#[derive(Debug, Error)]
pub enum TtsError {
    #[error("no voice for language {0:?}")]
    NoVoice(String),
    #[error("synthesis failed: {0}")]
    Failed(String),
}

/// Something that turns text into 8 kHz speech.
pub trait Synthesizer: Send + Sync {
    fn synthesize(&self, text: &str, language: &str) -> Result<Vec<i16>, TtsError>;
}

/// espeak-ng (Debian package), offline, every language the node needs.
pub struct Espeak;

/// Languages espeak-ng voices are accepted for (BCP 47 primary tags).
const ESPEAK_LANGUAGES: &[&str] = &["en", "ru", "uk", "bg", "de", "fr", "es", "it", "pl", "kk"];

impl Synthesizer for Espeak {
    fn synthesize(&self, text: &str, language: &str) -> Result<Vec<i16>, TtsError> {
        let lang = language.split(['-', '_']).next().unwrap_or("en");
        if !ESPEAK_LANGUAGES.contains(&lang) {
            return Err(TtsError::NoVoice(language.into()));
        }
        let out = Command::new("espeak-ng")
            .args(["-v", lang, "-s", "165", "--stdout", "--"])
            .arg(text)
            .output()
            .map_err(|e| TtsError::Failed(format!("espeak-ng: {e}")))?;
        if !out.status.success() {
            return Err(TtsError::Failed(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        let reader = hound::WavReader::new(std::io::Cursor::new(out.stdout))
            .map_err(|e| TtsError::Failed(format!("espeak-ng output: {e}")))?;
        let rate = reader.spec().sample_rate;
        let samples: Vec<f32> = reader
            .into_samples::<i16>()
            .filter_map(Result::ok)
            .map(|s| s as f32 / 32768.0)
            .collect();
        let pcm = if rate == RATE {
            samples
        } else {
            resample(&samples, rate, RATE).map_err(TtsError::Failed)?
        };
        Ok(pcm
            .into_iter()
            .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
            .collect())
    }
}

/// Longest text accepted for one `say` item.
pub const MAX_TEXT: usize = 2000;
/// Cached sentences before the cache starts over.
const MAX_CACHED: usize = 2000;

/// A synthesizer with a shared cache.
pub struct Tts {
    engine: Box<dyn Synthesizer>,
    cache: Mutex<HashMap<(String, String), Arc<Prompt>>>,
}

impl Tts {
    pub fn new(engine: Box<dyn Synthesizer>) -> Tts {
        Tts {
            engine,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The text as a prompt (cached). Blocking: call from a blocking thread.
    pub fn say(&self, text: &str, language: &str) -> Result<Arc<Prompt>, TtsError> {
        if text.len() > MAX_TEXT {
            return Err(TtsError::Failed(format!(
                "text longer than {MAX_TEXT} bytes"
            )));
        }
        let key = (language.to_string(), text.to_string());
        if let Some(p) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let pcm = self.engine.synthesize(text, language)?;
        let prompt = Arc::new(Prompt::from_pcm("tts", pcm));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, prompt.clone());
        Ok(prompt)
    }
}
