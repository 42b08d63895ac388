//! Transcoded bridges per core: callers speak A-law, the agents answer only
//! Opus (48 kHz RTP clock), so the node decodes, and re-encodes, every frame
//! both ways. One node run per Opus encoder complexity.
//!
//! `cargo bench -p hookline-benches --bench transcode_load -- --calls 250 --seconds 15`
//! Last line: `bench=transcoded_calls calls=N c0_calls_per_core=.. c5_calls_per_core=.. c10_calls_per_core=.. ...`

fn main() -> anyhow::Result<()> {
    let calls = hookline_benches::arg("--calls", 250) as usize;
    let seconds = hookline_benches::arg("--seconds", 15);
    let cps = hookline_benches::arg("--cps", 150) as u32;
    // What the agents send: one 20 ms Opus packet of speech-band tones, encoded once.
    let packet = hookline_benches::opus_tone_packet(5)?;
    let n = packet.len();
    let mut summary = format!("bench=transcoded_calls calls={calls} opus_packet_bytes={n}");
    let mut worst_loss: f64 = 0.0;
    let mut rss = 0.0;
    for complexity in [0, 5, 10] {
        let config = format!("[codecs]\nopus_complexity = {complexity}\n");
        let b = hookline_benches::bridged::run(&config, calls, seconds, cps, Some(packet.clone()))?;
        let r = &b.report;
        println!(
            "complexity {complexity}: {} of {} calls transcoded for {:.1} s; node CPU {:.1} %, {:.0} calls per core, \
             {:.3} MiB per call, loss {:.3} %, late {:.3} %",
            r.bridged,
            r.attempted,
            b.held_s,
            b.cpu_pct,
            b.calls_per_core(),
            b.rss_mib_per_call(),
            b.lost_pct(),
            b.late_pct()
        );
        summary.push_str(&format!(
            " c{complexity}_bridged={} c{complexity}_cpu_pct={:.1} c{complexity}_calls_per_core={:.0} c{complexity}_lost_pct={:.3} c{complexity}_late_pct={:.3} c{complexity}_node_late_ticks={:.0}",
            r.bridged,
            b.cpu_pct,
            b.calls_per_core(),
            b.lost_pct(),
            b.late_pct(),
            b.late_ticks
        ));
        worst_loss = worst_loss.max(b.lost_pct() + b.late_pct());
        rss = b.rss_mib_per_call();
    }
    println!("{summary} rss_mib_per_call={rss:.3} worst_lost_or_late_pct={worst_loss:.3}");
    Ok(())
}
