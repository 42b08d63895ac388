//! Media workers: one thread per core owns a shard of legs and wakes every
//! 20 ms to read each leg's socket and send its next frame. Between ticks it
//! waits on its bridged legs' sockets and relays what arrives at once
//! (`between_ticks.rs`, `arrival.rs`). No task, timer or allocation per packet; prompts are
//! pre-encoded and shared.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::arrival::Arrivals;
use super::engine::Command;
pub use super::engine::MediaEngine;
use super::inbox::{Inbox, BATCH};
use super::leg::{coder_for, Leg, MAX_HEARD};
use super::outbox::Outbox;
pub use super::ports::PortPool;

use super::recorder::RecordingHandle;
use crate::codec::{CodecOptions, Format};
use crate::rtp::reorder::MAX_PAYLOAD;

/// Identifies a leg across the engine.
pub type LegId = u64;

pub(super) const TICK: Duration = Duration::from_millis(20);
/// Streams tracked per leg (audio and DTMF may come on separate SSRCs).
pub(super) const MAX_STREAMS: usize = 4;
/// Room for one packet we send: header and the largest payload.
pub(super) const OUT: usize = 12 + MAX_PAYLOAD;

/// What a leg reports to its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A key was pressed (RFC 4733).
    Dtmf(char),
    /// The prompts of play request `token` ended.
    PlayDone { token: u64, interrupted: bool },
    /// No RTP arrived for the leg's timeout: the peer is gone.
    RtpTimeout,
    /// The leg was removed; what it received over its life.
    Final(LegStats),
    /// A recording with silence detection heard the caller stop talking.
    Silence { handle: RecordingHandle },
}

/// Receive quality of one leg over the call, for the call record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LegStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    /// RTCP reports received from the peer.
    pub rtcp_reports: u64,
    /// Frames concealed by the jitter buffer (transcoding bridges).
    pub concealed: u64,
    /// The peer's last word on our stream: packets it lost and its jitter (ms).
    pub peer_lost: Option<u32>,
    pub peer_jitter_ms: Option<u32>,
    /// The leg's audio codec at its end (`PCMU`, `opus`, ...).
    pub codec: &'static str,
}

/// Where a leg's events go (called on the media thread; must not block).
pub type EventSink = Box<dyn Fn(MediaEvent) + Send>;

/// Everything a worker needs to run a leg.
pub struct LegSetup {
    pub id: LegId,
    pub socket: UdpSocket,
    pub remote: SocketAddr,
    pub codec: Format,
    pub dtmf_pt: Option<u8>,
    /// Detect key tones in the audio (peers without RFC 4733).
    pub inband_dtmf: bool,
    /// Report `RtpTimeout` after this long without RTP.
    pub rtp_timeout: Option<Duration>,
    /// Send to where the peer's RTP comes from (symmetric RTP, for phones behind NAT).
    pub latch: bool,
    /// RTCP on RTP port + 1 (reports are also read from the RTP socket: rtcp-mux).
    pub rtcp: Option<UdpSocket>,
    pub events: EventSink,
}

/// A conference room's mixer, shared by the worker that mixes it and those
/// whose legs are in it.
pub type Room = Arc<Mutex<super::mixer::Mixer>>;

pub(super) fn lock_room(room: &Room) -> std::sync::MutexGuard<'_, super::mixer::Mixer> {
    room.lock().unwrap_or_else(|e| e.into_inner())
}

/// Engine-wide counters.
#[derive(Debug, Default)]
pub struct MediaStats {
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub lost: AtomicU64,
    pub late: AtomicU64,
    pub malformed: AtomicU64,
    /// Ticks that started more than one tick late (the worker was overloaded).
    pub late_ticks: AtomicU64,
    pub legs: AtomicU64,
}

