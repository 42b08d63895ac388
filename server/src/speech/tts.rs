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
    /// Hands audio to `sink` as it is made (engines that can, a sentence at
    /// a time; others all at once).
    fn synthesize_stream(
        &self,
        text: &str,
        language: &str,
        sink: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), TtsError>;

    /// Names the voice in render stamps and logs.
    fn name(&self) -> &'static str;

    /// The whole text's audio.
    fn synthesize(&self, text: &str, language: &str) -> Result<Vec<i16>, TtsError> {
        let mut all = Vec::new();
        self.synthesize_stream(text, language, &mut |c| all.extend(c))?;
        Ok(all)
    }
}

/// Engine audio (f32 at `rate`) as the node's 8 kHz 16-bit PCM.
pub fn to_node_rate(samples: Vec<f32>, rate: u32) -> Result<Vec<i16>, TtsError> {
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

/// Piper where a language has a voice, espeak-ng otherwise (and when Piper fails).
pub struct Voices {
    pub piper: HashMap<String, super::piper::Piper>,
    pub espeak: Espeak,
}

impl Voices {
    fn piper_for(&self, language: &str) -> Option<&super::piper::Piper> {
        self.piper
            .get(language.split(['-', '_']).next().unwrap_or_default())
    }

    /// The voice used for a language.
    pub fn voice_name(&self, language: &str) -> &'static str {
        match self.piper_for(language) {
            Some(p) => p.name(),
            None => self.espeak.name(),
        }
    }
}

impl Synthesizer for Voices {
    fn synthesize_stream(
        &self,
        text: &str,
        language: &str,
        sink: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), TtsError> {
        if let Some(p) = self.piper_for(language) {
            let mut sent = false;
            match p.synthesize_stream(text, language, &mut |c| {
                sent = true;
                sink(c)
            }) {
                Ok(()) => return Ok(()),
                // Half a sentence already played: do not start over in another voice.
                Err(e) if sent => return Err(e),
                Err(e) => tracing::warn!("{e}; falling back to espeak-ng"),
            }
        }
        self.espeak.synthesize_stream(text, language, sink)
    }

    fn name(&self) -> &'static str {
        "voices"
    }
}

/// espeak-ng (Debian package), offline, every language the node needs.
pub struct Espeak;

/// Languages espeak-ng voices are accepted for (BCP 47 primary tags).
const ESPEAK_LANGUAGES: &[&str] = &[
    "en", "ru", "uk", "bg", "de", "fr", "es", "it", "pl", "kk", "ko",
];

impl Synthesizer for Espeak {
    fn name(&self) -> &'static str {
        "espeak-ng"
    }

    fn synthesize_stream(
        &self,
        text: &str,
        language: &str,
        sink: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), TtsError> {
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
        let (rate, samples) = streamed_wav(&out.stdout)
            .ok_or_else(|| TtsError::Failed("espeak-ng wrote no WAV audio".into()))?;
        // At RTF ≈ 0.002 a whole text is ready before a stream would help.
        sink(to_node_rate(samples, rate)?);
        Ok(())
    }
}

