//! Benchmark support: a light SIP/RTP load generator and process measurements.

pub mod bridged;
pub mod delay;
pub mod loadgen;
pub mod mem_parts;
pub mod proc_stats;
pub mod rounds;
pub mod rtpengine;
pub mod rx;
pub mod wire;

/// A numeric command-line option of a benchmark (`--calls 200`), or its default.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The node's count of media ticks that started late (its workers fell behind).
pub const LATE_TICKS: &str = "hookline_media_late_ticks_total";

/// The media figures every load benchmark prints, judged against what should
/// have arrived: expected and received packets, loss and lateness as shares
/// of the expected, packets from the wrong leg, and ticks the node ran late.
pub fn media_fields(r: &loadgen::LoadReport, node_late_ticks: f64) -> String {
    let crossed = if r.markers {
        r.rtp_crossed.to_string()
    } else {
        "na".into()
    };
    format!(
        "rtp_expected={} rtp_received={} lost_pct={:.3} late_pct={:.3} rtp_crossed={crossed} node_late_ticks={node_late_ticks:.0} {}",
        r.rtp_expected,
        r.rtp_received,
        r.lost_pct(),
        r.late_pct(),
        r.delays.fields(),
    )
}

/// One 20 ms Opus packet (48 kHz) of a 400 Hz tone with a 1.1 kHz
/// overtone, encoded once: what Opus legs of the load send when they speak.
pub fn opus_tone_packet(complexity: i32) -> anyhow::Result<Vec<u8>> {
    opus_packet(complexity, 1.0)
}

/// One 20 ms Opus packet of near silence (room noise at -60 dB): a caller
/// listening to a menu.
pub fn opus_quiet_packet() -> anyhow::Result<Vec<u8>> {
    opus_packet(5, 0.003)
}

fn opus_packet(complexity: i32, gain: f64) -> anyhow::Result<Vec<u8>> {
    use hookline::codec::opus::{Opus, OpusConfig};
    use hookline::codec::Codec;
    let mut enc = Opus::new(
        48000,
        OpusConfig {
            complexity,
            fec: false,
            dtx: false,
        },
    )?;
    let pcm: Vec<i16> = (0..960)
        .map(|k| {
            let t = k as f64 / 48000.0;
            (((2.0 * std::f64::consts::PI * 400.0 * t).sin() * 6000.0
                + (2.0 * std::f64::consts::PI * 1100.0 * t).sin() * 3000.0)
                * gain) as i16
        })
        .collect();
    let mut packet = vec![0u8; 400];
    let n = enc.encode(&pcm, &mut packet)?;
    packet.truncate(n);
    Ok(packet)
}
