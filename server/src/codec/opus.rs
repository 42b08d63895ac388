//! Opus through libopus (the `opus` crate builds it statically).
//!
//! The node runs Opus at 8 kHz towards narrowband legs: libopus takes and
//! gives any of 8/12/16/24/48 kHz and filters internally, so a PCMU <-> Opus
//! bridge needs no separate resampler. The RTP clock stays 48 kHz regardless.

use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::{Codec, CodecError};

/// Encoder settings: complexity from the operator, FEC/DTX from the peer's fmtp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    pub complexity: i32,
    pub fec: bool,
    pub dtx: bool,
}

pub struct Opus {
    rate: u32,
    enc: Encoder,
    dec: Decoder,
}

fn lib_err(e: opus::Error) -> CodecError {
    CodecError::Library {
        codec: "opus",
        message: e.to_string(),
    }
}

impl Opus {
    pub fn new(rate: u32, cfg: OpusConfig) -> Result<Opus, CodecError> {
        let mut enc = Encoder::new(rate, Channels::Mono, Application::Voip).map_err(lib_err)?;
        enc.set_complexity(cfg.complexity).map_err(lib_err)?;
        enc.set_inband_fec(cfg.fec).map_err(lib_err)?;
        if cfg.fec {
            // FEC is only spent when the encoder expects loss.
            enc.set_packet_loss_perc(5).map_err(lib_err)?;
        }
        enc.set_dtx(cfg.dtx).map_err(lib_err)?;
        enc.set_bitrate(Bitrate::Bits(if rate <= 8000 { 16_000 } else { 32_000 }))
            .map_err(lib_err)?;
        let dec = Decoder::new(rate, Channels::Mono).map_err(lib_err)?;
        Ok(Opus { rate, enc, dec })
    }
}

impl Codec for Opus {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.enc.encode(pcm, out).map_err(lib_err)
    }

    fn decode(&mut self, data: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if data.is_empty() {
            // An empty payload would ask libopus for concealment of unknown length.
            return Ok(0);
        }
        self.dec.decode(data, out, false).map_err(lib_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity_and_rates_are_accepted_and_packets_are_small() {
        for rate in [8000, 16000, 48000] {
            for complexity in [0, 5, 10] {
                let mut o = Opus::new(
                    rate,
                    OpusConfig {
                        complexity,
                        fec: true,
                        dtx: false,
                    },
                )
                .unwrap();
                let frame = vec![1000i16; rate as usize / 50];
                let mut out = [0u8; 1500];
                let n = o.encode(&frame, &mut out).unwrap();
                assert!(
                    n > 0 && n < 200,
                    "{rate} Hz, complexity {complexity}: {n} bytes"
                );
                let mut pcm = vec![0i16; rate as usize / 50];
                assert_eq!(o.decode(&out[..n], &mut pcm).unwrap(), rate as usize / 50);
            }
        }
    }

    #[test]
    fn dtx_sends_almost_nothing_in_silence() {
        let mut o = Opus::new(
            8000,
            OpusConfig {
                complexity: 5,
                fec: false,
                dtx: true,
            },
        )
        .unwrap();
        let mut out = [0u8; 1500];
        let sizes: Vec<usize> = (0..50)
            .map(|_| o.encode(&[0; 160], &mut out).unwrap())
            .collect();
        // A comfort-noise update every 400 ms; nothing else but 1-byte frames.
        let spoken = sizes[20..].iter().filter(|n| **n > 3).count();
        assert!(spoken <= 2, "{sizes:?}");
    }
}