pub(super) struct Worker {
    pub(super) rx: Receiver<Command>,
    pub(super) legs: Vec<Leg>,
    /// Conference rooms this worker mixes.
    pub(super) rooms: Vec<Room>,
    /// Leg id -> index in `legs`.
    pub(super) index: HashMap<LegId, usize>,
    pub(super) stats: Arc<MediaStats>,
    /// What the legs counted since the last flush.
    pub(super) tally: super::tally::Tally,
    pub(super) tick: u64,
    pub(super) options: CodecOptions,
    /// Bridged legs' sockets, waited on between ticks (none: relay on the tick).
    pub(super) arrivals: Option<Arrivals>,
    /// What the legs send, flushed at the end of each tick and of each burst
    /// of relayed arrivals.
    pub(super) outbox: Outbox,
    /// Called on every tick (the plugins' epoch clock).
    pub(super) on_tick: Vec<Box<dyn Fn() + Send>>,
    /// How busy this worker is, published in `busy[shard]` for placing legs.
    pub(super) meter: super::load::Meter,
    pub(super) busy: Arc<[std::sync::atomic::AtomicU32]>,
    pub(super) shard: usize,
}

impl Worker {
    fn leg(&mut self, id: LegId) -> Option<&mut Leg> {
        let i = *self.index.get(&id)?;
        self.legs.get_mut(i)
    }

    fn unbridge(&mut self, id: LegId) {
        let Some(&i) = self.index.get(&id) else {
            return;
        };
        if let Some(j) = self.legs[i].bridge.take() {
            self.legs[j].bridge = None;
            self.legs[j].relay_ts_offset = None;
            self.legs[j].jitter = None;
            self.watch(j, false);
        }
        self.legs[i].relay_ts_offset = None;
        self.legs[i].jitter = None;
        self.watch(i, false);
    }

    /// Bridged legs are read as their packets arrive; others on the tick.
    fn watch(&mut self, i: usize, on: bool) {
        if let Some(a) = &self.arrivals {
            a.watch(&mut self.legs[i], on);
        }
    }

