//! G.711 µ-law and A-law (ITU-T G.711), table-driven both ways.

/// A G.711 variant with the RTP payload type it was negotiated under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    /// µ-law (PCMU), usually payload type 0.
    Ulaw(u8),
    /// A-law (PCMA), usually payload type 8.
    Alaw(u8),
}

impl G711 {
    /// The RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Ulaw(pt) | G711::Alaw(pt) => pt,
        }
    }

    /// The encoded byte for digital silence.
    pub fn silence(self) -> u8 {
        match self {
            G711::Ulaw(_) => ULAW_ENCODE[(0i16 as u16 >> 2) as usize],
            G711::Alaw(_) => ALAW_ENCODE[(0i16 as u16 >> 3) as usize],
        }
    }

    /// Encodes linear 16-bit samples into `out` (same length).
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        match self {
            G711::Ulaw(_) => pcm
                .iter()
                .zip(out)
                .for_each(|(s, o)| *o = ULAW_ENCODE[(*s as u16 >> 2) as usize]),
            G711::Alaw(_) => pcm
                .iter()
                .zip(out)
                .for_each(|(s, o)| *o = ALAW_ENCODE[(*s as u16 >> 3) as usize]),
        }
    }

    /// Decodes bytes into linear 16-bit samples in `out` (same length).
    pub fn decode(self, data: &[u8], out: &mut [i16]) {
        let table = match self {
            G711::Ulaw(_) => &ULAW_DECODE,
            G711::Alaw(_) => &ALAW_DECODE,
        };
        data.iter()
            .zip(out)
            .for_each(|(b, o)| *o = table[*b as usize]);
    }
}

const fn ulaw_decode(b: u8) -> i16 {
    let b = !b;
    let t = ((((b & 0x0f) as i32) << 3) + 0x84) << ((b & 0x70) >> 4);
    (if b & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

const fn alaw_decode(b: u8) -> i16 {
    let b = b ^ 0x55;
    let mut t = ((b & 0x0f) as i32) << 4;
    let seg = ((b & 0x70) >> 4) as i32;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if b & 0x80 != 0 { t } else { -t }) as i16
}

const fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    if s > CLIP {
        s = CLIP;
    }
    s += BIAS;
    let mut exp = 7;
    let mut mask = 0x4000;
    while exp > 0 && s & mask == 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mant = (s >> (exp + 3)) & 0x0f;
    !((sign | (exp << 4) | mant) as u8)
}

const fn alaw_encode(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    if s > 32767 {
        s = 32767;
    }
    let enc = if s < 256 {
        s >> 4
    } else {
        let mut exp = 7;
        let mut mask = 0x4000;
        while s & mask == 0 {
            exp -= 1;
            mask >>= 1;
        }
        (exp << 4) | ((s >> (exp + 3)) & 0x0f)
    };
    ((sign | enc) ^ 0x55) as u8
}

const ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode(i as u8);
        i += 1;
    }
    t
};

const ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode(i as u8);
        i += 1;
    }
    t
};

/// Indexed by the sample's top 14 bits (µ-law resolution).
static ULAW_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        t[i] = ulaw_encode(((i as u16) << 2) as i16);
        i += 1;
    }
    t
};

/// Indexed by the sample's top 13 bits (A-law resolution).
static ALAW_ENCODE: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        t[i] = alaw_encode(((i as u16) << 3) as i16);
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn snr_db(codec: G711) -> f64 {
        let pcm: Vec<i16> = (0..8000)
            .map(|n| {
                (8000.0 * (n as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin()) as i16
            })
            .collect();
        let mut enc = vec![0u8; pcm.len()];
        let mut dec = vec![0i16; pcm.len()];
        codec.encode(&pcm, &mut enc);
        codec.decode(&enc, &mut dec);
        let sig: f64 = pcm.iter().map(|s| (*s as f64).powi(2)).sum();
        let err: f64 = pcm
            .iter()
            .zip(&dec)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum();
        10.0 * (sig / err).log10()
    }

    #[test]
    fn round_trip_snr_is_telephone_quality() {
        assert!(snr_db(G711::Ulaw(0)) > 33.0, "{}", snr_db(G711::Ulaw(0)));
        assert!(snr_db(G711::Alaw(8)) > 33.0, "{}", snr_db(G711::Alaw(8)));
    }

    #[test]
    fn known_code_points() {
        // Silence encodes to the well-known idle patterns.
        assert_eq!(G711::Ulaw(0).silence(), 0xff);
        assert_eq!(G711::Alaw(8).silence(), 0xd5);
        assert_eq!(ULAW_DECODE[0x00], -32124);
        assert_eq!(ULAW_DECODE[0x80], 32124);
        assert_eq!(ALAW_DECODE[0xd5], 8);
        assert_eq!(ALAW_DECODE[0x2a], -32256);
        // Every code decodes and re-encodes to itself (except µ-law's two zeros).
        for b in 0..=255u8 {
            assert_eq!(alaw_encode(ALAW_DECODE[b as usize]), b);
            if b != 0x7f {
                assert_eq!(ulaw_encode(ULAW_DECODE[b as usize]), b, "{b:#x}");
            }
        }
    }
}
