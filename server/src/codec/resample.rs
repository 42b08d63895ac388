//! Streaming sample-rate conversion (rubato) at a leg's rate boundary:
//! fixed 20 ms chunks in, allocation-free after construction.

use rubato::{FftFixedIn, Resampler};

use super::CodecError;

pub struct StreamResampler {
    inner: FftFixedIn<f32>,
    chunk: usize,
    pending: Vec<f32>,
    input: Vec<f32>,
    output: Vec<Vec<f32>>,
    out: Vec<i16>,
}

impl StreamResampler {
    /// A converter taking 20 ms chunks at `from` Hz.
    pub fn new(from: u32, to: u32) -> Result<StreamResampler, CodecError> {
        let chunk = from as usize / 50;
        let inner = FftFixedIn::new(from as usize, to as usize, chunk, 1, 1)
            .map_err(|e| CodecError::Resample(e.to_string()))?;
        let max_out = inner.output_frames_max();
        Ok(StreamResampler {
            inner,
            chunk,
            pending: Vec::with_capacity(8 * chunk),
            input: vec![0.0; chunk],
            output: vec![vec![0.0; max_out]],
            out: Vec::with_capacity(8 * max_out),
        })
    }

    /// Converts what can be converted; the rest waits for the next call.
    pub fn process(&mut self, pcm: &[i16]) -> &[i16] {
        self.out.clear();
        self.pending.extend(pcm.iter().map(|s| *s as f32 / 32768.0));
        let mut at = 0;
        while self.pending.len() - at >= self.chunk {
            self.input
                .copy_from_slice(&self.pending[at..at + self.chunk]);
            at += self.chunk;
            let Ok((_, n)) = self
                .inner
                .process_into_buffer(&[&self.input], &mut self.output, None)
            else {
                continue;
            };
            self.out.extend(
                self.output[0][..n]
                    .iter()
                    .map(|s| (s * 32768.0).clamp(-32768.0, 32767.0) as i16),
            );
        }
        self.pending.drain(..at);
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_the_rate_of_a_tone() {
        let mut up = StreamResampler::new(8000, 16000).unwrap();
        let tone: Vec<i16> = (0..8000)
            .map(|n| {
                ((n as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0) as i16
            })
            .collect();
        let mut out = Vec::new();
        for c in tone.chunks(100) {
            out.extend_from_slice(up.process(c));
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

    #[test]
    fn whole_frames_give_whole_frames() {
        let mut down = StreamResampler::new(16000, 8000).unwrap();
        for _ in 0..10 {
            assert_eq!(down.process(&[100; 320]).len(), 160);
        }
    }
}
