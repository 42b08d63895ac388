//! G.722 (ITU-T, 64 kbit/s sub-band ADPCM): 16 kHz audio, one byte per two samples.
//! The ADPCM itself comes from the `audio-codec` crate (pure Rust).

use audio_codec::g722::{G722Decoder, G722Encoder};
use audio_codec::{Decoder, Encoder};

use super::{Codec, CodecError};

pub struct G722 {
    enc: G722Encoder,
    dec: G722Decoder,
}

impl G722 {
    pub fn new() -> G722 {
        G722 {
            enc: G722Encoder::new(),
            dec: G722Decoder::new(),
        }
    }
}

impl Default for G722 {
    fn default() -> Self {
        G722::new()
    }
}

fn lib_err(e: audio_codec::CodecError) -> CodecError {
    CodecError::Library {
        codec: "G.722",
        message: e.to_string(),
    }
}

impl Codec for G722 {
    fn sample_rate(&self) -> u32 {
        16000
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.enc.encode_into(pcm, out).map_err(lib_err)
    }

    fn decode(&mut self, data: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.dec.decode_into(data, out).map_err(lib_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_signal;

    #[test]
    fn wideband_round_trip_keeps_a_7khz_band() {
        // A 5 kHz component survives G.722 (it would not survive G.711).
        let pcm: Vec<i16> = test_signal::voice(16000, 1.0)
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s / 2
                    + ((i as f64 * 2.0 * std::f64::consts::PI * 5000.0 / 16000.0).sin() * 4000.0)
                        as i16
            })
            .collect();
        let mut g = G722::new();
        let (mut out, mut payload, mut dec) = (Vec::new(), [0u8; 160], [0i16; 320]);
        for frame in pcm.chunks_exact(320) {
            let n = g.encode(frame, &mut payload).unwrap();
            assert_eq!(n, 160, "64 kbit/s: 160 bytes per 20 ms");
            let m = g.decode(&payload[..n], &mut dec).unwrap();
            out.extend_from_slice(&dec[..m]);
        }
        let (snr, _) = test_signal::snr_db(&pcm, &out, 64);
        assert!(snr > 15.0, "SNR {snr:.1} dB");
    }
}
