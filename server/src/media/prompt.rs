//! Prompts: WAV files decoded, resampled to 8 kHz and G.711-encoded once at load,
//! then shared by every call that plays them (no per-call decoding).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rubato::{FftFixedIn, Resampler};
use thiserror::Error;

use crate::codec::g711::G711;

/// Samples per second on G.711 legs.
pub const RATE: u32 = 8000;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

#[derive(Debug, Error)]
pub enum PromptError {
    #[error("cannot read {path}: {source}")]
    Wav { path: String, source: hound::Error },
    #[error("cannot resample {path}: {message}")]
    Resample { path: String, message: String },
    #[error("{path} holds no audio")]
    Empty { path: String },
}

/// One prompt, ready to send in either G.711 law.
#[derive(Debug)]
pub struct Prompt {
    pub id: String,
    /// 8 kHz mono linear samples.
    pub pcm: Vec<i16>,
    pub ulaw: Vec<u8>,
    pub alaw: Vec<u8>,
}

impl Prompt {
    pub fn from_pcm(id: &str, pcm: Vec<i16>) -> Prompt {
        let mut ulaw = vec![0; pcm.len()];
        let mut alaw = vec![0; pcm.len()];
        G711::Ulaw(0).encode(&pcm, &mut ulaw);
        G711::Alaw(8).encode(&pcm, &mut alaw);
        Prompt {
            id: id.to_string(),
            pcm,
            ulaw,
            alaw,
        }
    }

    /// Loads a WAV file of any rate and channel count.
    pub fn load(id: &str, path: &Path) -> Result<Prompt, PromptError> {
        let p = path.display().to_string();
        let wav_err = |source| PromptError::Wav {
            path: p.clone(),
            source,
        };
        let mut reader = hound::WavReader::open(path).map_err(wav_err)?;
        let spec = reader.spec();
        let channels = spec.channels.max(1) as usize;
        let samples: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(wav_err)?
            }
            hound::SampleFormat::Float => reader
                .samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(wav_err)?,
        };
        let mono: Vec<f32> = samples
            .chunks(channels)
            .map(|c| c.iter().sum::<f32>() / channels as f32)
            .collect();
        if mono.is_empty() {
            return Err(PromptError::Empty { path: p });
        }
        let mono = if spec.sample_rate == RATE {
            mono
        } else {
            resample(&mono, spec.sample_rate, RATE).map_err(|message| PromptError::Resample {
                path: p.clone(),
                message,
            })?
        };
        let pcm = mono
            .iter()
            .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
            .collect();
        Ok(Prompt::from_pcm(id, pcm))
    }

    /// The encoded audio for a leg's codec.
    pub fn encoded(&self, codec: G711) -> &[u8] {
        match codec {
            G711::Ulaw(_) => &self.ulaw,
            G711::Alaw(_) => &self.alaw,
        }
    }

    pub fn duration_ms(&self) -> u64 {
        self.pcm.len() as u64 * 1000 / RATE as u64
    }
}

/// Resamples a whole mono signal with rubato (used at load time only).
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let chunk = 1024;
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 2, 1)
        .map_err(|e| e.to_string())?;
    let delay = r.output_delay();
    let expected = (input.len() as u64 * to as u64 / from as u64) as usize;
    let mut out = Vec::with_capacity(expected + delay + chunk);
    let mut pos = 0;
    while pos + r.input_frames_next() <= input.len() {
        let n = r.input_frames_next();
        let res = r
            .process(&[&input[pos..pos + n]], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&res[0]);
        pos += n;
    }
    // Flush the tail and the filter delay.
    if pos < input.len() {
        let res = r
            .process_partial(Some(&[&input[pos..]]), None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&res[0]);
    }
    while out.len() < expected + delay {
        let res = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        if res[0].is_empty() {
            break;
        }
        out.extend_from_slice(&res[0]);
    }
    Ok(out.into_iter().skip(delay).take(expected).collect())
}

/// Prompt id -> loaded prompt, per language. Prompts can be replaced while
/// the node runs (an uploaded auto-responder message): a play takes the
/// prompt as it is then, a play already going keeps its own `Arc`.
#[derive(Debug, Default)]
pub struct PromptSet {
    prompts: std::sync::RwLock<HashMap<String, Arc<Prompt>>>,
}

impl PromptSet {
    pub fn insert(&self, prompt: Prompt) {
        let mut all = self.prompts.write().unwrap_or_else(|e| e.into_inner());
        all.insert(prompt.id.clone(), Arc::new(prompt));
    }

    pub fn remove(&self, id: &str) {
        let mut all = self.prompts.write().unwrap_or_else(|e| e.into_inner());
        all.remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Prompt>> {
        let all = self.prompts.read().unwrap_or_else(|e| e.into_inner());
        all.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.prompts.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every prompt id, sorted.
    pub fn ids(&self) -> Vec<String> {
        let all = self.prompts.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = all.keys().cloned().collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_resamples_a_22k_tone() {
        let dir = std::env::temp_dir().join(format!("hookline-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tone.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 22050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for n in 0..22050 {
            let v = (n as f64 * 2.0 * std::f64::consts::PI * 440.0 / 22050.0).sin() * 16000.0;
            w.write_sample(v as i16).unwrap();
        }
        w.finalize().unwrap();
        let p = Prompt::load("tone", &path).unwrap();
        assert!((p.pcm.len() as i64 - 8000).abs() < 10, "{}", p.pcm.len());
        // Still a 440 Hz tone: count zero crossings over one second.
        let crossings = p
            .pcm
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((870..=890).contains(&crossings), "{crossings}");
        let rms =
            (p.pcm.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / p.pcm.len() as f64).sqrt();
        assert!(rms > 10000.0, "{rms}");
        assert_eq!(p.ulaw.len(), p.pcm.len());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn garbage_file_is_an_error() {
        let path = std::env::temp_dir().join(format!("hookline-bad-{}.wav", std::process::id()));
        std::fs::write(&path, b"RIFF nonsense").unwrap();
        assert!(Prompt::load("x", &path).is_err());
        std::fs::remove_file(path).ok();
    }
}
