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

/// Sample rates a prompt may have (telephone to studio).
pub const MIN_WAV_RATE: u32 = 8000;
pub const MAX_WAV_RATE: u32 = 48000;
/// Longest prompt decoded (at 48 kHz, 115 MiB of mono samples at most).
pub const MAX_PROMPT_SECONDS: u32 = 600;

#[derive(Debug, Error)]
pub enum PromptError {
    #[error("cannot read {path}: {source}")]
    Wav { path: String, source: hound::Error },
    #[error("cannot resample {path}: {message}")]
    Resample { path: String, message: String },
    #[error("{path} holds no audio")]
    Empty { path: String },
    #[error("{path}: {message}")]
    Unsupported { path: String, message: String },
}

impl PromptError {
    /// What is wrong, without naming a file (for replies to a client).
    pub fn reason(&self) -> String {
        match self {
            PromptError::Wav { source, .. } => source.to_string(),
            PromptError::Resample { message, .. } | PromptError::Unsupported { message, .. } => {
                message.clone()
            }
            PromptError::Empty { .. } => "no audio".into(),
        }
    }

    /// The same error, naming the file it came from.
    fn at(self, p: &str) -> PromptError {
        match self {
            PromptError::Wav { source, .. } => PromptError::Wav {
                path: p.into(),
                source,
            },
            PromptError::Resample { message, .. } => PromptError::Resample {
                path: p.into(),
                message,
            },
            PromptError::Empty { .. } => PromptError::Empty { path: p.into() },
            PromptError::Unsupported { message, .. } => PromptError::Unsupported {
                path: p.into(),
                message,
            },
        }
    }
}

/// Refuses a WAV whose header asks for more than a prompt can be: the
/// decoder's allocations follow from these numbers, so they are checked
/// before a sample is read.
pub fn check_spec(spec: &hound::WavSpec, frames: u32) -> Result<(), PromptError> {
    let bad = |message: String| PromptError::Unsupported {
        path: "WAV".into(),
        message,
    };
    if !(MIN_WAV_RATE..=MAX_WAV_RATE).contains(&spec.sample_rate) {
        return Err(bad(format!(
            "sample rate {} Hz (must be {MIN_WAV_RATE}-{MAX_WAV_RATE})",
            spec.sample_rate
        )));
    }
    if !(1..=2).contains(&spec.channels) {
        return Err(bad(format!(
            "{} channels (mono or stereo only)",
            spec.channels
        )));
    }
    let bits_ok = match spec.sample_format {
        hound::SampleFormat::Int => matches!(spec.bits_per_sample, 8 | 16 | 24 | 32),
        hound::SampleFormat::Float => spec.bits_per_sample == 32,
    };
    if !bits_ok {
        return Err(bad(format!("{}-bit samples", spec.bits_per_sample)));
    }
    if frames as u64 > MAX_PROMPT_SECONDS as u64 * spec.sample_rate as u64 {
        return Err(bad(format!("longer than {MAX_PROMPT_SECONDS} s")));
    }
    Ok(())
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
        let file = std::fs::File::open(path).map_err(|e| PromptError::Wav {
            path: p.clone(),
            source: hound::Error::IoError(e),
        })?;
        Prompt::decode(id, std::io::BufReader::new(file)).map_err(|e| e.at(&p))
    }

    /// Decodes a WAV from any reader (an upload, a file) in bounded memory:
    /// the header is checked first (rate, channels, sample size, duration),
    /// so a file that claims 1 Hz or ten hours is refused before anything
    /// is allocated for it, and samples are mixed to mono as they are read.
    pub fn decode(id: &str, input: impl std::io::Read) -> Result<Prompt, PromptError> {
        let wav_err = |source| PromptError::Wav {
            path: String::new(),
            source,
        };
        let mut reader = hound::WavReader::new(input).map_err(wav_err)?;
        let spec = reader.spec();
        check_spec(&spec, reader.duration())?;
        let channels = spec.channels as usize;
        // The header's length is a claim: reserve no more than a minute ahead of the data.
        let mut mono: Vec<f32> = Vec::with_capacity((reader.duration() as usize).min(60 * 48_000));
        let mut acc = 0.0f32;
        let mut n = 0usize;
        let mut push = |v: f32| {
            acc += v;
            n += 1;
            if n == channels {
                mono.push(acc / channels as f32);
                acc = 0.0;
                n = 0;
            }
        };
        match spec.sample_format {
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                for s in reader.samples::<i32>() {
                    push(s.map_err(wav_err)? as f32 * scale);
                }
            }
            hound::SampleFormat::Float => {
                for s in reader.samples::<f32>() {
                    let v = s.map_err(wav_err)?;
                    push(if v.is_finite() { v } else { 0.0 });
                }
            }
        }
        if mono.is_empty() {
            return Err(PromptError::Empty {
                path: String::new(),
            });
        }
        let mono = if spec.sample_rate == RATE {
            mono
        } else {
            resample(&mono, spec.sample_rate, RATE).map_err(|message| PromptError::Resample {
                path: String::new(),
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

    /// A WAV header (44 bytes) claiming `rate`, `channels`, 16-bit and
    /// `data_len` bytes of samples, followed by `body`.
    fn crafted(rate: u32, channels: u16, data_len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
        v.extend_from_slice(&(channels * 2).to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_header_claiming_1_hz_is_refused_before_decoding() {
        // The finding: 1 Hz made the resampler ask for ~64 GB and abort the node.
        let wav = crafted(1, 1, 1000, &[0u8; 1000]);
        let e = Prompt::decode("x", std::io::Cursor::new(wav)).unwrap_err();
        assert!(e.reason().contains("sample rate 1 Hz"), "{e}");
        for (rate, ch) in [
            (7999, 1),
            (48001, 1),
            (8000, 0),
            (8000, 3),
            (u32::MAX / 4, 2),
        ] {
            let wav = crafted(rate, ch, 320, &[0u8; 320]);
            assert!(
                Prompt::decode("x", std::io::Cursor::new(wav)).is_err(),
                "{rate} {ch}"
            );
        }
    }

    #[test]
    fn a_header_claiming_hours_is_refused_and_a_short_body_costs_little() {
        // Claims 4 GB of samples (hours at 8 kHz): refused by duration.
        let wav = crafted(8000, 1, (u32::MAX - 64) & !1, &[0u8; 64]);
        let e = Prompt::decode("x", std::io::Cursor::new(wav)).unwrap_err();
        assert!(e.reason().contains("longer than"), "{e}");
        // Claims 5 minutes, carries 40 ms: a read error, nothing near 5 minutes held.
        let wav = crafted(8000, 1, 8000 * 2 * 300, &[0u8; 640]);
        assert!(Prompt::decode("x", std::io::Cursor::new(wav)).is_err());
    }

    #[test]
    fn a_stereo_48k_wav_decodes_to_8k_mono() {
        let frames = 48_000 / 10; // 100 ms
        let mut body = Vec::new();
        for n in 0..frames {
            let v =
                ((n as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 48_000.0).sin() * 8000.0) as i16;
            body.extend_from_slice(&v.to_le_bytes());
            body.extend_from_slice(&v.to_le_bytes());
        }
        let wav = crafted(48_000, 2, body.len() as u32, &body);
        let p = Prompt::decode("x", std::io::Cursor::new(wav)).unwrap();
        assert!((p.pcm.len() as i64 - 800).abs() < 10, "{}", p.pcm.len());
    }

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
