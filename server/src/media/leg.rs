//! One leg's media: what it received (reorder, jitter, DTMF, relay to a
//! bridged peer, a room), and what it sends every 20 ms (prompts, the
//! relayed or mixed audio, silence). Sans-IO: the worker reads the leg's
//! socket and hands it each datagram; what the leg sends is queued in the
//! worker's `Outbox`.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use super::dtmf_detect::DtmfDetector;
use super::outbox::Outbox;
use super::play_queue::PlayQueue;
use super::prompt::{Prompt, FRAME};
use super::recorder::Tap;
use super::tally::Tally;
use super::worker::{lock_room, LegSetup, MediaEvent, Room, MAX_STREAMS, OUT, TICK};
use crate::codec::g711::G711;
use crate::codec::{CodecOptions, Format, FrameCoder};
use crate::rtp::dtmf::DtmfReceiver;
use crate::rtp::packet::{self, RtpPacket};
use crate::rtp::reorder::{ReorderBuffer, MAX_PAYLOAD};

/// Ticks the latched source must be silent before another may take over (1 s).
pub(super) const RELATCH_TICKS: u64 = 50;

pub(super) struct Stream {
    pub(super) source: SocketAddr,
    pub(super) ssrc: u32,
    pub(super) reorder: ReorderBuffer,
    pub(super) dtmf: DtmfReceiver,
    pub(super) last_tick: u64,
}

pub(super) struct Leg {
    pub(super) setup: LegSetup,
    /// Where media goes: the SDP address until symmetric RTP latches.
    pub(super) remote: SocketAddr,
    pub(super) latched: Option<SocketAddr>,
    pub(super) last_latched_tick: u64,
    /// The last tick media came from `remote` (see `leg_connect`).
    pub(super) remote_heard: Option<u64>,
    /// The address the leg's socket is connected to.
    pub(super) connected: Option<SocketAddr>,
    pub(super) last_rx_tick: u64,
    pub(super) timeout_ticks: Option<u64>,
    pub(super) timed_out: bool,
    pub(super) inband: Option<Box<DtmfDetector>>,
    /// Index (in the worker) of the leg this one's received media is relayed to.
    pub(super) bridge: Option<usize>,
    /// Its socket is in the worker's epoll set (bridged: read on arrival).
    pub(super) watched: bool,
    /// Its RTCP socket is in the worker's epoll set: read when a report
    /// comes (every few seconds), not polled.
    pub(super) rtcp_watched: bool,
    /// Bridged media that needs decoding (a transcoding bridge) plays out from here.
    pub(super) jitter: Option<Box<crate::rtp::jitter::JitterBuffer>>,
    pub(super) concealed: u64,
    /// Added to a relayed packet's timestamp to continue this leg's clock.
    pub(super) relay_ts_offset: Option<u32>,
    pub(super) looped: Vec<Arc<Prompt>>,
    /// The peer holds the call: nothing is sent (prompts keep their place in time).
    pub(super) held: bool,
    /// Answered: silence is sent when there is nothing else (see `keep_alive`).
    pub(super) keep_alive: bool,
    /// The last packet sent was keep-alive silence.
    pub(super) in_silence: bool,
    /// Silence frames encoded so far, and the settled one sent from then on
    /// (codecs other than G.711).
    pub(super) silent_frames: u8,
    pub(super) silence: Option<Box<[u8]>>,
    /// A play request is in progress (its `PlayDone` is still owed).
    pub(super) playing: bool,
    /// Packets sent (prompts and relayed media; counted as queued for the
    /// worker's flush) and valid RTP received.
    pub(super) sent: u64,
    pub(super) received: u64,
    pub(super) rtcp_reports: u64,
    pub(super) peer_report: Option<crate::rtp::rtcp::PeerReport>,
    pub(super) streams: Vec<Stream>,
    pub(super) ssrc: u32,
    pub(super) seq: u16,
    pub(super) timestamp: u32,
    pub(super) queue: PlayQueue,
    /// The play is open: an empty queue waits for more.
    pub(super) streaming: bool,
    pub(super) pos: usize,
    pub(super) token: u64,
    pub(super) talking: bool,
    /// Recordings in progress (empty for almost every leg: nothing decoded).
    pub(super) taps: Vec<Tap>,
    /// The codec state of a non-G.711 leg (G.711 needs none).
    pub(super) coder: Option<Box<FrameCoder>>,
    /// A second decoder for what this leg sends, when recordings hear it and
    /// the payloads are copied from a bridged peer in the same codec.
    pub(super) sent_decoder: Option<Box<FrameCoder>>,
    pub(super) options: CodecOptions,
    /// RTP timestamp units per 20 ms frame of this leg's format.
    pub(super) ts_step: u32,
    /// A relayed key press across clocks: (source event timestamp, ours).
    pub(super) dtmf_map: Option<(u32, u32)>,
    /// Key presses this leg receives while bridged (for a peer without RFC 4733).
    pub(super) bridge_dtmf: DtmfReceiver,
    /// A key played as tones in what this leg sends: samples and position.
    pub(super) key_tone: Option<(Vec<i16>, usize)>,
    /// The conference room this leg hears and talks to.
    pub(super) room: Option<Room>,
    /// What it heard this tick, handed to the room in one go when it sends.
    pub(super) room_heard: Vec<super::mixer::Heard>,
}

