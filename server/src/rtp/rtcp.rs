//! RTCP (RFC 3550 §6): reading the report blocks peers send about our stream,
//! and writing our own compound SR/RR + SDES. Sans-IO, no allocation to parse.

/// What a peer reported about the stream we send (a report block naming our SSRC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerReport {
    /// Fraction of our packets lost since its previous report, out of 256.
    pub fraction_lost: u8,
    /// Packets of ours it has missed in all.
    pub cumulative_lost: u32,
    /// Interarrival jitter of our stream as it measured it, in timestamp units.
    pub jitter: u32,
}

/// Walks a compound RTCP packet; returns the report about `our_ssrc`, if any.
/// Malformed input ends the walk (never panics).
pub fn report_for(data: &[u8], our_ssrc: u32) -> Option<PeerReport> {
    let mut rest = data;
    let mut found = None;
    while rest.len() >= 8 {
        if rest[0] >> 6 != 2 {
            break;
        }
        let count = (rest[0] & 0x1f) as usize;
        let pt = rest[1];
        let len = (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1) * 4;
        if len > rest.len() {
            break;
        }
        let packet = &rest[..len];
        // SR: 8 header + 20 sender info; RR: 8 header. Then 24-byte report blocks.
        let blocks_at = match pt {
            200 => 28,
            201 => 8,
            _ => {
                rest = &rest[len..];
                continue;
            }
        };
        for i in 0..count {
            let at = blocks_at + i * 24;
            let Some(b) = packet.get(at..at + 24) else {
                break;
            };
            if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == our_ssrc {
                found = Some(PeerReport {
                    fraction_lost: b[4],
                    cumulative_lost: u32::from_be_bytes([0, b[5], b[6], b[7]]),
                    jitter: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
                });
            }
        }
        rest = &rest[len..];
    }
    found
}

/// What we know of the peer's stream, for the report block we send.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiverState {
    pub peer_ssrc: u32,
    pub fraction_lost: u8,
    pub cumulative_lost: u32,
    pub highest_seq: u32,
}

/// Writes a compound RR (or SR when `sent` is Some((packets, octets, rtp_ts, ntp)))
/// with one report block (if we have a peer stream) and an SDES CNAME. Returns the length.
pub fn write_report(
    out: &mut [u8; 128],
    our_ssrc: u32,
    sent: Option<(u32, u32, u32, u64)>,
    peer: Option<ReceiverState>,
    cname: &[u8],
) -> usize {
    let mut n = 0;
    let blocks = peer.is_some() as u8;
    let (pt, words) = match sent {
        Some(_) => (200u8, 6 + 6 * blocks as u16),
        None => (201u8, 1 + 6 * blocks as u16),
    };
    out[0] = 0x80 | blocks;
    out[1] = pt;
    out[2..4].copy_from_slice(&words.to_be_bytes());
    out[4..8].copy_from_slice(&our_ssrc.to_be_bytes());
    n += 8;
    if let Some((packets, octets, rtp_ts, ntp)) = sent {
        out[n..n + 8].copy_from_slice(&ntp.to_be_bytes());
        out[n + 8..n + 12].copy_from_slice(&rtp_ts.to_be_bytes());
        out[n + 12..n + 16].copy_from_slice(&packets.to_be_bytes());
        out[n + 16..n + 20].copy_from_slice(&octets.to_be_bytes());
        n += 20;
    }
    if let Some(p) = peer {
        out[n..n + 4].copy_from_slice(&p.peer_ssrc.to_be_bytes());
        out[n + 4] = p.fraction_lost;
        out[n + 5..n + 8].copy_from_slice(&p.cumulative_lost.min(0x7f_ffff).to_be_bytes()[1..]);
        out[n + 8..n + 12].copy_from_slice(&p.highest_seq.to_be_bytes());
        out[n + 12..n + 24].fill(0); // jitter, LSR, DLSR: not measured here
        n += 24;
    }
    // SDES with one CNAME item, padded to a 32-bit boundary.
    let cname = &cname[..cname.len().min(64)];
    let item = 2 + cname.len();
    let chunk = 4 + item + 1; // SSRC, item, END
    let padded = chunk.div_ceil(4) * 4;
    out[n] = 0x81;
    out[n + 1] = 202;
    out[n + 2..n + 4].copy_from_slice(&((padded / 4) as u16).to_be_bytes());
    out[n + 4..n + 8].copy_from_slice(&our_ssrc.to_be_bytes());
    out[n + 8] = 1;
    out[n + 9] = cname.len() as u8;
    out[n + 10..n + 10 + cname.len()].copy_from_slice(cname);
    out[n + 10 + cname.len()..n + 4 + padded].fill(0);
    n + 4 + padded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_report_round_trips_and_is_found_in_a_compound_packet() {
        let mut buf = [0u8; 128];
        let peer = ReceiverState {
            peer_ssrc: 7,
            fraction_lost: 25,
            cumulative_lost: 300,
            highest_seq: 70000,
        };
        let n = write_report(
            &mut buf,
            99,
            Some((10, 1600, 1234, 1 << 40)),
            Some(peer),
            b"hookline",
        );
        assert_eq!(n % 4, 0);
        // The peer (SSRC 7) reads our report about its stream.
        let r = report_for(&buf[..n], 7).unwrap();
        assert_eq!((r.fraction_lost, r.cumulative_lost, r.jitter), (25, 300, 0));
        assert!(report_for(&buf[..n], 8).is_none());
        let n = write_report(&mut buf, 99, None, Some(peer), b"x");
        assert_eq!(buf[1], 201);
        assert_eq!(report_for(&buf[..n], 7).unwrap().cumulative_lost, 300);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 9;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if i % 4 == 0 {
                        0x80 | (x as u8 & 0x1f)
                    } else {
                        x as u8
                    }
                })
                .collect();
            let _ = report_for(&data, 1);
        }
    }
}
