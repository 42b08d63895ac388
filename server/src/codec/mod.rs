//! Audio codecs behind one trait, and the formats SDP negotiates.
//!
//! The node's media core works at 8 kHz in 20 ms frames (prompts, recordings,
//! DTMF and speech). G.711 legs never leave the table-driven fast path: prompts
//! are pre-encoded and same-law bridges copy payloads. Every other format gets a
//! per-leg [`FrameCoder`] that presents it as 8 kHz frames: Opus runs its own
//! coder at 8 kHz (libopus band-limits internally, so no resampler is needed),
//! G.722 and wideband L16 go through a rubato resampler — the only rate boundary.

pub mod g711;
pub mod g722;
pub mod l16;
pub mod opus;
pub mod resample;

use thiserror::Error;

use g711::G711;

/// Samples per second inside the node.
pub const NODE_RATE: u32 = 8000;
/// Samples in one 20 ms frame at the node rate.
pub const FRAME: usize = 160;
/// Largest 20 ms frame at any rate we decode (48 kHz).
pub const MAX_FRAME: usize = 960;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("{codec}: {message}")]
    Library {
        codec: &'static str,
        message: String,
    },
    #[error("output buffer too small")]
    BufferTooSmall,
    #[error("resampler: {0}")]
    Resample(String),
}

/// A negotiated RTP audio format: codec, payload type and parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    G711(G711),
    /// G.722 at 64 kbit/s (16 kHz audio, 8 kHz RTP clock by RFC 3551's mistake).
    G722 {
        pt: u8,
    },
    /// Opus, always `opus/48000/2` in SDP; `fec`/`dtx` from the peer's fmtp.
    Opus {
        pt: u8,
        fec: bool,
        dtx: bool,
    },
    /// 16-bit linear PCM, network byte order.
    L16 {
        pt: u8,
        rate: u32,
    },
}

impl Format {
    pub const PCMU: Format = Format::G711(G711::Ulaw(0));
    pub const PCMA: Format = Format::G711(G711::Alaw(8));

    pub fn payload_type(self) -> u8 {
        match self {
            Format::G711(g) => g.payload_type(),
            Format::G722 { pt } | Format::Opus { pt, .. } | Format::L16 { pt, .. } => pt,
        }
    }

    /// The same codec under another payload type.
    pub fn with_payload_type(self, pt: u8) -> Format {
        match self {
            Format::G711(G711::Ulaw(_)) => Format::G711(G711::Ulaw(pt)),
            Format::G711(G711::Alaw(_)) => Format::G711(G711::Alaw(pt)),
            Format::G722 { .. } => Format::G722 { pt },
            Format::Opus { fec, dtx, .. } => Format::Opus { pt, fec, dtx },
            Format::L16 { rate, .. } => Format::L16 { pt, rate },
        }
    }

    /// The G.711 law, for the fast paths.
    pub fn g711(self) -> Option<G711> {
        match self {
            Format::G711(g) => Some(g),
            _ => None,
        }
    }

    /// RTP timestamp units per second.
    pub fn clock_rate(self) -> u32 {
        match self {
            Format::G711(_) | Format::G722 { .. } => 8000,
            Format::Opus { .. } => 48000,
            Format::L16 { rate, .. } => rate,
        }
    }

    /// RTP timestamp units per 20 ms frame.
    pub fn ts_per_frame(self) -> u32 {
        self.clock_rate() / 50
    }

    /// Whether payloads can be copied between the two formats (same codec and
    /// parameters; payload types may differ).
    pub fn same_codec(self, other: Format) -> bool {
        match (self, other) {
            (Format::G711(G711::Ulaw(_)), Format::G711(G711::Ulaw(_)))
            | (Format::G711(G711::Alaw(_)), Format::G711(G711::Alaw(_)))
            | (Format::G722 { .. }, Format::G722 { .. })
            | (Format::Opus { .. }, Format::Opus { .. }) => true,
            (Format::L16 { rate: a, .. }, Format::L16 { rate: b, .. }) => a == b,
            _ => false,
        }
    }