/// Frames a conference leg keeps between two ticks (a burst beyond is dropped,
/// as the room's jitter buffer would drop it late anyway).
/// Silence frames a codec encodes before its output is reused.
const SETTLED_SILENCE: u8 = 5;

pub(super) const MAX_HEARD: usize = 8;

/// Decodes one payload of `codec` to node-rate audio; returns the samples.
pub(super) fn decode_payload(
    codec: Format,
    coder: Option<&mut FrameCoder>,
    payload: &[u8],
    pcm: &mut [i16],
) -> usize {
    match (codec.g711(), coder) {
        (Some(g), _) => {
            let n = payload.len().min(pcm.len());
            g.decode(&payload[..n], &mut pcm[..n]);
            n
        }
        (None, Some(c)) => c.decode(payload, pcm),
        (None, None) => 0,
    }
}

/// The codec state a leg in `format` needs (none for G.711).
pub(super) fn coder_for(format: Format, options: CodecOptions) -> Option<Box<FrameCoder>> {
    if format.g711().is_some() {
        return None;
    }
    match FrameCoder::new(format, options) {
        Ok(c) => Some(Box::new(c)),
        Err(e) => {
            tracing::warn!("{} codec: {e}", format.name());
            None
        }
    }
}

/// Copies the next 20 ms of the prompt queue into `out` (as `pick` presents
/// each prompt); returns how much was filled.
pub(super) fn next_frame<T: Copy>(
    queue: &mut PlayQueue,
    pos: &mut usize,
    pick: impl Fn(&Prompt) -> &[T],
    out: &mut [T],
) -> usize {
    let mut filled = 0;
    while filled < out.len() {
        let Some(prompt) = queue.front() else { break };
        let audio = pick(prompt);
        let n = (audio.len() - *pos).min(out.len() - filled);
        out[filled..filled + n].copy_from_slice(&audio[*pos..*pos + n]);
        filled += n;
        *pos += n;
        if *pos >= audio.len() {
            queue.pop_front();
            *pos = 0;
        }
    }
    filled
}

impl Leg {
    pub(super) fn new(setup: LegSetup, tick: u64, options: CodecOptions) -> Self {
        Leg {
            coder: coder_for(setup.codec, options),
            sent_decoder: None,
            options,
            ts_step: setup.codec.ts_per_frame(),
            dtmf_map: None,
            bridge_dtmf: DtmfReceiver::default(),
            key_tone: None,
            room: None,
            room_heard: Vec::new(),
            remote: setup.remote,
            latched: None,
            last_latched_tick: tick,
            remote_heard: None,
            connected: None,
            last_rx_tick: tick,
            timeout_ticks: setup
                .rtp_timeout
                .map(|t| (t.as_millis() / TICK.as_millis()).max(1) as u64),
            timed_out: false,
            inband: setup.inband_dtmf.then(Box::default),
            bridge: None,
            watched: false,
            rtcp_watched: false,
            jitter: None,
            concealed: 0,
            relay_ts_offset: None,
            looped: Vec::new(),
            held: false,
            keep_alive: false,
            in_silence: false,
            silent_frames: 0,
            silence: None,
            playing: false,
            sent: 0,
            received: 0,
            rtcp_reports: 0,
            peer_report: None,
            setup,
            // Allocated by the first packet heard off a bridge, one stream
            // at a time: a bridged leg never has one, and a stream (its
            // reorder slots) is ~450 bytes.
            streams: Vec::new(),
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            queue: PlayQueue::default(),
            streaming: false,
            pos: 0,
            token: 0,
            talking: false,
            taps: Vec::new(),
        }
    }

