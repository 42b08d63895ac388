//! Per-frame cost of each codec and of resampling: one 20 ms frame through
//! the node's coder (what a leg pays per packet), timed over many frames.
//! Plain timing loops rather than criterion: the figures go into one stable,
//! parseable summary line.
//!
//! `cargo bench -p hookline-benches --bench codecs`
//! Last line: `bench=codecs pcmu_enc_us=.. ... opus8k_c5_enc_us=.. opus48k_c5_enc_us=..`

use std::hint::black_box;
use std::time::{Duration, Instant};

use hookline::codec::opus::{Opus, OpusConfig};
use hookline::codec::resample::StreamResampler;
use hookline::codec::{Codec, CodecOptions, Format, FrameCoder, FRAME};

/// Speech-band test audio at `rate`: 20 s of two tones with an envelope.
fn voice(rate: u32) -> Vec<i16> {
    (0..rate as usize * 20)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let env = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 0.6
                + (2.0 * std::f64::consts::PI * 1250.0 * t).sin() * 0.3)
                * env
                * 9000.0
        })
        .map(|v| v as i16)
        .collect()
}

/// Microseconds per call of `f(frame index)`, over at least 300 ms.
fn time_us(mut f: impl FnMut(usize)) -> f64 {
    for i in 0..200 {
        f(i);
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(300) {
        for _ in 0..100 {
            f(n);
            n += 1;
        }
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() -> anyhow::Result<()> {
    let narrow = voice(8000);
    let frames: Vec<&[i16; FRAME]> = narrow
        .chunks_exact(FRAME)
        .map(|c| c.try_into().expect("frame"))
        .collect();
    let frame = |i: usize| frames[i % frames.len()];
    let mut results: Vec<(String, f64)> = Vec::new();

    let formats = [
        ("pcmu", Format::PCMU, 5),
        ("g722", Format::G722 { pt: 9 }, 5),
        ("opus8k_c0", opus(), 0),
        ("opus8k_c5", opus(), 5),
        ("opus8k_c10", opus(), 10),
    ];
    for (name, format, complexity) in formats {
        let opts = CodecOptions {
            opus_complexity: complexity,
        };
        let mut coder = FrameCoder::new(format, opts)?;
        let mut payload = [0u8; 1500];
        let enc = time_us(|i| {
            black_box(coder.encode(frame(i), &mut payload));
        });
        // Decode real packets of this codec.
        let mut encoder = FrameCoder::new(format, opts)?;
        let packets: Vec<Vec<u8>> = (0..250)
            .map(|i| {
                let n = encoder.encode(frame(i), &mut payload);
                payload[..n].to_vec()
            })
            .collect();
        let mut pcm = [0i16; 960];
        let dec = time_us(|i| {
            black_box(coder.decode(&packets[i % packets.len()], &mut pcm));
        });
        results.push((format!("{name}_enc_us"), enc));
        results.push((format!("{name}_dec_us"), dec));
    }

    // The alternative to running Opus at 8 kHz: 48 kHz Opus plus rubato both ways.
    let mut wide = Opus::new(
        48000,
        OpusConfig {
            complexity: 5,
            fec: false,
            dtx: false,
        },
    )?;
    let mut up = StreamResampler::new(8000, 48000)?;
    let mut payload = [0u8; 1500];
    let enc48 = time_us(|i| {
        let pcm48 = up.process(frame(i));
        black_box(wide.encode(pcm48, &mut payload).ok());
    });
    results.push(("opus48k_c5_enc_with_resample_us".into(), enc48));

    for (name, from, to) in [
        ("resample_8_16", 8000u32, 16000u32),
        ("resample_16_8", 16000, 8000),
        ("resample_8_48", 8000, 48000),
        ("resample_48_8", 48000, 8000),
    ] {
        let input = voice(from);
        let chunk = from as usize / 50;
        let mut r = StreamResampler::new(from, to)?;
        let us = time_us(|i| {
            let at = (i * chunk) % (input.len() - chunk);
            black_box(r.process(&input[at..at + chunk]).len());
        });
        results.push((format!("{name}_us"), us));
    }

    for (name, us) in &results {
        println!("{name:<36} {us:>8.2} µs per 20 ms frame");
    }
    let line: Vec<String> = results
        .iter()
        .map(|(name, us)| format!("{name}={us:.2}"))
        .collect();
    println!("bench=codecs {}", line.join(" "));
    Ok(())
}

fn opus() -> Format {
    Format::Opus {
        pt: 111,
        fec: false,
        dtx: false,
    }
}
