//! Streaming 8 kHz -> 16 kHz for engines whose models are wideband.

use rubato::{FftFixedIn, Resampler};

/// One 20 ms frame at 8 kHz.
const CHUNK: usize = 160;

pub struct Upsampler {
    inner: FftFixedIn<f32>,
    pending: Vec<f32>,
    out: Vec<i16>,
}

impl Upsampler {
    pub fn new() -> Result<Upsampler, String> {
        Ok(Upsampler {
            inner: FftFixedIn::new(8000, 16000, CHUNK, 1, 1).map_err(|e| e.to_string())?,
            pending: Vec::with_capacity(2 * CHUNK),
            out: Vec::with_capacity(4 * CHUNK),
        })
    }

    /// Converts what can be converted; the rest waits for the next call.
    pub fn push(&mut self, pcm: &[i16]) -> Result<&[i16], String> {
        self.out.clear();
        self.pending.extend(pcm.iter().map(|s| *s as f32 / 32768.0));
        let mut at = 0;
        while self.pending.len() - at >= CHUNK {
            let res = self
                .inner
                .process(&[&self.pending[at..at + CHUNK]], None)
                .map_err(|e| e.to_string())?;
            self.out.extend(
                res[0]
                    .iter()
                    .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16),
            );
            at += CHUNK;
        }
        self.pending.drain(..at);
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_the_rate_of_a_tone() {
        let mut up = Upsampler::new().unwrap();
        let tone: Vec<i16> = (0..8000)
            .map(|n| {
                ((n as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0) as i16
            })
            .collect();
        let mut out = Vec::new();
        for c in tone.chunks(100) {
            out.extend_from_slice(up.push(c).unwrap());
        }
        assert!((15_500..=16_000).contains(&out.len()), "{}", out.len());
        // Same tone: zero crossings per second double in samples, not in time.
        let crossings = out[2000..]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count() as f64
            / ((out.len() - 2000) as f64 / 16000.0);
        assert!((860.0..=900.0).contains(&crossings), "{crossings}");
    }
}
