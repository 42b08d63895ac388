//! Per-stream reordering: packets come out in sequence order, gaps are waited
//! for a few packets and then declared lost. A packet in order with nothing
//! waiting (almost all of them) is released straight from the datagram; only
//! a packet that must wait is copied into one of eight slots, each holding
//! its payload in a buffer that grows to the largest payload it has held
//! (160 bytes for G.711 at 20 ms). A stream that never reorders allocates
//! nothing; one that does costs ~2 KiB, not eight maximum-size packets.

use super::packet::RtpPacket;

/// Largest payload kept (Opus' 1,275-byte maximum, 160 ms of G.711); bigger
/// packets are counted and dropped.
pub const MAX_PAYLOAD: usize = 1280;
const SLOTS: usize = 8;

/// Receive statistics of one stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub received: u64,
    /// Sequence numbers never seen before playout moved past them.
    pub lost: u64,
    /// Packets that arrived after their place was released.
    pub late: u64,
    pub duplicate: u64,
    pub oversize: u64,
}

#[derive(Default)]
struct Slot {
    ext_seq: u64,
    full: bool,
    marker: bool,
    payload_type: u8,
    timestamp: u32,
    data: Vec<u8>,
}

/// A packet released in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Released<'a> {
    pub sequence: u64,
    pub marker: bool,
    pub payload_type: u8,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// Reorders one RTP stream (one source address and SSRC).
pub struct ReorderBuffer {
    slots: [Slot; SLOTS],
    /// Next extended sequence number to release; `None` before the first packet.
    next: Option<u64>,
    highest: u64,
    buffered: usize,
    /// How many packets may wait behind a gap before the gap is declared lost.
    depth: usize,
    stats: StreamStats,
}

impl ReorderBuffer {
    /// `depth` packets may wait behind a missing one (clamped to the slot count).
    pub fn new(depth: usize) -> Self {
        ReorderBuffer {
            slots: Default::default(),
            next: None,
            highest: 0,
            buffered: 0,
            depth: depth.clamp(1, SLOTS - 1),
            stats: StreamStats::default(),
        }
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    fn extend(&self, seq: u16) -> u64 {
        let delta = seq.wrapping_sub(self.highest as u16) as i16 as i64;
        (self.highest as i64 + delta).max(0) as u64
    }

    /// Takes a packet and calls `out` for every packet that is now due, in order.
    pub fn push(&mut self, pkt: &RtpPacket<'_>, mut out: impl FnMut(Released<'_>)) {
        self.stats.received += 1;
        if pkt.payload.len() > MAX_PAYLOAD {
            self.stats.oversize += 1;
            return;
        }
        let ext = match self.next {
            None => {
                // First packet: start 2^16 in, so early reordering cannot go negative.
                let ext = (1u64 << 16) + pkt.sequence as u64;
                self.highest = ext;
                self.next = Some(ext);
                ext
            }
            Some(_) => self.extend(pkt.sequence),
        };
        let next = self.next.unwrap_or(ext);
        if ext < next {
            // A copy of a packet already released is a duplicate; anything else was given up on.
            if self.slots[(ext % SLOTS as u64) as usize].ext_seq == ext {
                self.stats.duplicate += 1;
            } else {
                self.stats.late += 1;
            }
            return;
        }
        // In order with nothing waiting, as almost every packet is: released
        // straight from the datagram. Copied into a slot first, it cost a copy
        // per packet and every stream ~1.4 KiB of slot buffers that only
        // reordering needs.
        if ext == next && self.buffered == 0 {
            let slot = &mut self.slots[(ext % SLOTS as u64) as usize];
            // A later copy of it is still known for a duplicate.
            slot.ext_seq = ext;
            slot.full = false;
            self.highest = self.highest.max(ext);
            self.next = Some(ext + 1);
            out(Released {
                sequence: ext,
                marker: pkt.marker,
                payload_type: pkt.payload_type,
                timestamp: pkt.timestamp,
                payload: pkt.payload,
            });
            return;
        }
        // Far ahead (a jump or a long outage): release everything and restart there.
        if ext >= next + SLOTS as u64 {
            self.flush_to(ext, &mut out);
        }
        let slot = &mut self.slots[(ext % SLOTS as u64) as usize];
        if slot.full && slot.ext_seq == ext {
            self.stats.duplicate += 1;
            return;
        }
        slot.ext_seq = ext;
        slot.full = true;
        slot.marker = pkt.marker;
        slot.payload_type = pkt.payload_type;
        slot.timestamp = pkt.timestamp;
        slot.data.clear();
        slot.data.extend_from_slice(pkt.payload);
        self.buffered += 1;
        self.highest = self.highest.max(ext);
        self.release(&mut out);
    }