    /// Feeds recording taps with one of this leg's payloads, heard (`rx`) or sent.
    pub(super) fn tap(&mut self, payload: &[u8], rx: bool) {
        if self.taps.is_empty() {
            return;
        }
        let mut pcm = [0i16; MAX_PAYLOAD];
        let codec = self.setup.codec;
        let coder = if rx || codec.g711().is_some() {
            self.coder.as_deref_mut()
        } else {
            // Sent payloads copied from a peer: their own decoder state.
            if self.sent_decoder.is_none() {
                self.sent_decoder = coder_for(codec, self.options);
            }
            self.sent_decoder.as_deref_mut()
        };
        let n = decode_payload(codec, coder, payload, &mut pcm);
        for t in &mut self.taps {
            if rx {
                t.heard(&pcm[..n]);
            } else {
                t.sent(&pcm[..n]);
            }
        }
    }

    pub(super) fn finish_play(&mut self, interrupted: bool) {
        self.looped.clear();
        self.streaming = false;
        if std::mem::take(&mut self.playing) {
            self.queue.clear();
            self.pos = 0;
            (self.setup.events)(MediaEvent::PlayDone {
                token: self.token,
                interrupted,
            });
        }
        self.talking = false;
    }

    /// One datagram this leg's socket received (the worker reads sockets;
    /// what a bridged peer relays on goes to `out`).
    pub(super) fn on_datagram(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        tick: u64,
        tally: &mut Tally,
        peer: Option<&mut Leg>,
        out: &mut Outbox,
    ) {
        // A stranger's datagram that was queued before the socket was
        // connected to its peer (the kernel drops those after).
        if self.connected.is_some_and(|c| c != from) {
            return;
        }
        if packet::is_rtcp(data) {
            self.on_rtcp(data);
            return;
        }
        let Ok(pkt) = RtpPacket::parse(data) else {
            tally.malformed += 1;
            return;
        };
        tally.packets_in += 1;
        self.received += 1;
        self.last_rx_tick = tick;
        if self.setup.latch {
            self.latch(from, tick);
        }
        self.heard_from(from, tick);
        if let Some(peer) = peer {
            // Bridged: the far leg hears this leg; only recordings listen here.
            self.bridged(&pkt, peer, out);
            return;
        }
        if self.room.is_some() {
            self.conferenced(&pkt);
            return;
        }
        let idx = match self
            .streams
            .iter()
            .position(|s| s.source == from && s.ssrc == pkt.ssrc)
        {
            Some(i) => i,
            None => {
                if self.streams.len() == MAX_STREAMS {
                    let oldest = (0..MAX_STREAMS)
                        .min_by_key(|i| self.streams[*i].last_tick)
                        .unwrap_or(0);
                    self.streams.swap_remove(oldest);
                }
                self.streams.reserve_exact(1);
                self.streams.push(Stream {
                    source: from,
                    ssrc: pkt.ssrc,
                    reorder: ReorderBuffer::new(3),
                    dtmf: DtmfReceiver::default(),
                    last_tick: tick,
                });
                self.streams.len() - 1
            }
        };
        let Stream {
            reorder,
            dtmf,
            last_tick,
            ..
        } = &mut self.streams[idx];
        *last_tick = tick;
        let before = reorder.stats();
        let dtmf_pt = self.setup.dtmf_pt;
        let codec = self.setup.codec;
        let events = &self.setup.events;
        let inband = &mut self.inband;
        let taps = &mut self.taps;
        let coder = &mut self.coder;
        reorder.push(&pkt, |r| {
            if Some(r.payload_type) == dtmf_pt {
                if let Some(key) = dtmf.on_payload(r.timestamp, r.payload) {
                    events(MediaEvent::Dtmf(key));
                }
            } else if r.payload_type == codec.payload_type()
                && (inband.is_some() || !taps.is_empty())
            {
                // Audio is decoded only when something listens to it.
                let mut pcm = [0i16; MAX_PAYLOAD];
                let n = decode_payload(codec, coder.as_deref_mut(), r.payload, &mut pcm);
                let pcm = &pcm[..n];
                if let Some(det) = inband.as_deref_mut() {
                    det.feed(pcm, |k| events(MediaEvent::Dtmf(k)));
                }
                for t in taps.iter_mut() {
                    t.heard(pcm);
                }
            }
        });
        let after = reorder.stats();
        tally.lost += after.lost - before.lost;
        tally.late += after.late - before.late;
    }