    /// `encoding/clock[/channels]` as in an `a=rtpmap` line.
    pub fn rtpmap(self) -> String {
        match self {
            Format::G711(G711::Ulaw(_)) => "PCMU/8000".into(),
            Format::G711(G711::Alaw(_)) => "PCMA/8000".into(),
            Format::G722 { .. } => "G722/8000".into(),
            Format::Opus { .. } => "opus/48000/2".into(),
            Format::L16 { rate, .. } => format!("L16/{rate}"),
        }
    }

    /// What we ask of the peer's encoder (`a=fmtp`), if anything.
    pub fn fmtp(self) -> Option<String> {
        match self {
            Format::Opus { fec, dtx, .. } => Some(format!(
                "useinbandfec={};usedtx={}",
                u8::from(fec),
                u8::from(dtx)
            )),
            _ => None,
        }
    }

    /// Short name for call records and logs.
    pub fn name(self) -> &'static str {
        match self {
            Format::G711(G711::Ulaw(_)) => "PCMU",
            Format::G711(G711::Alaw(_)) => "PCMA",
            Format::G722 { .. } => "G722",
            Format::Opus { .. } => "opus",
            Format::L16 { .. } => "L16",
        }
    }

    /// Parses an rtpmap encoding (`opus/48000/2`) with its fmtp parameters.
    pub fn from_rtpmap(pt: u8, encoding: &str, fmtp: Option<&str>) -> Option<Format> {
        let enc = encoding.trim().to_ascii_lowercase();
        let mut parts = enc.split('/');
        let name = parts.next()?;
        let rate: u32 = parts.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
        let param = |key: &str| {
            fmtp.into_iter()
                .flat_map(|f| f.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .any(|(k, v)| k.eq_ignore_ascii_case(key) && v.trim() == "1")
        };
        Some(match (name, rate) {
            ("pcmu", 8000) => Format::G711(G711::Ulaw(pt)),
            ("pcma", 8000) => Format::G711(G711::Alaw(pt)),
            ("g722", 8000) => Format::G722 { pt },
            ("opus", 48000) => Format::Opus {
                pt,
                fec: param("useinbandfec"),
                dtx: param("usedtx"),
            },
            ("l16", 8000 | 16000 | 32000 | 48000) if parts.next().is_none_or(|c| c == "1") => {
                Format::L16 { pt, rate }
            }
            _ => return None,
        })
    }

    /// Static payload types (RFC 3551) that need no rtpmap.
    pub fn from_static(pt: u8) -> Option<Format> {
        match pt {
            0 => Some(Format::PCMU),
            8 => Some(Format::PCMA),
            9 => Some(Format::G722 { pt: 9 }),
            _ => None,
        }
    }
}

impl From<G711> for Format {
    fn from(g: G711) -> Self {
        Format::G711(g)
    }
}

/// Tuning that is the operator's, not the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecOptions {
    /// Opus encoder complexity, 0 (cheapest) to 10.
    pub opus_complexity: i32,
}

impl Default for CodecOptions {
    fn default() -> Self {
        CodecOptions { opus_complexity: 5 }
    }
}