    /// Releases in-order packets; skips a gap once `depth` packets wait behind it.
    fn release(&mut self, out: &mut impl FnMut(Released<'_>)) {
        while let Some(next) = self.next {
            let idx = (next % SLOTS as u64) as usize;
            let slot = &mut self.slots[idx];
            if slot.full && slot.ext_seq == next {
                slot.full = false;
                self.buffered -= 1;
                self.next = Some(next + 1);
                let s = &self.slots[idx];
                out(Released {
                    sequence: next,
                    marker: s.marker,
                    payload_type: s.payload_type,
                    timestamp: s.timestamp,
                    payload: &s.data,
                });
            } else if self.buffered >= self.depth {
                self.stats.lost += 1;
                self.next = Some(next + 1);
            } else {
                break;
            }
        }
    }

    fn flush_to(&mut self, ext: u64, out: &mut impl FnMut(Released<'_>)) {
        let depth = self.depth;
        self.depth = 1;
        while self.buffered > 0 {
            self.release(out);
        }
        self.depth = depth;
        let next = self.next.unwrap_or(ext);
        self.stats.lost += ext.saturating_sub(next);
        self.next = Some(ext);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16) -> RtpPacket<'static> {
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: seq as u32 * 160,
            ssrc: 1,
            payload: b"x",
        }
    }

    fn feed(buf: &mut ReorderBuffer, seqs: &[u16]) -> Vec<u64> {
        let mut got = Vec::new();
        for s in seqs {
            buf.push(&pkt(*s), |r| got.push(r.sequence & 0xffff));
        }
        got
    }

    #[test]
    fn packets_in_order_take_no_slot_buffer_and_their_copies_are_duplicates() {
        let mut b = ReorderBuffer::new(3);
        let mut got = Vec::new();
        for s in [7u16, 8, 9, 8] {
            let mut p = pkt(s);
            let payload = [s as u8; 160];
            p.payload = &payload;
            b.push(&p, |r| got.push((r.sequence & 0xffff, r.payload[0])));
        }
        assert_eq!(got, vec![(7, 7), (8, 8), (9, 9)]);
        assert_eq!(b.stats().duplicate, 1);
        assert!(b.slots.iter().all(|s| s.data.capacity() == 0));
        // Out of order, they wait in a slot as before.
        assert_eq!(feed(&mut b, &[11, 10]), vec![10, 11]);
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn reorders_swapped_packets() {
        let mut b = ReorderBuffer::new(3);
        assert_eq!(feed(&mut b, &[10, 12, 11, 13]), vec![10, 11, 12, 13]);
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn gap_is_declared_lost_after_depth_and_late_packet_dropped() {
        let mut b = ReorderBuffer::new(2);
        assert_eq!(feed(&mut b, &[1, 3, 4]), vec![1, 3, 4]);
        assert_eq!(b.stats().lost, 1);
        assert_eq!(feed(&mut b, &[2]), Vec::<u64>::new());
        assert_eq!(b.stats().late, 1);
    }

    #[test]
    fn wraps_and_counts_duplicates() {
        let mut b = ReorderBuffer::new(3);
        assert_eq!(
            feed(&mut b, &[65534, 65535, 0, 0, 1]),
            vec![65534, 65535, 0, 1]
        );
        assert_eq!(b.stats().duplicate, 1);
    }

    #[test]
    fn big_jump_restarts() {
        let mut b = ReorderBuffer::new(3);
        assert_eq!(
            feed(&mut b, &[100, 102, 5000, 5001]),
            vec![100, 102, 5000, 5001]
        );
        assert_eq!(b.stats().lost, 1 + (5000 - 103));
    }
}