/// A WAV written to a pipe: its header cannot know the length (espeak-ng puts
/// 0x7fffffff there), so the samples are whatever follows the `data` tag.
pub(crate) fn streamed_wav(bytes: &[u8]) -> Option<(u32, Vec<f32>)> {
    if bytes.len() < 44 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let rate = u32::from_le_bytes(bytes[24..28].try_into().ok()?);
    let bits = u16::from_le_bytes(bytes[34..36].try_into().ok()?);
    let at = bytes.windows(4).position(|w| w == b"data")? + 8;
    if bits != 16 || rate == 0 || at > bytes.len() {
        return None;
    }
    let samples = bytes[at..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
        .collect();
    Some((rate, samples))
}

/// Longest text accepted for one `say` item.
pub const MAX_TEXT: usize = 2000;
/// Bytes of synthesised audio the cache keeps (all calls, all plugins):
/// least recently used texts go first. A cached second of speech costs
/// 32 KB (linear, µ-law and A-law forms), so 64 MiB is about 35 minutes.
pub const CACHE_BYTES: usize = 64 << 20;

/// Texts by recent use, bounded by the bytes of their audio.
struct Cache {
    map: hashlink::LinkedHashMap<(String, String), Arc<Prompt>>,
    bytes: usize,
    limit: usize,
}

/// What a cached prompt holds in memory.
fn prompt_bytes(p: &Prompt) -> usize {
    p.pcm.len() * 2 + p.ulaw.len() + p.alaw.len() + p.id.len() + 64
}

impl Cache {
    fn get(&mut self, key: &(String, String)) -> Option<Arc<Prompt>> {
        self.map.to_back(key).cloned()
    }

    fn insert(&mut self, key: (String, String), p: Arc<Prompt>) {
        let size = prompt_bytes(&p) + key.0.len() + key.1.len();
        if size > self.limit {
            return; // larger than the whole cache: played, not kept
        }
        if let Some(old) = self.map.insert(key.clone(), p) {
            self.bytes -= prompt_bytes(&old) + key.0.len() + key.1.len();
        }
        self.bytes += size;
        while self.bytes > self.limit {
            let Some(((lang, text), old)) = self.map.pop_front() else {
                break;
            };
            self.bytes -= prompt_bytes(&old) + lang.len() + text.len();
        }
    }
}

/// A synthesizer with a shared cache.
pub struct Tts {
    engine: Arc<dyn Synthesizer>,
    cache: Mutex<Cache>,
}

impl Tts {
    pub fn new(engine: Arc<dyn Synthesizer>) -> Tts {
        Tts::with_cache_bytes(engine, CACHE_BYTES)
    }

    pub fn with_cache_bytes(engine: Arc<dyn Synthesizer>, limit: usize) -> Tts {
        Tts {
            engine,
            cache: Mutex::new(Cache {
                map: Default::default(),
                bytes: 0,
                limit,
            }),
        }
    }

    /// Bytes of audio cached now (what the bound limits).
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// The text as a prompt (cached). Blocking: call from a blocking thread.
    pub fn say(&self, text: &str, language: &str) -> Result<Arc<Prompt>, TtsError> {
        self.produce(text, language, &mut |_| {})
    }

    /// The cached prompt for this text, if it was said before.
    pub fn cached(&self, text: &str, language: &str) -> Option<Arc<Prompt>> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(language.to_string(), text.to_string()))
    }

    /// Says the text, handing each piece to `piece` as soon as it is made
    /// (the first sentence plays while the rest is synthesised); returns
    /// the whole, now cached. Blocking.
    pub fn say_stream(
        &self,
        text: &str,
        language: &str,
        piece: &mut dyn FnMut(Arc<Prompt>),
    ) -> Result<Arc<Prompt>, TtsError> {
        let mut streamed = false;
        let whole = self.produce(text, language, &mut |chunk| {
            streamed = true;
            piece(Arc::new(Prompt::from_pcm("tts", chunk.to_vec())));
        })?;
        if !streamed {
            piece(whole.clone()); // it was cached
        }
        Ok(whole)
    }

    /// The cached prompt, or synthesis with each chunk shown to `chunk`
    /// (not called for a cached text).
    fn produce(
        &self,
        text: &str,
        language: &str,
        chunk: &mut dyn FnMut(&[i16]),
    ) -> Result<Arc<Prompt>, TtsError> {
        if text.len() > MAX_TEXT {
            return Err(TtsError::Failed(format!(
                "text longer than {MAX_TEXT} bytes"
            )));
        }
        if let Some(p) = self.cached(text, language) {
            return Ok(p);
        }
        let mut pcm = Vec::new();
        self.engine.synthesize_stream(text, language, &mut |c| {
            chunk(&c);
            pcm.extend(c);
        })?;
        let key = (language.to_string(), text.to_string());
        let prompt = Arc::new(Prompt::from_pcm("tts", pcm));
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, prompt.clone());
        Ok(prompt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One second of audio per character: a synthesiser that costs nothing.
    struct Counting;
    impl Synthesizer for Counting {
        fn synthesize_stream(
            &self,
            text: &str,
            _: &str,
            sink: &mut dyn FnMut(Vec<i16>),
        ) -> Result<(), TtsError> {
            sink(vec![1; 8000 * text.len()]);
            Ok(())
        }
        fn name(&self) -> &'static str {
            "counting"
        }
    }

    #[test]
    fn the_cache_is_bounded_by_bytes_and_forgets_the_least_recently_used() {
        // Room for about three one-second texts (32 KB each).
        let tts = Tts::with_cache_bytes(Arc::new(Counting), 100_000);
        let a = tts.say("a", "en").unwrap();
        tts.say("b", "en").unwrap();
        tts.say("c", "en").unwrap();
        assert!(tts.cached("a", "en").is_some()); // a used again: b is oldest now
        tts.say("d", "en").unwrap();
        assert!(tts.cached_bytes() <= 100_000, "{}", tts.cached_bytes());
        assert!(tts.cached("b", "en").is_none());
        assert!(Arc::ptr_eq(&tts.cached("a", "en").unwrap(), &a));
        // Many distinct texts never grow it past its bound.
        for i in 0..500 {
            tts.say(&format!("{i:03}"), "en").unwrap();
            assert!(tts.cached_bytes() <= 100_000);
        }
        // A text larger than the cache plays but is not kept.
        tts.say(&"x".repeat(10), "en").unwrap();
        assert!(tts.cached(&"x".repeat(10), "en").is_none());
    }

    #[test]
    fn espeak_says_a_sentence_at_8khz_and_caches_it() {
        let tts = Tts::new(Arc::new(Espeak));
        let a = tts.say("Leave a message after the tone.", "en").unwrap();
        assert!(a.pcm.len() > 8000, "{} samples", a.pcm.len());
        let b = tts.say("Leave a message after the tone.", "en").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(matches!(tts.say("x", "xx"), Err(TtsError::NoVoice(_))));
    }
}