/// One codec instance (stateful: one per leg and direction pair).
///
/// Audio is mono 16-bit at the codec's own [`Codec::sample_rate`].
pub trait Codec: Send {
    fn sample_rate(&self) -> u32;
    /// Encodes one 20 ms frame; returns the payload length.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;
    /// Decodes one payload; returns the samples written.
    fn decode(&mut self, data: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;
}

/// Builds a codec for a format at the sample rate the node wants from it.
pub fn codec_for(format: Format, opts: CodecOptions) -> Result<Box<dyn Codec>, CodecError> {
    Ok(match format {
        Format::G711(g) => Box::new(g),
        Format::G722 { .. } => Box::new(g722::G722::new()),
        Format::Opus { fec, dtx, .. } => Box::new(opus::Opus::new(
            NODE_RATE,
            opus::OpusConfig {
                complexity: opts.opus_complexity.clamp(0, 10),
                fec,
                dtx,
            },
        )?),
        Format::L16 { rate, .. } => Box::new(l16::L16::new(rate)),
    })
}

/// A leg's codec seen from the node: 20 ms frames at 8 kHz in and out,
/// resampled only where the codec's rate differs.
pub struct FrameCoder {
    codec: Box<dyn Codec>,
    /// 8 kHz -> codec rate (encode side) and back (decode side).
    up: Option<resample::StreamResampler>,
    down: Option<resample::StreamResampler>,
    scratch: Box<[i16; 6 * MAX_FRAME]>,
}

impl FrameCoder {
    pub fn new(format: Format, opts: CodecOptions) -> Result<FrameCoder, CodecError> {
        let codec = codec_for(format, opts)?;
        let rate = codec.sample_rate();
        let (up, down) = if rate == NODE_RATE {
            (None, None)
        } else {
            (
                Some(resample::StreamResampler::new(NODE_RATE, rate)?),
                Some(resample::StreamResampler::new(rate, NODE_RATE)?),
            )
        };
        Ok(FrameCoder {
            codec,
            up,
            down,
            scratch: Box::new([0; 6 * MAX_FRAME]),
        })
    }

    /// Encodes one 8 kHz frame; returns the payload length (0 on a codec error).
    pub fn encode(&mut self, pcm: &[i16; FRAME], out: &mut [u8]) -> usize {
        let res = match self.up.as_mut() {
            None => self.codec.encode(pcm, out),
            Some(up) => {
                let wide = up.process(pcm);
                self.codec.encode(wide, out)
            }
        };
        res.unwrap_or(0)
    }

    /// Decodes a payload into 8 kHz audio; returns the samples written (a
    /// multiple of [`FRAME`] for whole packets; 0 on a corrupt payload).
    pub fn decode(&mut self, data: &[u8], out: &mut [i16]) -> usize {
        match self.down.as_mut() {
            None => self.codec.decode(data, out).unwrap_or(0),
            Some(down) => {
                let n = self.codec.decode(data, &mut self.scratch[..]).unwrap_or(0);
                let narrow = down.process(&self.scratch[..n]);
                let m = narrow.len().min(out.len());
                out[..m].copy_from_slice(&narrow[..m]);
                m
            }
        }
    }
}

impl Codec for G711 {
    fn sample_rate(&self) -> u32 {
        NODE_RATE
    }
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let out = out.get_mut(..pcm.len()).ok_or(CodecError::BufferTooSmall)?;
        G711::encode(*self, pcm, out);
        Ok(pcm.len())
    }
    fn decode(&mut self, data: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let out = out
            .get_mut(..data.len())
            .ok_or(CodecError::BufferTooSmall)?;
        G711::decode(*self, data, out);
        Ok(data.len())
    }
}

#[cfg(test)]
pub(crate) mod test_signal {
    /// A speech-like test signal: two tones with a slow envelope, at `rate`.
    pub fn voice(rate: u32, seconds: f64) -> Vec<i16> {
        let n = (rate as f64 * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let env = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
                let s = (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 0.6
                    + (2.0 * std::f64::consts::PI * 1250.0 * t).sin() * 0.3;
                (s * env * 9000.0) as i16
            })
            .collect()
    }

