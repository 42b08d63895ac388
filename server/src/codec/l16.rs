//! L16: 16-bit linear PCM in network byte order (RFC 3551), for internal legs
//! and peers that want uncompressed audio.

use super::{Codec, CodecError};

pub struct L16 {
    rate: u32,
}

impl L16 {
    pub fn new(rate: u32) -> L16 {
        L16 { rate }
    }
}

impl Codec for L16 {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let out = out
            .get_mut(..pcm.len() * 2)
            .ok_or(CodecError::BufferTooSmall)?;
        for (s, o) in pcm.iter().zip(out.chunks_exact_mut(2)) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        Ok(pcm.len() * 2)
    }

    fn decode(&mut self, data: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = data.len() / 2;
        let out = out.get_mut(..n).ok_or(CodecError::BufferTooSmall)?;
        for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
            *o = i16::from_be_bytes([b[0], b[1]]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_byte_order_both_ways() {
        let mut c = L16::new(8000);
        let mut out = [0u8; 4];
        assert_eq!(c.encode(&[0x1234, -2], &mut out).unwrap(), 4);
        assert_eq!(out, [0x12, 0x34, 0xff, 0xfe]);
        let mut pcm = [0i16; 2];
        assert_eq!(c.decode(&out, &mut pcm).unwrap(), 2);
        assert_eq!(pcm, [0x1234, -2]);
        assert!(c.encode(&[0; 3], &mut out).is_err());
    }
}