    /// Passes a packet this leg received to its bridged peer: the same codec
    /// is copied as is, another is decoded here and played out by the peer
    /// from its jitter buffer (re-encoded on the peer's tick), RFC 4733 events
    /// are forwarded when the peer negotiated them.
    pub(super) fn bridged(&mut self, pkt: &RtpPacket<'_>, peer: &mut Leg, tx: &mut Outbox) {
        let codec = self.setup.codec;
        if pkt.payload_type == codec.payload_type() {
            let n = pkt.payload.len().min(MAX_PAYLOAD);
            let payload = &pkt.payload[..n];
            if codec.same_codec(peer.setup.codec) {
                self.tap(payload, true);
                return peer.relay(pkt.timestamp, pkt.marker, payload, false, tx);
            }
            let mut pcm = [0i16; MAX_PAYLOAD];
            let samples = decode_payload(codec, self.coder.as_deref_mut(), payload, &mut pcm);
            for t in &mut self.taps {
                t.heard(&pcm[..samples]);
            }
            match peer.setup.codec.g711() {
                // G.711 law to law at an odd packet size: converted sample by
                // sample, keeping the source's timing (the jitter buffer
                // works in 20 ms frames).
                Some(dst) if codec.g711().is_some() && n != FRAME => {
                    let mut out = [0u8; MAX_PAYLOAD];
                    dst.encode(&pcm[..samples], &mut out[..samples]);
                    peer.relay(pkt.timestamp, pkt.marker, &out[..samples], false, tx);
                }
                _ => peer.push_decoded(pkt.timestamp, codec.ts_per_frame(), &pcm[..samples]),
            }
        } else if Some(pkt.payload_type) == self.setup.dtmf_pt {
            if peer.setup.dtmf_pt.is_none() {
                // The peer takes keys only as tones in the audio.
                if let Some(key) = self.bridge_dtmf.on_payload(pkt.timestamp, pkt.payload) {
                    peer.play_key(key);
                }
            } else if codec.clock_rate() == peer.setup.codec.clock_rate() {
                peer.relay(pkt.timestamp, pkt.marker, pkt.payload, true, tx);
            } else {
                peer.relay_event_across_clocks(pkt, codec.clock_rate(), tx);
            }
        }
        // Comfort noise or unknown payloads: dropped.
    }

    /// One frame of encoded silence, if this leg keeps its stream alive. A
    /// G.711 frame is a fill; other codecs encode it (their state keeps time).
    pub(super) fn send_silence(&mut self, out: &mut [u8; OUT], tx: &mut Outbox) {
        if !self.keep_alive {
            self.talking = false;
            return;
        }
        let n = match self.setup.codec.g711() {
            Some(g) => {
                out[12..12 + FRAME].fill(g.silence());
                FRAME
            }
            // Encoding silence costs as much as speech (Opus): a few frames
            // are encoded, until the coder has settled, then that frame is
            // sent again and again.
            None => match &self.silence {
                Some(frame) => {
                    out[12..12 + frame.len()].copy_from_slice(frame);
                    frame.len()
                }
                None => {
                    let n = self.encode(&[0; FRAME], &mut out[12..]);
                    self.silent_frames += 1;
                    if self.silent_frames >= SETTLED_SILENCE && n > 0 {
                        self.silence = Some(out[12..12 + n].into());
                    }
                    n
                }
            },
        };
        // Silence continues the stream (no marker); the audio after it
        // starts a talkspurt (marker), as one after a pause would.
        if self.in_silence {
            self.talking = true;
            self.in_silence = false;
        }
        self.send_frame(out, n, tx);
        self.in_silence = true;
    }