    /// SNR in dB of `got` against `want`, after finding the delay (up to
    /// `max_delay` samples) that lines them up best.
    pub fn snr_db(want: &[i16], got: &[i16], max_delay: usize) -> (f64, usize) {
        let skip = got.len() / 5; // past start-up transients
        let mut best = (f64::MIN, 0);
        for d in 0..=max_delay {
            let pairs = want[skip..]
                .iter()
                .zip(got[skip + d..].iter())
                .take(want.len() - skip - max_delay);
            let (mut sig, mut err) = (0f64, 0f64);
            for (a, b) in pairs {
                sig += (*a as f64).powi(2);
                err += (*a as f64 - *b as f64).powi(2);
            }
            let snr = 10.0 * (sig / err.max(1.0)).log10();
            if snr > best.0 {
                best = (snr, d);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_from_sdp_and_print_back() {
        let f = Format::from_rtpmap(111, "opus/48000/2", Some("minptime=10;useinbandfec=1"));
        assert_eq!(
            f,
            Some(Format::Opus {
                pt: 111,
                fec: true,
                dtx: false
            })
        );
        assert_eq!(f.unwrap().rtpmap(), "opus/48000/2");
        assert_eq!(f.unwrap().ts_per_frame(), 960);
        assert_eq!(
            Format::from_rtpmap(9, "G722/8000", None),
            Some(Format::G722 { pt: 9 })
        );
        assert_eq!(
            Format::from_rtpmap(97, "L16/16000", None),
            Some(Format::L16 {
                pt: 97,
                rate: 16000
            })
        );
        assert_eq!(Format::from_rtpmap(97, "L16/16000/2", None), None);
        assert_eq!(Format::from_rtpmap(96, "speex/8000", None), None);
        assert!(Format::PCMU.same_codec(Format::G711(G711::Ulaw(96))));
        assert!(!Format::PCMU.same_codec(Format::PCMA));
        assert_eq!(Format::G722 { pt: 9 }.ts_per_frame(), 160);
    }

    /// Each codec through the node's 8 kHz frames: what goes in comes out,
    /// with the codec's delay, at a quality fit for speech.
    #[test]
    fn every_format_round_trips_node_frames() {
        let input = test_signal::voice(NODE_RATE, 2.0);
        let cases = [
            (Format::PCMU, 33.0),
            (Format::PCMA, 33.0),
            (Format::G722 { pt: 9 }, 30.0),
            (
                Format::Opus {
                    pt: 111,
                    fec: true,
                    dtx: false,
                },
                12.0,
            ),
            (Format::L16 { pt: 97, rate: 8000 }, 80.0),
            (
                Format::L16 {
                    pt: 97,
                    rate: 16000,
                },
                50.0,
            ),
        ];
        for (format, min_snr) in cases {
            let mut coder = FrameCoder::new(format, CodecOptions::default()).unwrap();
            let mut out = Vec::new();
            let mut payload = [0u8; 1500];
            let mut pcm = [0i16; MAX_FRAME];
            for frame in input.chunks_exact(FRAME) {
                let n = coder.encode(frame.try_into().unwrap(), &mut payload);
                assert!(n > 0, "{format:?} encoded nothing");
                let m = coder.decode(&payload[..n], &mut pcm);
                out.extend_from_slice(&pcm[..m]);
            }
            assert!(
                out.len() + 2 * FRAME >= input.len(),
                "{format:?}: {}",
                out.len()
            );
            let (snr, delay) = test_signal::snr_db(&input, &out, 200);
            assert!(
                snr >= min_snr,
                "{format:?}: SNR {snr:.1} dB at delay {delay}"
            );
            eprintln!("{}: SNR {snr:.1} dB, delay {delay} samples", format.name());
        }
    }

    #[test]
    fn corrupt_payloads_decode_to_nothing_not_a_panic() {
        for format in [
            Format::G722 { pt: 9 },
            Format::Opus {
                pt: 111,
                fec: false,
                dtx: false,
            },
            Format::L16 {
                pt: 97,
                rate: 16000,
            },
        ] {
            let mut coder = FrameCoder::new(format, CodecOptions::default()).unwrap();
            let mut pcm = [0i16; MAX_FRAME];
            for junk in [&[][..], &[0xff; 3][..], &[0x0b, 0xff, 0xff, 0xff, 0xff][..]] {
                let n = coder.decode(junk, &mut pcm);
                assert!(n <= MAX_FRAME, "{format:?}");
            }
        }
    }
}
