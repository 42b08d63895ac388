//! A conference member's leg: its voice decoded for the room on its own
//! worker, and the room's mix (without its own voice) played out to it.

use super::*;

impl Leg {
    /// A packet from a conference member: its voice is decoded here, on its
    /// own worker, and kept for the room until this leg's tick; its keys go
    /// to the call.
    pub(in crate::media) fn conferenced(&mut self, pkt: &RtpPacket<'_>) {
        let codec = self.setup.codec;
        if pkt.payload_type == codec.payload_type() {
            let n = pkt.payload.len().min(MAX_PAYLOAD);
            let mut pcm = [0i16; MAX_PAYLOAD];
            let samples = decode_payload(
                codec,
                self.coder.as_deref_mut(),
                &pkt.payload[..n],
                &mut pcm,
            );
            let pcm = &pcm[..samples];
            if let Some(det) = self.inband.as_deref_mut() {
                let events = &self.setup.events;
                det.feed(pcm, |k| events(MediaEvent::Dtmf(k)));
            }
            for t in &mut self.taps {
                t.heard(pcm);
            }
            let step = self.ts_step;
            for (k, chunk) in pcm.chunks(FRAME).enumerate() {
                if self.room_heard.len() == MAX_HEARD {
                    break;
                }
                let mut h = crate::media::mixer::Heard {
                    timestamp: pkt.timestamp.wrapping_add(k as u32 * step),
                    len: chunk.len(),
                    pcm: [0; FRAME],
                };
                h.pcm[..chunk.len()].copy_from_slice(chunk);
                self.room_heard.push(h);
            }
        } else if Some(pkt.payload_type) == self.setup.dtmf_pt {
            if let Some(key) = self.bridge_dtmf.on_payload(pkt.timestamp, pkt.payload) {
                (self.setup.events)(MediaEvent::Dtmf(key));
            }
        }
    }

    /// A room member's tick: hands the room what it heard and takes its
    /// next frame of the mix (one lock of the room).
    pub(in crate::media) fn exchange_with_room(&mut self) -> Option<[i16; FRAME]> {
        let room = self.room.as_ref()?;
        let mut pcm = [0i16; FRAME];
        let got =
            lock_room(room).exchange(self.setup.id, &self.room_heard, Instant::now(), &mut pcm);
        self.room_heard.clear();
        got.then_some(pcm)
    }

    /// Sends this leg's frame of the room's mix when the mixer made one, or
    /// silence to keep an answered leg's stream going.
    pub(in crate::media) fn play_out_room(
        &mut self,
        mix: Option<[i16; FRAME]>,
        out: &mut [u8; OUT],
        tx: &mut super::Outbox,
    ) {
        if self.held {
            self.talking = false;
            return;
        }
        let Some(pcm) = mix.filter(|_| self.room.is_some()) else {
            return self.send_silence(out, tx);
        };
        for t in &mut self.taps {
            t.sent(&pcm);
        }
        let n = self.encode(&pcm, &mut out[12..]);
        self.send_frame(out, n, tx);
    }
}