    /// Reads leg `i`'s socket until it is drained, handing the leg each
    /// datagram (a bridged leg queues its relays in the outbox).
    pub(super) fn receive(&mut self, i: usize, inbox: &mut Inbox) {
        loop {
            let n = match inbox.recv(self.legs[i].setup.socket.as_raw_fd()) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // ICMP port unreachable from an earlier send: the peer is not
                // listening (yet); the call goes on.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(_) => return,
            };
            for k in 0..n {
                if let (data, Some(from)) = inbox.datagram(k) {
                    self.hand(i, data, from);
                }
            }
            if n < BATCH {
                return; // drained: no second call to find it empty
            }
        }
    }

    /// Gives leg `i` a datagram it received (a bridged leg queues its relay
    /// in the outbox).
    fn hand(&mut self, i: usize, data: &[u8], from: SocketAddr) {
        let tick = self.tick;
        match self.legs[i].bridge {
            Some(j) => {
                // `Command::Bridge` never bridges a leg to itself.
                let [leg, peer] = self
                    .legs
                    .get_disjoint_mut([i, j])
                    .expect("a leg bridged to itself");
                leg.on_datagram(
                    data,
                    from,
                    tick,
                    &mut self.tally,
                    Some(peer),
                    &mut self.outbox,
                );
            }
            None => {
                self.legs[i].on_datagram(data, from, tick, &mut self.tally, None, &mut self.outbox)
            }
        }
    }

    /// Reads leg `i`'s RTCP socket (reports come every few seconds).
    pub(super) fn receive_rtcp(&mut self, i: usize, buf: &mut [u8]) {
        let leg = &mut self.legs[i];
        let Some(sock) = leg.setup.rtcp.take() else {
            return;
        };
        while let Ok(n) = sock.recv(buf) {
            if crate::rtp::packet::is_rtcp(&buf[..n]) {
                leg.on_rtcp(&buf[..n]);
            }
        }
        leg.setup.rtcp = Some(sock);
    }

    /// Sends what the legs queued.
    pub(super) fn flush(&mut self) {
        self.outbox.flush();
        let sent = self.outbox.take_sent();
        self.stats.packets_out.fetch_add(sent, Ordering::Relaxed);
        self.tally.publish(&self.stats);
    }

    fn remove(&mut self, id: LegId) {
        self.unbridge(id);
        let Some(i) = self.index.remove(&id) else {
            return;
        };
        let mut leg = self.legs.swap_remove(i);
        if let Some(a) = &self.arrivals {
            a.unwatch_rtcp(&mut leg);
        }
        if let Some(room) = leg.room.take() {
            lock_room(&room).leave(id);
        }
        for tap in leg.taps.drain(..) {
            tap.close(None);
        }
        // Loss and lateness are counted where packets are reordered (not on the bridge relay).
        let mut total = LegStats {
            packets_sent: leg.sent,
            packets_received: leg.received,
            rtcp_reports: leg.rtcp_reports,
            concealed: leg.concealed,
            peer_lost: leg.peer_report.map(|r| r.cumulative_lost),
            peer_jitter_ms: leg.peer_report.map(|r| r.jitter / 8),
            codec: leg.setup.codec.name(),
            ..LegStats::default()
        };
        for st in &leg.streams {
            let r = st.reorder.stats();
            total.lost += r.lost;
            total.late += r.late;
            total.duplicate += r.duplicate;
        }
        (leg.setup.events)(MediaEvent::Final(total));
        self.stats.legs.fetch_sub(1, Ordering::Relaxed);
        // The last leg moved into slot i: fix its index and its peer's pointer.
        if let Some(moved) = self.legs.get(i) {
            self.index.insert(moved.setup.id, i);
            if let Some(p) = moved.bridge {
                self.legs[p].bridge = Some(i);
            }
        }
    }

    /// Applies every command waiting; false once the engine is gone.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => self.handle(cmd),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// With nothing to tick for (no legs, no rooms, no tick callers): waits
    /// for the next command instead of waking 50 times a second for nothing
    /// (a wake-up costs 30-70 µs of CPU on this VM); says so to placement
    /// first. False once the engine is gone.
    fn idle(&mut self) -> bool {
        self.busy[self.shard].store(0, Ordering::Relaxed);
        match self.rx.recv() {
            Ok(cmd) => {
                self.meter = super::load::Meter::new(Instant::now());
                self.handle(cmd);
                true
            }
            Err(_) => false,
        }
    }

    /// Applies one command from call control.
    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Add(setup) => {
                self.stats.legs.fetch_add(1, Ordering::Relaxed);
                self.index.insert(setup.id, self.legs.len());
                let mut leg = Leg::new(*setup, self.tick, self.options);
                if let Some(a) = &self.arrivals {
                    a.watch_rtcp(&mut leg);
                }
                self.legs.push(leg);
            }
            Command::SetRemote {
                leg,
                remote,
                codec,
                dtmf_pt,
            } => {
                let tick = self.tick;
                if let Some(l) = self.leg(leg) {
                    l.move_remote(remote, tick);
                    l.setup.remote = remote;
                    if codec != l.setup.codec {
                        l.coder = coder_for(codec, l.options);
                        // A new codec encodes its own silence.
                        l.silence = None;
                        l.silent_frames = 0;
                        l.sent_decoder = None;
                        l.ts_step = codec.ts_per_frame();
                    }
                    l.setup.codec = codec;
                    l.setup.dtmf_pt = dtmf_pt;
                }
            }
            Command::Bridge { a, b } => {
                self.unbridge(a);
                self.unbridge(b);
                if let (Some(&i), Some(&j)) = (self.index.get(&a), self.index.get(&b)) {
                    if i == j {
                        return; // a leg bridged to itself would relay into itself
                    }
                    for (x, y) in [(i, j), (j, i)] {
                        self.legs[x].finish_play(true);
                        self.legs[x].bridge = Some(y);
                        self.legs[x].relay_ts_offset = None;
                        self.watch(x, true);
                    }
                }
            }
            Command::Unbridge { a, b } => {
                self.unbridge(a);
                self.unbridge(b);
            }
            Command::KeepAlive { leg } => {
                if let Some(l) = self.leg(leg) {
                    l.keep_alive = true;
                }
            }
            Command::Hold { leg, hold, remote } => {
                let tick = self.tick;
                if let Some(l) = self.leg(leg) {
                    l.held = hold;
                    if l.latched.is_none() {
                        l.move_remote(remote, tick);
                    }
                    l.setup.remote = remote;
                }
            }
            Command::Loop { leg } => {
                if let Some(l) = self.leg(leg) {
                    l.looped = l.queue.iter().cloned().collect();
                }
            }
            Command::Append { leg, token, prompt } => {
                if let Some(l) = self.leg(leg) {
                    if l.playing && l.token == token && l.streaming {
                        match prompt {
                            Some(p) if !p.ulaw.is_empty() => l.queue.push_back(p),
                            Some(_) => {}
                            None => {
                                l.streaming = false;
                                if l.queue.is_empty() {
                                    l.finish_play(false);
                                }
                            }
                        }
                    }
                }
            }
            Command::Play {
                leg,
                prompts,
                token,
                open,
            } => {
                if let Some(l) = self.leg(leg) {
                    l.finish_play(true);
                    l.queue = prompts.into_iter().filter(|p| !p.ulaw.is_empty()).collect();
                    l.pos = 0;
                    l.token = token;
                    l.streaming = open;
                    l.playing = !l.queue.is_empty() || open;
                    if !l.playing {
                        (l.setup.events)(MediaEvent::PlayDone {
                            token,
                            interrupted: false,
                        });
                    }
                }
            }
            Command::Stop { leg } => {
                if let Some(l) = self.leg(leg) {
                    l.finish_play(true);
                }
            }
            Command::Record { leg, tap } => match self.leg(leg) {
                Some(l) => l.taps.push(*tap),
                None => tap.close(None),
            },
            Command::StopRecord { leg, handle, done } => {
                let tap = self.leg(leg).and_then(|l| {
                    let i = l.taps.iter().position(|t| t.handle == handle)?;
                    Some(l.taps.swap_remove(i))
                });
                match tap {
                    Some(t) => t.close(Some(done)),
                    None => {
                        let _ = done.send(Err("the recording had already ended".into()));
                    }
                }
            }
            Command::Remove { leg } => self.remove(leg),
            Command::AddMixer(room) => self.rooms.push(room),
            Command::OnTick(f) => self.on_tick.push(f),
            Command::Conference { leg, room, muted } => {
                self.unbridge(leg);
                if let Some(l) = self.leg(leg) {
                    l.finish_play(true);
                    if let Some(old) = l.room.take() {
                        lock_room(&old).leave(leg);
                    }
                    l.room_heard.clear();
                    if let Some(room) = room {
                        lock_room(&room).join(leg, muted, l.ts_step);
                        l.room = Some(room);
                        l.room_heard.reserve(MAX_HEARD);
                    }
                }
            }
        }
    }

    pub(super) fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut inbox = Inbox::new();
        let mut out = [0u8; OUT];
        let mut next = Instant::now() + TICK;
        while self.commands() {
            if self.legs.is_empty() && self.rooms.is_empty() && self.on_tick.is_empty() {
                if !self.idle() {
                    return;
                }
                next = Instant::now() + TICK;
                continue;
            }
            self.tick += 1;
            let tick = self.tick;
            for f in &self.on_tick {
                f();
            }
            // Rooms mix first, so members on this worker send this tick's mix;
            // a room nobody else holds any more is dropped.
            self.rooms.retain(|r| Arc::strong_count(r) > 1);
            for room in &self.rooms {
                lock_room(room).mix();
            }
            for i in 0..self.legs.len() {
                super::prefetch::legs_ahead(&self.legs, i);
                // A watched leg was read as its packets arrived.
                if !self.legs[i].watched {
                    self.receive(i, &mut inbox);
                }
                let leg = &mut self.legs[i];
                leg.check_timeout(tick);
                leg.sync_connection(tick);
                leg.send(&mut out, &mut self.outbox);
                for t in &mut leg.taps {
                    if t.tick() {
                        (leg.setup.events)(MediaEvent::Silence { handle: t.handle });
                    }
                }
                // RTCP: read every 100 ms, report every 5 s (staggered by leg).
                if (tick + i as u64).is_multiple_of(250) && (leg.sent > 0 || leg.received > 0) {
                    leg.send_rtcp(&mut self.outbox);
                }
                if !self.legs[i].rtcp_watched && tick % 5 == (i as u64) % 5 {
                    self.receive_rtcp(i, &mut buf);
                }
            }
            self.flush();
            let now = Instant::now();
            self.meter.tick(now, &self.busy[self.shard]);
            if next > now {
                self.between_ticks(now, next, &mut buf, &mut inbox);
                next += TICK;
            } else {
                if now - next > TICK {
                    // Overloaded: resynchronise rather than bursting to catch up.
                    self.stats.late_ticks.fetch_add(1, Ordering::Relaxed);
                    next = now;
                }
                next += TICK;
            }
        }
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