    /// Plays `key` as DTMF tones over what this leg sends (100 ms, the
    /// shortest that detectors accept reliably, then 40 ms of silence).
    pub(super) fn play_key(&mut self, key: char) {
        if let Some(mut samples) = super::tone::dtmf(&key.to_string()) {
            samples.truncate(800);
            samples.resize(800 + 320, 0);
            self.key_tone = Some((samples, 0));
        }
    }

    /// Replaces `pcm` with the key tone in progress, if any.
    pub(super) fn overlay_key(&mut self, pcm: &mut [i16]) {
        let Some((tone, pos)) = self.key_tone.as_mut() else {
            return;
        };
        let n = pcm.len().min(tone.len() - *pos);
        pcm[..n].copy_from_slice(&tone[*pos..*pos + n]);
        pcm[n..].fill(0);
        *pos += pcm.len();
        if *pos >= tone.len() {
            self.key_tone = None;
        }
    }

    /// Decoded audio from the bridged peer, played out on this leg's tick.
    pub(super) fn push_decoded(&mut self, timestamp: u32, ts_per_frame: u32, pcm: &[i16]) {
        let jb = self.jitter.get_or_insert_with(|| {
            Box::new(crate::rtp::jitter::JitterBuffer::with_clock(ts_per_frame))
        });
        if jb.ts_per_frame() != ts_per_frame {
            **jb = crate::rtp::jitter::JitterBuffer::with_clock(ts_per_frame);
        }
        let now = Instant::now();
        for (k, frame) in pcm.chunks(FRAME).enumerate() {
            jb.push(timestamp.wrapping_add(k as u32 * ts_per_frame), frame, now);
        }
    }

    /// Sends a payload from the bridged peer out of this leg: seq, SSRC and
    /// payload type are this leg's; timestamps keep the source's spacing.
    pub(super) fn relay(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        event: bool,
        tx: &mut Outbox,
    ) {
        if !event && self.key_tone.is_some() {
            // A key in progress replaces the relayed audio for its duration.
            let mut pcm = [0i16; FRAME];
            self.overlay_key(&mut pcm);
            let mut out = [0u8; MAX_PAYLOAD];
            let n = self.encode(&pcm, &mut out);
            let offset = *self
                .relay_ts_offset
                .get_or_insert(self.timestamp.wrapping_sub(timestamp));
            let pt = self.setup.codec.payload_type();
            for t in &mut self.taps {
                t.sent(&pcm);
            }
            return self.send_packet(marker, pt, timestamp.wrapping_add(offset), &out[..n], tx);
        }
        let payload_type = if event {
            self.setup.dtmf_pt.unwrap_or(101)
        } else {
            self.setup.codec.payload_type()
        };
        if !event {
            self.tap(payload, false);
        }
        let offset = *self
            .relay_ts_offset
            .get_or_insert(self.timestamp.wrapping_sub(timestamp));
        self.send_packet(
            marker,
            payload_type,
            timestamp.wrapping_add(offset),
            payload,
            tx,
        );
    }

