//! Generated audio: tones, silence and DTMF keys as 8 kHz linear samples.

use super::prompt::RATE;

/// Peak amplitude of a single tone (about -10 dBm0); a dual tone splits it.
const LEVEL: f64 = 9000.0;

/// `ms` of a tone of one or two frequencies.
pub fn tone(frequencies: &[u32], ms: u32) -> Vec<i16> {
    let n = (ms as usize) * RATE as usize / 1000;
    let amp = LEVEL / frequencies.len().max(1) as f64;
    let step: Vec<f64> = frequencies
        .iter()
        .map(|f| 2.0 * std::f64::consts::PI * *f as f64 / RATE as f64)
        .collect();
    (0..n)
        .map(|i| {
            let v: f64 = step.iter().map(|s| (s * i as f64).sin()).sum();
            (v * amp) as i16
        })
        .collect()
}

pub fn silence(ms: u32) -> Vec<i16> {
    vec![0; (ms as usize) * RATE as usize / 1000]
}

/// The row and column frequencies of a DTMF key.
pub fn dtmf_frequencies(key: char) -> Option<[u32; 2]> {
    const ROWS: [u32; 4] = [697, 770, 852, 941];
    const COLS: [u32; 4] = [1209, 1336, 1477, 1633];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let key = key.to_ascii_uppercase();
    let r = KEYS.iter().position(|k| k.contains(key))?;
    let c = KEYS[r].find(key)?;
    Some([ROWS[r], COLS[c]])
}

/// DTMF digits as audio: 100 ms per key, 60 ms gaps, "," = 500 ms pause.
/// `None` if a character is not a key.
pub fn dtmf(digits: &str) -> Option<Vec<i16>> {
    let mut out = Vec::new();
    for k in digits.chars() {
        if k == ',' {
            out.extend(silence(500));
            continue;
        }
        out.extend(tone(&dtmf_frequencies(k)?, 100));
        out.extend(silence(60));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf_detect::DtmfDetector;

    #[test]
    fn generated_keys_are_detected_back() {
        let audio = dtmf("15#*0D").unwrap();
        let mut det = DtmfDetector::default();
        let mut got = String::new();
        for frame in audio.chunks(160) {
            det.feed(frame, |k| got.push(k));
        }
        assert_eq!(got, "15#*0D");
        assert!(dtmf("1x").is_none());
    }

    #[test]
    fn lengths_follow_the_durations() {
        assert_eq!(tone(&[440], 250).len(), 2000);
        assert_eq!(silence(20).len(), 160);
        assert_eq!(dtmf("1,2").unwrap().len(), (160 + 500 + 160) * 8);
    }
}
