//! RTP fixed header (RFC 3550 §5.1), parsed in place without allocation.
//!
//! Hand-written because it sits on the per-packet path: the parse borrows the
//! datagram, and writing a header fills a caller-owned buffer.

use thiserror::Error;

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("shorter than an RTP header")]
    TooShort,
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    #[error("header fields run past the end of the packet")]
    Truncated,
}

/// A parsed RTP packet borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Is this datagram RTCP rather than RTP (RFC 5761 §4: payload types 72-76 after masking)?
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && (192..=223).contains(&data[1])
}

impl<'a> RtpPacket<'a> {
    /// Parses a datagram, skipping CSRCs and header extensions and removing padding.
    pub fn parse(data: &'a [u8]) -> Result<Self, RtpError> {
        if data.len() < 12 {
            return Err(RtpError::TooShort);
        }
        let version = data[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = data[0] & 0x20 != 0;
        let extension = data[0] & 0x10 != 0;
        let csrc_count = (data[0] & 0x0f) as usize;
        let mut start = 12 + 4 * csrc_count;
        if extension {
            let ext = data.get(start..start + 4).ok_or(RtpError::Truncated)?;
            start += 4 + 4 * u16::from_be_bytes([ext[2], ext[3]]) as usize;
        }
        let mut end = data.len();
        if padding {
            let pad = *data.last().ok_or(RtpError::Truncated)? as usize;
            end = end.checked_sub(pad).ok_or(RtpError::Truncated)?;
        }
        if start > end {
            return Err(RtpError::Truncated);
        }
        Ok(RtpPacket {
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            sequence: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            payload: &data[start..end],
        })
    }
}

/// Writes a 12-byte RTP header (no CSRC, no extension) into `out[..12]`.
pub fn write_header(
    out: &mut [u8],
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) {
    out[0] = 0x80;
    out[1] = (payload_type & 0x7f) | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&sequence.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 16];
        write_header(&mut buf, true, 8, 65535, 0xdead_beef, 42);
        buf[12..].copy_from_slice(b"abcd");
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (8, 65535, 0xdead_beef, 42)
        );
        assert_eq!(p.payload, b"abcd");
    }

    #[test]
    fn hostile_headers_are_errors() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort));
        assert_eq!(
            RtpPacket::parse(&[0x40; 12]).unwrap_err(),
            RtpError::BadVersion(1)
        );
        // 15 CSRCs announced, none present.
        let mut b = [0u8; 12];
        b[0] = 0x8f;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::Truncated));
        // Padding longer than the packet.
        b[0] = 0xa0;
        let mut p = b.to_vec();
        p.push(200);
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::Truncated));
        // Extension header announced but missing.
        b[0] = 0x90;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::Truncated));
    }

    #[test]
    fn any_bytes_never_panic() {
        let mut x: u32 = 1;
        for len in 0..200usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x & 0xff) as u8 | 0x80
                })
                .collect();
            let _ = RtpPacket::parse(&data);
        }
    }
}