    /// A key press from a peer on another RTP clock (Opus' 48 kHz against
    /// 8 kHz): every packet of one event gets one timestamp of ours, and the
    /// duration is rescaled.
    pub(super) fn relay_event_across_clocks(
        &mut self,
        pkt: &RtpPacket<'_>,
        src_clock: u32,
        tx: &mut Outbox,
    ) {
        if pkt.payload.len() < 4 {
            return;
        }
        let ts = match self.dtmf_map {
            Some((src, ours)) if src == pkt.timestamp => ours,
            _ => {
                self.dtmf_map = Some((pkt.timestamp, self.timestamp));
                self.timestamp
            }
        };
        let mut ev = [0u8; 4];
        ev.copy_from_slice(&pkt.payload[..4]);
        let duration = u16::from_be_bytes([ev[2], ev[3]]) as u64
            * self.setup.codec.clock_rate() as u64
            / src_clock.max(1) as u64;
        ev[2..4].copy_from_slice(&(duration.min(u16::MAX as u64) as u16).to_be_bytes());
        let pt = self.setup.dtmf_pt.unwrap_or(101);
        self.send_packet(pkt.marker, pt, ts, &ev, tx);
    }

    /// Writes and sends one RTP packet of ours: our header and the payload
    /// as two pieces of one datagram, so nothing is copied or cleared.
    pub(super) fn send_packet(
        &mut self,
        marker: bool,
        payload_type: u8,
        timestamp: u32,
        payload: &[u8],
        tx: &mut Outbox,
    ) {
        let mut header = [0u8; 12];
        let marker = marker || !self.talking || std::mem::take(&mut self.in_silence);
        self.talking = true;
        packet::write_header(
            &mut header,
            marker,
            payload_type,
            self.seq,
            timestamp,
            self.ssrc,
        );
        self.seq = self.seq.wrapping_add(1);
        let n = payload.len().min(MAX_PAYLOAD);
        tx.push(
            self.setup.socket.as_raw_fd(),
            self.destination(),
            &[&header, &payload[..n]],
        );
        self.sent += 1;
    }

    /// Symmetric RTP: follow the peer's source address. Once latched, move only
    /// if the latched source has been silent for a second (a NAT rebinding), so
    /// a stray sender cannot take the stream over.
    pub(super) fn latch(&mut self, from: SocketAddr, tick: u64) {
        match self.latched {
            Some(l) if l == from => self.last_latched_tick = tick,
            Some(_) if tick - self.last_latched_tick < RELATCH_TICKS => {}
            _ => {
                self.latched = Some(from);
                self.remote = from;
                self.last_latched_tick = tick;
            }
        }
    }

    pub(super) fn check_timeout(&mut self, tick: u64) {
        if let Some(limit) = self.timeout_ticks {
            if !self.timed_out && tick - self.last_rx_tick > limit {
                self.timed_out = true;
                (self.setup.events)(MediaEvent::RtpTimeout);
            }
        }
    }

    /// One frame from the jitter buffer of a transcoding bridge.
    pub(super) fn play_out_jitter(&mut self, out: &mut [u8; OUT], tx: &mut Outbox) {
        let Some(jb) = self.jitter.as_deref_mut() else {
            return;
        };
        let mut pcm = [0i16; FRAME];
        let played = jb.pop(&mut pcm);
        let silent = played == crate::rtp::jitter::Played::Silence && self.key_tone.is_none();
        if silent || self.held {
            self.talking = false;
            return;
        }
        if played == crate::rtp::jitter::Played::Concealed {
            self.concealed += 1;
        }
        self.overlay_key(&mut pcm);
        for t in &mut self.taps {
            t.sent(&pcm);
        }
        let n = self.encode(&pcm, &mut out[12..]);
        self.send_frame(out, n, tx);
    }

    /// Encodes one node-rate frame in this leg's format; returns the payload length.
    pub(super) fn encode(&mut self, pcm: &[i16; FRAME], out: &mut [u8]) -> usize {
        match (self.setup.codec.g711(), self.coder.as_deref_mut()) {
            (Some(g), _) => {
                g.encode(pcm, &mut out[..FRAME]);
                FRAME
            }
            (None, Some(c)) => c.encode(pcm, out),
            (None, None) => 0,
        }
    }

    /// Sends the frame in `out[12..12 + n]` stamped with this leg's clock.
    pub(super) fn send_frame(&mut self, out: &mut [u8; OUT], n: usize, tx: &mut Outbox) {
        if n == 0 {
            return;
        }
        self.stamp(&mut out[..12]);
        tx.push(
            self.setup.socket.as_raw_fd(),
            self.destination(),
            &[&out[..12 + n]],
        );
        self.sent += 1;
    }

