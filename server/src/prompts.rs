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

/// Where prompts uploaded over the API live (`PUT /api/prompts/{lang}/{id}`):
/// in the node's data, not in the deployed configuration.
pub fn uploaded_path(data_dir: &Path, lang: &str, id: &str) -> PathBuf {
    data_dir
        .join("uploaded")
        .join(lang)
        .join(format!("{id}.wav"))
}

/// The ids uploaded in a language (one directory read).
pub fn uploaded_ids(data_dir: &Path, lang: &str) -> Vec<String> {
    wav_ids(&data_dir.join("uploaded").join(lang))
}

/// A prompt id an upload may take: it names a file.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The ids of the `.wav` files in `dir` (none when it does not exist).
fn wav_ids(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".wav")?;
            valid_id(id).then(|| id.to_string())
        })
        .collect()
}

/// Where a language's prompt comes from: an upload first, then a recorded
/// override, then the rendered cache (None when there is none).
pub fn prompt_path(data_dir: &Path, recorded: &Path, lang: &str, id: &str) -> Option<PathBuf> {
    [
        uploaded_path(data_dir, lang, id),
        recorded.join(lang).join(format!("{id}.wav")),
        cache_path(data_dir, lang, id),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// Loads a language's prompts: the catalog's, and any uploaded or recorded
/// ones beyond it (an auto-responder message), each from `prompt_path`.
pub fn load_set(
    catalog: &Catalog,
    data_dir: &Path,
    recorded: &Path,
    lang: &str,
) -> Result<PromptSet, CatalogError> {
    let set = PromptSet::default();
    let mut ids: Vec<String> = catalog.prompts.keys().cloned().collect();
    ids.extend(wav_ids(&recorded.join(lang)));
    ids.extend(uploaded_ids(data_dir, lang));
    ids.sort();
    ids.dedup();
    for id in ids {
        if let Some(path) = prompt_path(data_dir, recorded, lang, &id) {
            set.insert(Prompt::load(&id, &path)?);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_wins_over_a_recording_which_wins_over_the_rendered_prompt() {
        let dir = std::env::temp_dir().join(format!("hookline-prompt-path-{}", std::process::id()));
        let (data, recorded) = (dir.join("data"), dir.join("recorded"));
        let rendered = cache_path(&data, "en", "welcome");
        let record = recorded.join("en").join("welcome.wav");
        let upload = uploaded_path(&data, "en", "welcome");
        assert_eq!(prompt_path(&data, &recorded, "en", "welcome"), None);
        for (file, expected) in [
            (&rendered, &rendered),
            (&record, &record),
            (&upload, &upload),
        ] {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, b"").unwrap();
            assert_eq!(
                prompt_path(&data, &recorded, "en", "welcome").as_ref(),
                Some(expected)
            );
        }
        // Another language's files are not this one's.
        assert_eq!(prompt_path(&data, &recorded, "ru", "welcome"), None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn upload_ids_name_a_file_and_nothing_else() {
        for ok in ["away_message", "holiday-2026", "a"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "../etc", "Away", "a.wav", "a/b", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
