//! The prompt catalog: ids and texts per language, rendered to WAV with
//! espeak-ng into the data directory (a cache, never committed), with recorded
//! WAV overrides taking precedence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::media::prompt::{Prompt, PromptSet};

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("cannot read prompt catalog {path}: {message}")]
    Read { path: String, message: String },
    #[error("espeak-ng failed for prompt {id} ({lang}): {message}")]
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
pub fn render(catalog: &Catalog, data_dir: &Path, lang: &str) -> Result<usize, CatalogError> {
    let mut rendered = 0;
    for (id, texts) in &catalog.prompts {
        let Some(text) = texts.get(lang) else {
            continue;
        };
        let wav = cache_path(data_dir, lang, id);
        let stamp = wav.with_extension("txt");
        if wav.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(text.as_str()) {
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
        let out = Command::new("espeak-ng")
            .args(["-v", lang, "-s", "165", "-w"])
            .arg(&wav)
            .arg("--")
            .arg(text)
            .output()
            .map_err(|e| synth_err(format!("{e} (install espeak-ng)")))?;
        if !out.status.success() {
            return Err(synth_err(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        std::fs::write(&stamp, text).map_err(|source| CatalogError::Io {
            path: stamp.display().to_string(),
            source,
        })?;
        rendered += 1;
    }
    Ok(rendered)
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
