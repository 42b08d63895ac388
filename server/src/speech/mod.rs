//! Speech: text-to-speech for prompts and dynamic text, and recognition
//! (engines behind one trait, an endpointer, and the per-call listener).

pub mod asr;
pub mod endpoint;
pub mod listen;
pub mod piper;
pub mod pocketsphinx;
pub mod tts;
pub mod vosk;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::SpeechConfig;
use asr::Recognizers;

/// Where python3 has a package installed (the speech wheels live there).
pub fn python_package_dir(package: &str) -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import os, {package}; print(os.path.dirname({package}.__file__))"),
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !dir.is_empty()).then(|| dir.into())
}

/// Loads the configured recognizers. One that cannot load is left out with a
/// warning: the node runs, and `collect-speech` in that language is
/// `unavailable`.
pub fn load_recognizers(cfg: &SpeechConfig, resolve: impl Fn(&Path) -> PathBuf) -> Recognizers {
    let mut out = Recognizers::with_permits(cfg.max_recognitions);
    for (language, spec) in &cfg.recognizers {
        let (kind, arg) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
        let engine: Result<Arc<dyn asr::Engine>, String> = match kind {
            "pocketsphinx" => {
                let model = if arg.is_empty() {
                    PathBuf::from(pocketsphinx::DEFAULT_MODEL)
                } else {
                    resolve(Path::new(arg))
                };
                pocketsphinx::PocketSphinx::new(&model, cfg.max_recognitions, 0)
                    .map(|e| {
                        let e = Arc::new(e);
                        prewarm(e.clone());
                        e as Arc<dyn asr::Engine>
                    })
                    .map_err(|e| e.to_string())
            }
            "vosk" if !arg.is_empty() => {
                let lib = cfg
                    .vosk_library
                    .as_ref()
                    .map(|p| resolve(p))
                    .or_else(|| python_package_dir("vosk").map(|d| d.join("libvosk.so")));
                match lib {
                    Some(lib) => vosk::Vosk::new(&lib, &resolve(Path::new(arg)))
                        .map(|e| Arc::new(e) as Arc<dyn asr::Engine>)
                        .map_err(|e| e.to_string()),
                    None => Err(
                        "libvosk.so not found (pip install vosk, or set speech.vosk_library)"
                            .into(),
                    ),
                }
            }
            _ => Err(format!(
                "unknown recognizer {spec:?} (pocketsphinx, pocketsphinx:<dir>, vosk:<dir>)"
            )),
        };
        match engine {
            Ok(e) => {
                tracing::info!("speech recognition for {language:?}: {}", e.name());
                out.insert(language, e);
            }
            Err(e) => tracing::warn!("no speech recognition for {language:?}: {e}"),
        }
    }
    out
}

/// Loads one decoder in the background so the first call does not wait.
fn prewarm(engine: Arc<dyn asr::Engine>) {
    let _ = std::thread::Builder::new()
        .name("asr-warm".into())
        .spawn(move || drop(engine.open(&[])));
}

/// Recognises a whole 8 kHz WAV file as free speech (voicemail transcripts).
pub fn transcribe_file(engine: &dyn asr::Engine, path: &Path) -> Result<String, asr::AsrError> {
    let mut wav = hound::WavReader::open(path)
        .map_err(|e| asr::AsrError::Failed(format!("{}: {e}", path.display())))?;
    let samples: Vec<i16> = wav.samples::<i16>().filter_map(Result::ok).collect();
    let mut u = engine.open(&[])?;
    for chunk in samples.chunks(crate::media::prompt::FRAME * 5) {
        u.accept(chunk)?;
    }
    Ok(u.finish()?.text)
}