    /// Writes the header of our next packet in this leg's format and clock.
    fn stamp(&mut self, header: &mut [u8]) {
        let marker = !self.talking || std::mem::take(&mut self.in_silence);
        self.talking = true;
        packet::write_header(
            header,
            marker,
            self.setup.codec.payload_type(),
            self.seq,
            self.timestamp,
            self.ssrc,
        );
        self.seq = self.seq.wrapping_add(1);
    }

    /// The next 20 ms lie whole in the G.711 prompt playing.
    fn whole_frame_ahead(&self, g: G711) -> bool {
        self.queue
            .front()
            .is_some_and(|p| p.encoded(g).len().saturating_sub(self.pos) >= FRAME)
    }

    /// Sends the next 20 ms of the G.711 prompt playing straight from the
    /// prompt: one copy, into the outbox (an IVR's every packet; copying it
    /// into the frame buffer first was most of the node's memmove, 1.5 % of
    /// its CPU under the IVR load). Only when [`Leg::whole_frame_ahead`].
    fn send_prompt_frame(&mut self, g: G711, tx: &mut Outbox) {
        let mut header = [0u8; 12];
        self.stamp(&mut header);
        let (fd, to) = (self.setup.socket.as_raw_fd(), self.destination());
        let Some(prompt) = self.queue.front() else {
            return;
        };
        let audio = prompt.encoded(g);
        let end = self.pos + FRAME;
        tx.push(fd, to, &[&header, &audio[self.pos..end]]);
        self.sent += 1;
        self.pos = end;
        if end >= audio.len() {
            self.queue.pop_front();
            self.pos = 0;
        }
    }

    pub(super) fn send(&mut self, out: &mut [u8; OUT], tx: &mut Outbox) {
        self.timestamp = self.timestamp.wrapping_add(self.ts_step);
        if self.bridge.is_some() {
            return self.play_out_jitter(out, tx);
        }
        // A room member's voice reaches the room even while a prompt plays to it.
        let mix = self.exchange_with_room();
        if self.queue.is_empty() {
            return self.play_out_room(mix, out, tx);
        }
        let n = match self.setup.codec.g711() {
            // The fastest path: nothing listens to what the leg sends, and
            // the frame is whole in one prompt.
            Some(g) if self.taps.is_empty() && !self.held && self.whole_frame_ahead(g) => {
                self.send_prompt_frame(g, tx);
                0
            }
            // The fast path: prompts are pre-encoded in both laws.
            Some(g) => {
                let payload = &mut out[12..12 + FRAME];
                let filled = next_frame(&mut self.queue, &mut self.pos, |p| p.encoded(g), payload);
                payload[filled..].fill(g.silence());
                if !self.taps.is_empty() {
                    let mut frame = [0u8; FRAME];
                    frame.copy_from_slice(payload);
                    self.tap(&frame, false);
                }
                FRAME
            }
            None => {
                let mut pcm = [0i16; FRAME];
                next_frame(&mut self.queue, &mut self.pos, |p| &p.pcm, &mut pcm);
                for t in &mut self.taps {
                    t.sent(&pcm);
                }
                // Encoded even on hold: the codec state keeps its place in time.
                self.encode(&pcm, &mut out[12..])
            }
        };
        if self.held {
            // On hold the prompt keeps its place in time but nothing is sent;
            // the first packet after resuming carries the marker.
            self.talking = false;
        } else {
            // (n = 0: sent already, or nothing to send.)
            self.send_frame(out, n, tx);
        }
        if self.queue.is_empty() {
            if self.looped.is_empty() {
                if !self.streaming {
                    self.finish_play(false);
                }
            } else {
                self.queue.extend(self.looped.iter().cloned());
            }
        }
    }
}

#[path = "leg_connect.rs"]
mod connect;
#[path = "leg_room.rs"]
mod room;
#[path = "leg_rtcp.rs"]
mod rtcp;
