//! In-band DTMF detection (Goertzel) for peers that send key tones as audio.
//!
//! Blocks of 205 samples at 8 kHz (25.6 ms, the classic size whose bins sit
//! close to the DTMF frequencies). A key is reported when the same row/column
//! pair dominates two blocks in a row, and again only after the tone stops, so
//! a long press is one key. Speech rarely passes: both tones must carry most of
//! the block's energy, within 8 dB of each other, with rival tones well below.

const N: usize = 205;
const RATE: f32 = 8000.0;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// The two tones together must hold this share of the block's energy.
const TONE_SHARE: f32 = 0.6;
/// ±8 dB between the tones (standard twist allowance).
const MAX_TWIST: f32 = 6.3;
/// A rival tone in the same group must be this much weaker (8 dB).
const RIVAL: f32 = 6.3;
/// Mean sample power below this is silence (about -45 dBm0).
const MIN_POWER: f32 = 4000.0;

fn coeff(f: f32) -> f32 {
    2.0 * (2.0 * std::f32::consts::PI * f / RATE).cos()
}

/// Detects keys in a stream of 8 kHz samples.
#[derive(Debug)]
pub struct DtmfDetector {
    coeffs: [f32; 8],
    block: [f32; N],
    fill: usize,
    /// Candidate of the previous block.
    last: Option<char>,
    /// Key already reported for the tone still sounding.
    reported: Option<char>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        let mut coeffs = [0.0; 8];
        for (i, f) in ROWS.iter().chain(COLS.iter()).enumerate() {
            coeffs[i] = coeff(*f);
        }
        DtmfDetector {
            coeffs,
            block: [0.0; N],
            fill: 0,
            last: None,
            reported: None,
        }
    }
}

impl DtmfDetector {
    /// Feeds samples; calls `on_key` for each key detected.
    pub fn feed(&mut self, samples: &[i16], mut on_key: impl FnMut(char)) {
        for s in samples {
            self.block[self.fill] = *s as f32;
            self.fill += 1;
            if self.fill == N {
                self.fill = 0;
                let candidate = self.classify();
                if candidate.is_some() && candidate == self.last && self.reported != candidate {
                    self.reported = candidate;
                    if let Some(k) = candidate {
                        on_key(k);
                    }
                }
                if candidate.is_none() {
                    self.reported = None;
                }
                self.last = candidate;
            }
        }
    }

    fn classify(&self) -> Option<char> {
        let energy: f32 = self.block.iter().map(|x| x * x).sum();
        if energy / (N as f32) < MIN_POWER {
            return None;
        }
        let mut power = [0.0f32; 8];
        for (p, c) in power.iter_mut().zip(self.coeffs) {
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for x in &self.block {
                let s0 = x + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            *p = s1 * s1 + s2 * s2 - c * s1 * s2;
        }
        let best = |g: &[f32]| -> (usize, f32, f32) {
            let mut idx = 0;
            for i in 1..4 {
                if g[i] > g[idx] {
                    idx = i;
                }
            }
            let rival = (0..4)
                .filter(|i| *i != idx)
                .map(|i| g[i])
                .fold(0.0, f32::max);
            (idx, g[idx], rival)
        };
        let (r, rp, rr) = best(&power[..4]);
        let (c, cp, cr) = best(&power[4..]);
        // A pure tone of amplitude A gives power (A·N/2)², and the block energy N·A²/2.
        let share = (rp + cp) / (energy * N as f32 / 2.0);
        let twist_ok = rp < cp * MAX_TWIST && cp < rp * MAX_TWIST;
        let clean = rp > rr * RIVAL && cp > cr * RIVAL;
        (share > TONE_SHARE && twist_ok && clean).then_some(KEYS[r][c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(key: char, ms: usize, amp: f32, noise: f32, seed: &mut u32) -> Vec<i16> {
        let (r, c) = (0..16)
            .map(|i| (i / 4, i % 4))
            .find(|(r, c)| KEYS[*r][*c] == key)
            .unwrap();
        (0..ms * 8)
            .map(|n| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 17;
                *seed ^= *seed << 5;
                let t = n as f32 / RATE;
                let v = amp
                    * ((2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
                        + (2.0 * std::f32::consts::PI * COLS[c] * t).sin())
                    + noise * ((*seed % 2000) as f32 / 1000.0 - 1.0);
                v as i16
            })
            .collect()
    }

    fn detect(samples: &[i16]) -> String {
        let mut d = DtmfDetector::default();
        let mut keys = String::new();
        // Feed in 20 ms packets, as a leg would.
        for chunk in samples.chunks(160) {
            d.feed(chunk, |k| keys.push(k));
        }
        keys
    }

    #[test]
    fn every_key_with_noise_once_per_press() {
        let mut seed = 7;
        let mut audio = Vec::new();
        let all = "123A456B789C*0#D";
        for k in all.chars() {
            audio.extend(tone(k, 100, 6000.0, 300.0, &mut seed));
            audio.extend(vec![0i16; 8 * 60]);
        }
        assert_eq!(detect(&audio), all);
        // A long press is still one key; the same key twice with a gap is two.
        let mut audio = tone('5', 600, 6000.0, 0.0, &mut seed);
        audio.extend(vec![0i16; 8 * 80]);
        audio.extend(tone('5', 80, 6000.0, 0.0, &mut seed));
        assert_eq!(detect(&audio), "55");
    }

    #[test]
    fn speech_like_audio_and_blips_are_not_keys() {
        // Voiced speech stand-in: a 140 Hz glottal pulse train through two formants.
        let voice: Vec<i16> = (0..8000 * 3)
            .map(|n| {
                let t = n as f32 / RATE;
                let f0 = 140.0 + 30.0 * (t * 3.0).sin();
                let mut v = 0.0;
                for h in 1..25 {
                    let f = f0 * h as f32;
                    let formant = (-((f - 700.0) / 300.0).powi(2)).exp()
                        + 0.6 * (-((f - 1300.0) / 350.0).powi(2)).exp();
                    v += formant * (2.0 * std::f32::consts::PI * f * t).sin();
                }
                (v * 4000.0) as i16
            })
            .collect();
        assert_eq!(detect(&voice), "");
        // 20 ms of tone is too short to be a key press.
        let mut seed = 3;
        assert_eq!(detect(&tone('1', 20, 6000.0, 0.0, &mut seed)), "");
        // Quiet tones below the floor are ignored.
        assert_eq!(detect(&tone('1', 200, 30.0, 0.0, &mut seed)), "");
    }
}
