//! The prompt catalog: ids and texts per language, rendered to WAV with
//! espeak-ng into the data directory (a cache, never committed), with recorded
//! WAV overrides taking precedence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::media::prompt::{Prompt, PromptSet};

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("cannot read prompt catalog {path}: {message}")]
    Read { path: String, message: String },
    #[error("speech synthesis failed for prompt {id} ({lang}): {message}")]
    Synth {
        id: String,
        lang: String,
        message: String,
    },
    #[error(transparent)]
    Prompt(#[from] crate::media::prompt::PromptError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// prompt id -> language -> text.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub prompts: BTreeMap<String, BTreeMap<String, String>>,
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let read_err = |message: String| CatalogError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
        let prompts = toml::from_str(&text).map_err(|e| read_err(e.to_string()))?;
        Ok(Catalog { prompts })
    }
}

/// Where a prompt's rendered audio is cached.
pub fn cache_path(data_dir: &Path, lang: &str, id: &str) -> PathBuf {
    data_dir
        .join("prompts")
        .join(lang)
        .join(format!("{id}.wav"))
}

/// Renders every catalog text of `lang` that is missing or changed. Returns how many were rendered.
pub fn render(
    catalog: &Catalog,
    data_dir: &Path,
    lang: &str,
    voices: &crate::speech::tts::Voices,
) -> Result<usize, CatalogError> {
    use crate::speech::tts::Synthesizer;
    // The stamp names the voice too: installing Piper re-renders English.
    let voice = voices.voice_name(lang);
    let mut rendered = 0;
    for (id, texts) in &catalog.prompts {
        let Some(text) = texts.get(lang) else {
            continue;
        };
        let wav = cache_path(data_dir, lang, id);
        let stamp = wav.with_extension("txt");
        let stamped = format!("{voice}\n{text}");
        if wav.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamped.as_str())
        {
            continue;
        }
        let dir = wav.parent().unwrap_or(data_dir);
        std::fs::create_dir_all(dir).map_err(|source| CatalogError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let synth_err = |message: String| CatalogError::Synth {
            id: id.clone(),
            lang: lang.to_string(),
            message,
        };
        let pcm = voices
            .synthesize(text, lang)
            .map_err(|e| synth_err(e.to_string()))?;
        write_wav(&wav, &pcm).map_err(|e| synth_err(format!("{}: {e}", wav.display())))?;
        std::fs::write(&stamp, stamped).map_err(|source| CatalogError::Io {
            path: stamp.display().to_string(),
            source,
        })?;
        rendered += 1;
    }
    Ok(rendered)
}

fn write_wav(path: &Path, pcm: &[i16]) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: crate::media::prompt::RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for s in pcm {
        w.write_sample(*s)?;
    }
    w.finalize()
}

/// Loads a language's prompts: recorded overrides first, then the rendered cache.
pub fn load_set(
    catalog: &Catalog,
    data_dir: &Path,
    recorded: &Path,
    lang: &str,
) -> Result<PromptSet, CatalogError> {
    let mut set = PromptSet::default();
    for id in catalog.prompts.keys() {
        let over = recorded.join(lang).join(format!("{id}.wav"));
        let path = if over.exists() {
            over
        } else {
            cache_path(data_dir, lang, id)
        };
        if path.exists() {
            set.insert(Prompt::load(id, &path)?);
        }
    }
    Ok(set)
}
