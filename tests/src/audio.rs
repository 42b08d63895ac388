//! Audio the tests make and judge: WAV files, tones, DTMF, and how much of a tone a window holds.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::*;

/// Duration of a WAV file in milliseconds (read from its header, no decoding).
pub fn wav_duration_ms(path: &Path) -> Result<u64> {
    let bytes = std::fs::read(path)?;
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
    let fmt = find(b"fmt ").context("WAV fmt chunk")?;
    let channels = u16::from_le_bytes([bytes[fmt + 10], bytes[fmt + 11]]) as u64;
    let rate = u32::from_le_bytes(bytes[fmt + 12..fmt + 16].try_into()?) as u64;
    let bits = u16::from_le_bytes([bytes[fmt + 22], bytes[fmt + 23]]) as u64;
    let data = find(b"data").context("WAV data chunk")?;
    let mut len = u32::from_le_bytes(bytes[data + 4..data + 8].try_into()?) as u64;
    if len == 0 || len == u32::MAX as u64 {
        len = (bytes.len() - data - 8) as u64; // streamed WAV (espeak-ng to a pipe)
    }
    Ok(len * 1000 / (rate * channels * bits / 8))
}

/// Samples of a 16-bit PCM WAV file (mono, or the first channel).
/// Every channel of a 16-bit WAV, de-interleaved.
pub fn read_wav_channels(path: &Path) -> Result<Vec<Vec<i16>>> {
    let bytes = std::fs::read(path)?;
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
    let fmt = find(b"fmt ").context("WAV fmt chunk")?;
    let channels = u16::from_le_bytes([bytes[fmt + 10], bytes[fmt + 11]]).max(1) as usize;
    let data = find(b"data").context("WAV data chunk")? + 8;
    let mut out = vec![Vec::new(); channels];
    for frame in bytes[data..].chunks_exact(2 * channels) {
        for (c, ch) in out.iter_mut().enumerate() {
            ch.push(i16::from_le_bytes([frame[2 * c], frame[2 * c + 1]]));
        }
    }
    Ok(out)
}

