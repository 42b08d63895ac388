//! What one leg of the load received during the measured window, judged
//! against what should have arrived.
//!
//! Every leg that speaks G.711 stamps its packets with a marker (a magic and
//! its own index in the first payload bytes; A-law survives the node's
//! decode and re-encode byte for byte), so media that reaches the wrong leg —
//! echoed back, cross-wired to another call, or two calls fed from one — is
//! seen, where identical silence on every leg would hide it.

/// Payload bytes that say "a load-generator packet" (then the index, big-endian).
const MAGIC: [u8; 4] = [0x4d, 0xb2, 0x1f, 0xe6];
/// Bytes the marker takes at the start of the payload.
pub const MARK_LEN: usize = 8;
/// A packet this much behind the stream's best transit time would miss a 60 ms jitter buffer.
const LATE_MS: f64 = 60.0;

/// Stamps leg `index`'s marker into a payload.
pub fn mark(payload: &mut [u8], index: u32) {
    payload[..4].copy_from_slice(&MAGIC);
    payload[4..MARK_LEN].copy_from_slice(&index.to_be_bytes());
}

/// The leg a payload came from, when it carries a marker.
pub fn marker(payload: &[u8]) -> Option<u32> {
    if payload.len() >= MARK_LEN && payload[..4] == MAGIC {
        Some(u32::from_be_bytes([
            payload[4], payload[5], payload[6], payload[7],
        ]))
    } else {
        None
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Rx {
    pub counting: bool,
    pub received: u64,
    base_transit: Option<f64>,
    pub late: u64,
    /// RTP clock of the stream, in ticks per millisecond.
    pub clock_khz: f64,
    /// This leg's own marker.
    pub own: u32,
    /// The leg whose marked media reached this one first.
    pub partner: Option<u32>,
    /// Packets that carried a marker.
    pub marked: u64,
    /// Marked packets that must not have come here: this leg's own (an echo)
    /// or a leg other than the first partner.
    pub crossed: u64,
    /// The last relayed packet's latency (µs), for jitter.
    pub last_latency_us: Option<u64>,
}

impl Rx {
    pub fn new(own: u32, clock_khz: f64) -> Rx {
        Rx {
            own,
            clock_khz,
            ..Rx::default()
        }
    }

    pub fn on_packet(&mut self, ts: u32, payload: &[u8], arrival_ms: f64) {
        if !self.counting {
            return;
        }
        self.received += 1;
        let khz = if self.clock_khz > 0.0 {
            self.clock_khz
        } else {
            8.0
        };
        let transit = arrival_ms - ts as f64 / khz;
        match self.base_transit {
            None => self.base_transit = Some(transit),
            Some(base) => {
                // The base creeps up slowly so a lasting clock step is not counted forever.
                let base = (base + 0.05).min(transit);
                self.base_transit = Some(base);
                if transit - base > LATE_MS {
                    self.late += 1;
                }
            }
        }
        if let Some(from) = marker(payload) {
            self.marked += 1;
            if from == self.own || self.partner.is_some_and(|p| p != from) {
                self.crossed += 1;
            }
            self.partner.get_or_insert(from);
        }
    }

    /// Packets missing against `expected` (every packet time of the window,
    /// less one for the window's edges).
    pub fn lost(&self, expected: u64) -> u64 {
        expected.saturating_sub(1).saturating_sub(self.received)
    }
}

/// Marked packets on legs whose partner is wrong as a whole: two legs fed
/// from one source, or a leg whose source hears a third leg.
pub fn miswired(legs: &[Rx]) -> u64 {
    let mut fed_by = std::collections::HashMap::<u32, u32>::new();
    for rx in legs {
        if let Some(p) = rx.partner {
            *fed_by.entry(p).or_default() += 1;
        }
    }
    let partner_of = |i: u32| legs.get(i as usize).and_then(|rx| rx.partner);
    legs.iter()
        .filter(|rx| {
            rx.partner
                .is_some_and(|p| fed_by[&p] > 1 || partner_of(p).is_some_and(|back| back != rx.own))
        })
        .map(|rx| rx.marked - rx.crossed)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(from: Option<u32>) -> Vec<u8> {
        let mut p = vec![0xd5u8; 160];
        if let Some(i) = from {
            mark(&mut p, i);
        }
        p
    }

    fn counting(own: u32) -> Rx {
        Rx {
            counting: true,
            ..Rx::new(own, 8.0)
        }
    }

    #[test]
    fn loss_is_counted_against_what_should_have_arrived() {
        let mut rx = counting(0);
        // A stream that stops early: 10 of 50 expected.
        for k in 0..10u32 {
            rx.on_packet(k * 160, &pkt(None), k as f64 * 20.0);
        }
        assert_eq!(rx.lost(50), 39);
        // A stream that never started is all loss.
        assert_eq!(counting(1).lost(50), 49);
        // A late packet is counted late.
        rx.on_packet(10 * 160, &pkt(None), 10.0 * 20.0 + 140.0);
        assert_eq!(rx.late, 1);
    }

    #[test]
    fn a_law_survives_the_node_decoding_and_re_encoding_it() {
        // The marker's premise: every A-law byte decodes and encodes back to itself.
        use hookline::codec::g711::G711;
        let all: Vec<u8> = (0..=255).collect();
        let mut pcm = vec![0i16; 256];
        G711::Alaw(8).decode(&all, &mut pcm);
        let mut back = vec![0u8; 256];
        G711::Alaw(8).encode(&pcm, &mut back);
        assert_eq!(back, all);
    }

    #[test]
    fn echoed_and_cross_wired_media_is_caught() {
        // Leg 0 hears leg 1 throughout: fine.
        let mut a = counting(0);
        let mut b = counting(1);
        for k in 0..5u32 {
            a.on_packet(k * 160, &pkt(Some(1)), k as f64 * 20.0);
            b.on_packet(k * 160, &pkt(Some(0)), k as f64 * 20.0);
        }
        assert_eq!((a.crossed, b.crossed, a.marked), (0, 0, 5));
        assert_eq!(miswired(&[a, b]), 0);
        // An echo: leg 0 hears itself.
        let mut echo = counting(0);
        echo.on_packet(0, &pkt(Some(0)), 0.0);
        assert_eq!(echo.crossed, 1);
        // Switched mid-call to another leg.
        a.on_packet(5 * 160, &pkt(Some(2)), 100.0);
        assert_eq!(a.crossed, 1);
        // Two legs fed from one source; the third hears nobody.
        let (mut x, mut y, mut z) = (counting(0), counting(1), counting(2));
        x.on_packet(0, &pkt(Some(2)), 0.0);
        y.on_packet(0, &pkt(Some(2)), 0.0);
        z.on_packet(0, &pkt(Some(0)), 0.0);
        assert_eq!(miswired(&[x, y, z]), 2);
        // Unmarked audio (a prompt, a mix) says nothing either way.
        let mut p = counting(0);
        p.on_packet(0, &pkt(None), 0.0);
        assert_eq!((p.marked, p.crossed), (0, 0));
    }
}