/// The sample rate of a WAV file.
pub fn wav_rate(path: &Path) -> Result<u32> {
    let bytes = std::fs::read(path)?;
    let fmt = bytes
        .windows(4)
        .position(|w| w == b"fmt ")
        .context("WAV fmt chunk")?;
    let b = bytes.get(fmt + 12..fmt + 16).context("WAV fmt chunk")?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn read_wav_i16(path: &Path) -> Result<Vec<i16>> {
    let bytes = std::fs::read(path)?;
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
    let fmt = find(b"fmt ").context("WAV fmt chunk")?;
    let channels = u16::from_le_bytes([bytes[fmt + 10], bytes[fmt + 11]]).max(1) as usize;
    let bits = u16::from_le_bytes([bytes[fmt + 22], bytes[fmt + 23]]);
    if bits != 16 {
        bail!("{} is {bits}-bit, expected 16", path.display());
    }
    let data = find(b"data").context("WAV data chunk")? + 8;
    Ok(bytes[data..]
        .chunks_exact(2 * channels)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect())
}

/// 8 kHz audio at `factor` times the rate (linear interpolation: enough for
/// test tones and speech that a codec band-limits anyway).
pub fn upsample(pcm: &[i16], factor: u32) -> Vec<i16> {
    if factor <= 1 {
        return pcm.to_vec();
    }
    let mut out = Vec::with_capacity(pcm.len() * factor as usize);
    for (i, s) in pcm.iter().enumerate() {
        let next = *pcm.get(i + 1).unwrap_or(s) as i32;
        for k in 0..factor as i32 {
            out.push((*s as i32 + (next - *s as i32) * k / factor as i32) as i16);
        }
    }
    out
}

/// A 44-byte header of a 16-bit PCM WAV: `rate` Hz, `channels`, `data_len`
/// bytes of samples (the tests that attack the node write headers that lie).
pub fn wav_header(rate: u32, channels: u16, data_len: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&36u32.wrapping_add(data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(2 * channels as u32).to_le_bytes());
    b.extend_from_slice(&(2 * channels).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b
}

/// Writes a 16-bit WAV, the same samples in every channel.
pub fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) -> Result<()> {
    let mut b = wav_header(
        rate,
        channels,
        (samples.len() * 2 * channels as usize) as u32,
    );
    for s in samples {
        for _ in 0..channels {
            b.extend_from_slice(&s.to_le_bytes());
        }
    }
    std::fs::write(path, b)?;
    Ok(())
}

/// Writes a 16-bit mono WAV.
pub fn write_wav_i16(path: &Path, rate: u32, samples: &[i16]) -> Result<()> {
    write_wav(path, rate, 1, samples)
}

/// The share of a window's energy at `hz` (Goertzel): about 1 for a pure
/// tone at `hz`, 1/n for each of n equal tones mixed, near 0 when absent.
pub fn tone_share(pcm: &[i16], rate: u32, hz: f64) -> f64 {
    let n = pcm.len() as f64;
    let w = 2.0 * std::f64::consts::PI * hz / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = pcm.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if energy == 0.0 {
        return 0.0;
    }
    2.0 * power / (n * energy)
}

/// A recording's samples and rate; fails the test when it cannot be read.
pub fn read_heard(path: &Path) -> (Vec<i16>, u32) {
    let read = |e: anyhow::Error| -> ! { panic!("{}: {e}", path.display()) };
    (
        read_wav_i16(path).unwrap_or_else(|e| read(e)),
        wav_rate(path).unwrap_or_else(|e| read(e)),
    )
}

/// 100 ms windows of `pcm` at speech level (RMS above 300): how much of a
/// recording is speech or music rather than silence or line noise.
pub fn audible_windows(pcm: &[i16], rate: u32) -> usize {
    pcm.chunks_exact(rate as usize / 10)
        .filter(|w| rms(w) > 300.0)
        .count()
}

/// For each 100 ms window of `pcm`: is `hz` clearly heard in it (loud, and
/// at least `share` of the window's energy at that frequency)?
pub fn tone_flags(pcm: &[i16], rate: u32, hz: f64, share: f64) -> Vec<bool> {
    pcm.chunks_exact(rate as usize / 10)
        .map(|w| rms(w) > 500.0 && tone_share(w, rate, hz) > share)
        .collect()
}

/// 100 ms windows of a recording in which `hz` is clearly heard (loud, and
/// most of the window's energy at that frequency).
pub fn tone_windows(path: &Path, hz: f64) -> usize {
    let (pcm, rate) = read_heard(path);
    tone_flags(&pcm, rate, hz, 0.5)
        .into_iter()
        .filter(|f| *f)
        .count()
}

/// The longest stretch of a recording, in seconds, in which `hz` is heard
/// throughout (a single 100 ms window missing — a lost packet, a jitter
/// buffer's adjustment — does not break it). "Heard for most of the call",
/// where counting loud windows would pass a few blips.
pub fn longest_tone_s(path: &Path, hz: f64) -> f64 {
    let (pcm, rate) = read_heard(path);
    longest_run_s(&tone_flags(&pcm, rate, hz, 0.5))
}

/// The longest run of `true` windows (100 ms each), bridging single gaps.
pub fn longest_run_s(flags: &[bool]) -> f64 {
    let (mut best, mut run, mut gap) = (0usize, 0usize, 0usize);
    for &f in flags {
        if f {
            run += 1 + gap;
            gap = 0;
        } else if run > 0 && gap == 0 {
            gap = 1;
        } else {
            run = 0;
            gap = 0;
        }
        best = best.max(run);
    }
    best as f64 / 10.0
}

/// A sine tone at `rate`, `seconds` long.
pub fn tone(hz: f64, rate: u32, seconds: usize) -> Vec<i16> {
    (0..rate as usize * seconds)
        .map(|n| ((n as f64 * 2.0 * std::f64::consts::PI * hz / rate as f64).sin() * 8000.0) as i16)
        .collect()
}

/// A tone in bursts, 300 ms on and 300 ms off: what a browser microphone is
/// fed, since its noise suppression (on, as for any softphone) fades a
/// steady tone out within a second or two.
pub fn tone_bursts(hz: f64, rate: u32, seconds: usize) -> Vec<i16> {
    let half = rate as usize * 3 / 10;
    tone(hz, rate, seconds)
        .into_iter()
        .enumerate()
        .map(|(i, s)| if (i / half).is_multiple_of(2) { s } else { 0 })
        .collect()
}

/// A DTMF key as audio: both tones, `ms` long, at 8 kHz.
pub fn dtmf_tone(key: char, ms: usize) -> Vec<i16> {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let keys = ["123A", "456B", "789C", "*0#D"];
    let r = keys
        .iter()
        .position(|k| k.contains(key))
        .expect("a DTMF key");
    let c = keys[r].find(key).expect("a DTMF key");
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = (2.0 * std::f64::consts::PI * rows[r] * t).sin()
                + (2.0 * std::f64::consts::PI * cols[c] * t).sin();
            (v * 7000.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_is_heard_for_as_long_as_it_plays_and_blips_do_not_count() {
        // 3 s of 1 kHz, 1 s of silence, 0.2 s of 1 kHz.
        let mut pcm = tone(1000.0, 8000, 3);
        pcm.extend(vec![0; 8000]);
        pcm.extend(&tone(1000.0, 8000, 1)[..1600]);
        let flags = tone_flags(&pcm, 8000, 1000.0, 0.5);
        assert!((longest_run_s(&flags) - 3.0).abs() < 0.01, "{flags:?}");
        // Another frequency is not heard; a mix of two is half of each.
        assert_eq!(longest_run_s(&tone_flags(&pcm, 8000, 600.0, 0.5)), 0.0);
        let mix: Vec<i16> = tone(1000.0, 8000, 1)
            .iter()
            .zip(tone(600.0, 8000, 1))
            .map(|(a, b)| a / 2 + b / 2)
            .collect();
        let share = tone_share(&mix[..800], 8000, 1000.0);
        assert!((0.35..0.65).contains(&share), "{share}");
        // One missing window does not break a run; two do.
        let mut f = vec![true; 10];
        f[5] = false;
        assert_eq!(longest_run_s(&f), 1.0);
        f[6] = false;
        assert_eq!(longest_run_s(&f), 0.5);
    }
}
