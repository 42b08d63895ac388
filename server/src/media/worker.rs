//! Media workers: one thread per core owns a shard of legs and wakes every
//! 20 ms to read each leg's socket and send its next frame. No task, timer or
//! allocation per packet; prompts are pre-encoded and shared.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, IoSlice};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::dtmf_detect::DtmfDetector;
use super::prompt::{Prompt, FRAME};
use super::recorder::{RecordingHandle, Tap, WriterMsg};
use crate::codec::{CodecOptions, Format, FrameCoder};
use crate::rtp::dtmf::DtmfReceiver;
use crate::rtp::packet::{self, RtpPacket};
use crate::rtp::reorder::{ReorderBuffer, MAX_PAYLOAD};

/// Identifies a leg across the engine.
pub type LegId = u64;

const TICK: Duration = Duration::from_millis(20);
/// Streams tracked per leg (audio and DTMF may come on separate SSRCs).
const MAX_STREAMS: usize = 4;
/// Room for one packet we send: header and the largest payload.
const OUT: usize = 12 + MAX_PAYLOAD;

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

enum Command {
    Add(Box<LegSetup>),
    Play {
        leg: LegId,
        prompts: Vec<Arc<Prompt>>,
        token: u64,
        /// More audio follows with `Append` (streamed speech).
        open: bool,
    },
    /// The next piece of an open play; `None` closes it.
    Append {
        leg: LegId,
        token: u64,
        prompt: Option<Arc<Prompt>>,
    },
    Stop {
        leg: LegId,
    },

    Remove {
        leg: LegId,
    },
    /// The peer answered: where its media goes and in which format.
    SetRemote {
        leg: LegId,
        remote: SocketAddr,
        codec: Format,
        dtmf_pt: Option<u8>,
    },
    /// Relay media between two legs of the same worker (both directions).
    Bridge {
        a: LegId,
        b: LegId,
    },
    Unbridge {
        a: LegId,
        b: LegId,
    },
    /// Repeat the current prompts until stopped (ringback, music on hold).
    Loop {
        leg: LegId,
    },
    /// The leg is answered: it sends a packet every tick from now on
    /// (encoded silence when it has nothing else to send).
    KeepAlive {
        leg: LegId,
    },
    /// The peer put us on hold (stop sending) or resumed, maybe from a new address.
    Hold {
        leg: LegId,
        hold: bool,
        remote: SocketAddr,
    },
    /// Start a recording tap (the writer already has the file open).
    Record {
        leg: LegId,
        tap: Box<Tap>,
    },
    StopRecord {
        leg: LegId,
        handle: RecordingHandle,
        done: tokio::sync::oneshot::Sender<Result<u64, String>>,
    },
    /// Mix a conference room on this worker's tick.
    AddMixer(Room),
    /// Joins a leg to a room (`None`: leaves its room).
    Conference {
        leg: LegId,
        room: Option<Room>,
        muted: bool,
    },
}

/// A conference room's mixer, shared by the worker that mixes it and those
/// whose legs are in it.
pub type Room = Arc<Mutex<super::mixer::Mixer>>;

fn lock_room(room: &Room) -> std::sync::MutexGuard<'_, super::mixer::Mixer> {
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

/// Hands out RTP ports from a range, least recently used first.
pub struct PortPool {
    ip: IpAddr,
    free: Mutex<VecDeque<u16>>,
}

impl PortPool {
    /// Even ports of `first..=last` (odd ones are left for RTCP).
    pub fn new(ip: IpAddr, first: u16, last: u16) -> Self {
        let free = (first..=last).filter(|p| p % 2 == 0).collect();
        PortPool {
            ip,
            free: Mutex::new(free),
        }
    }

    /// Binds a non-blocking socket on the next free port.
    pub fn bind(&self) -> std::io::Result<(UdpSocket, u16)> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..free.len().min(64) {
            let Some(port) = free.pop_front() else { break };
            match UdpSocket::bind((self.ip, port)) {
                Ok(s) => {
                    s.set_nonblocking(true)?;
                    return Ok((s, port));
                }
                Err(_) => free.push_back(port),
            }
        }
        Err(std::io::Error::new(
            ErrorKind::AddrNotAvailable,
            "no free RTP port",
        ))
    }

    /// The RTCP socket beside an RTP port (port + 1), when it is free.
    pub fn bind_rtcp(&self, rtp_port: u16) -> Option<UdpSocket> {
        let s = UdpSocket::bind((self.ip, rtp_port.checked_add(1)?)).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    }

    /// Ports not held by any leg (what a test checks is given back).
    pub fn free_count(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn release(&self, port: u16) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(port);
    }
}

/// The set of media workers.
pub struct MediaEngine {
    workers: Vec<Sender<Command>>,
    pub stats: Arc<MediaStats>,
    recordings: Sender<WriterMsg>,
}

/// Recording and listening taps share one numbering (handles are unique per engine).
fn next_tap_handle() -> RecordingHandle {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl MediaEngine {
    /// Starts `threads` workers (one per core is the intent).
    pub fn start(threads: usize) -> Self {
        Self::start_with(threads, CodecOptions::default())
    }

    /// Starts workers whose legs' codecs are tuned by `options`.
    pub fn start_with(threads: usize, options: CodecOptions) -> Self {
        let stats = Arc::new(MediaStats::default());
        let workers = (0..threads.max(1))
            .map(|i| {
                let (tx, rx) = crossbeam_channel::unbounded();
                let stats = stats.clone();
                thread::Builder::new()
                    .name(format!("media-{i}"))
                    .spawn(move || {
                        Worker {
                            rx,
                            legs: Vec::new(),
                            rooms: Vec::new(),
                            index: HashMap::new(),
                            stats,
                            tick: 0,
                            options,
                        }
                        .run()
                    })
                    .expect("spawn media worker");
                tx
            })
            .collect();
        MediaEngine {
            workers,
            stats,
            recordings: super::recorder::start_writer(),
        }
    }

    fn shard(&self, leg: LegId) -> &Sender<Command> {
        &self.workers[((leg & 0xff) % self.workers.len() as u64) as usize]
    }

    /// A new leg id. Legs that will be bridged share a worker, so media is
    /// relayed without crossing threads: pass the other leg as `near`.
    /// The low byte of an id picks its worker.
    pub fn new_leg_id(&self, near: Option<LegId>) -> LegId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let shard = match near {
            Some(leg) => leg & 0xff,
            None => n % self.workers.len() as u64,
        };
        (n << 8) | shard
    }

    /// Sets where an outbound leg's media goes once the callee answered.
    pub fn set_remote(&self, leg: LegId, remote: SocketAddr, codec: Format, dtmf_pt: Option<u8>) {
        let _ = self.shard(leg).send(Command::SetRemote {
            leg,
            remote,
            codec,
            dtmf_pt,
        });
    }

    /// Connects two legs' media; both must come from `new_leg_id` with one `near` the other.
    pub fn bridge(&self, a: LegId, b: LegId) {
        let _ = self.shard(a).send(Command::Bridge { a, b });
    }

    pub fn unbridge(&self, a: LegId, b: LegId) {
        let _ = self.shard(a).send(Command::Unbridge { a, b });
    }

    /// Holds or resumes sending to a leg's peer, and moves it to `remote`.
    pub fn hold(&self, leg: LegId, hold: bool, remote: SocketAddr) {
        let _ = self.shard(leg).send(Command::Hold { leg, hold, remote });
    }

    /// From now on the leg never goes quiet: with nothing to play, relay or
    /// mix it sends encoded silence, so carriers' RTP inactivity timers, NAT
    /// bindings and phones that expect a stream keep the call while a plugin
    /// listens or records.
    pub fn keep_alive(&self, leg: LegId) {
        let _ = self.shard(leg).send(Command::KeepAlive { leg });
    }

    /// Makes the leg's current play request repeat until `stop` (ringback).
    pub fn loop_play(&self, leg: LegId) {
        let _ = self.shard(leg).send(Command::Loop { leg });
    }

    pub fn add_leg(&self, setup: LegSetup) {
        let _ = self.shard(setup.id).send(Command::Add(Box::new(setup)));
    }

    /// Plays prompts back to back; `PlayDone { token }` follows.
    pub fn play(&self, leg: LegId, prompts: Vec<Arc<Prompt>>, token: u64) {
        let _ = self.shard(leg).send(Command::Play {
            leg,
            prompts,
            token,
            open: false,
        });
    }

    /// Starts a play whose audio is still being made: pieces follow with
    /// `append`, and `PlayDone` comes after `append(.., None)` and the last
    /// piece played. A gap between pieces is silence, not the end.
    pub fn play_open(&self, leg: LegId, prompts: Vec<Arc<Prompt>>, token: u64) {
        let _ = self.shard(leg).send(Command::Play {
            leg,
            prompts,
            token,
            open: true,
        });
    }

    pub fn append(&self, leg: LegId, token: u64, prompt: Option<Arc<Prompt>>) {
        let _ = self.shard(leg).send(Command::Append { leg, token, prompt });
    }

    pub fn stop(&self, leg: LegId) {
        let _ = self.shard(leg).send(Command::Stop { leg });
    }

    /// Starts recording a leg into `path`: what it hears from its peer (mono),
    /// or both directions (stereo). With `silence_ms`, `Silence` is reported
    /// once the peer has talked and then been quiet that long.
    pub fn record(
        &self,
        leg: LegId,
        path: std::path::PathBuf,
        stereo: bool,
        silence_ms: u32,
    ) -> RecordingHandle {
        let handle = next_tap_handle();
        let _ = self.recordings.send(WriterMsg::Open {
            handle,
            path,
            stereo,
        });
        let tap = Tap::new(handle, stereo, silence_ms, self.recordings.clone());
        let _ = self.shard(leg).send(Command::Record {
            leg,
            tap: Box::new(tap),
        });
        handle
    }

    /// Hands the leg's received audio to a listener (speech recognition)
    /// until `stop_record` with the returned handle.
    pub fn listen(&self, leg: LegId) -> (RecordingHandle, crossbeam_channel::Receiver<Vec<i16>>) {
        let handle = next_tap_handle();
        let (tx, rx) = crossbeam_channel::unbounded();
        let _ = self.shard(leg).send(Command::Record {
            leg,
            tap: Box::new(Tap::stream(handle, tx)),
        });
        (handle, rx)
    }

    /// Stops a recording; the receiver gets the samples per channel written.
    pub fn stop_record(
        &self,
        leg: LegId,
        handle: RecordingHandle,
    ) -> tokio::sync::oneshot::Receiver<Result<u64, String>> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let _ = self
            .shard(leg)
            .send(Command::StopRecord { leg, handle, done });
        rx
    }

    pub fn remove_leg(&self, leg: LegId) {
        let _ = self.shard(leg).send(Command::Remove { leg });
    }

    /// A new conference room, mixed by one worker (rooms spread round-robin).
    pub fn new_room(&self) -> Room {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let room = Room::default();
        let i = NEXT.fetch_add(1, Ordering::Relaxed) as usize % self.workers.len();
        let _ = self.workers[i].send(Command::AddMixer(room.clone()));
        room
    }

    /// Puts a leg in a room: it hears everyone else mixed (and, unless
    /// `muted`, is heard). Ends its bridge or play.
    pub fn conference(&self, leg: LegId, room: Room, muted: bool) {
        let _ = self.shard(leg).send(Command::Conference {
            leg,
            room: Some(room),
            muted,
        });
    }

    /// Takes a leg out of its room.
    pub fn leave_conference(&self, leg: LegId) {
        let _ = self.shard(leg).send(Command::Conference {
            leg,
            room: None,
            muted: false,
        });
    }
}

struct Stream {
    source: SocketAddr,
    ssrc: u32,
    reorder: ReorderBuffer,
    dtmf: DtmfReceiver,
    last_tick: u64,
}

struct Leg {
    setup: LegSetup,
    /// Where media goes: the SDP address until symmetric RTP latches.
    remote: SocketAddr,
    latched: Option<SocketAddr>,
    last_latched_tick: u64,
    last_rx_tick: u64,
    timeout_ticks: Option<u64>,
    timed_out: bool,
    inband: Option<Box<DtmfDetector>>,
    /// Index (in the worker) of the leg this one's received media is relayed to.
    bridge: Option<usize>,
    /// Bridged media that needs decoding (a transcoding bridge) plays out from here.
    jitter: Option<Box<crate::rtp::jitter::JitterBuffer>>,
    concealed: u64,
    /// Added to a relayed packet's timestamp to continue this leg's clock.
    relay_ts_offset: Option<u32>,
    looped: Vec<Arc<Prompt>>,
    /// The peer holds the call: nothing is sent (prompts keep their place in time).
    held: bool,
    /// Answered: silence is sent when there is nothing else (see `keep_alive`).
    keep_alive: bool,
    /// The last packet sent was keep-alive silence.
    in_silence: bool,
    /// A play request is in progress (its `PlayDone` is still owed).
    playing: bool,
    /// Packets sent (prompts and relayed media) and valid RTP received.
    sent: u64,
    received: u64,
    rtcp_reports: u64,
    peer_report: Option<crate::rtp::rtcp::PeerReport>,
    streams: Vec<Stream>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    queue: VecDeque<Arc<Prompt>>,
    /// The play is open: an empty queue waits for more.
    streaming: bool,
    pos: usize,
    token: u64,
    talking: bool,
    /// Recordings in progress (empty for almost every leg: nothing decoded).
    taps: Vec<Tap>,
    /// The codec state of a non-G.711 leg (G.711 needs none).
    coder: Option<Box<FrameCoder>>,
    /// A second decoder for what this leg sends, when recordings hear it and
    /// the payloads are copied from a bridged peer in the same codec.
    sent_decoder: Option<Box<FrameCoder>>,
    options: CodecOptions,
    /// RTP timestamp units per 20 ms frame of this leg's format.
    ts_step: u32,
    /// A relayed key press across clocks: (source event timestamp, ours).
    dtmf_map: Option<(u32, u32)>,
    /// Key presses this leg receives while bridged (for a peer without RFC 4733).
    bridge_dtmf: DtmfReceiver,
    /// A key played as tones in what this leg sends: samples and position.
    key_tone: Option<(Vec<i16>, usize)>,
    /// The conference room this leg hears and talks to.
    room: Option<Room>,
    /// What it heard this tick, handed to the room in one go when it sends.
    room_heard: Vec<super::mixer::Heard>,
}

/// Frames a conference leg keeps between two ticks (a burst beyond is dropped,
/// as the room's jitter buffer would drop it late anyway).
const MAX_HEARD: usize = 8;

/// Decodes one payload of `codec` to node-rate audio; returns the samples.
fn decode_payload(
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
fn coder_for(format: Format, options: CodecOptions) -> Option<Box<FrameCoder>> {
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
fn next_frame<T: Copy>(
    queue: &mut VecDeque<Arc<Prompt>>,
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
    fn new(setup: LegSetup, tick: u64, options: CodecOptions) -> Self {
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
            last_rx_tick: tick,
            timeout_ticks: setup
                .rtp_timeout
                .map(|t| (t.as_millis() / TICK.as_millis()).max(1) as u64),
            timed_out: false,
            inband: setup.inband_dtmf.then(Box::default),
            bridge: None,
            jitter: None,
            concealed: 0,
            relay_ts_offset: None,
            looped: Vec::new(),
            held: false,
            keep_alive: false,
            in_silence: false,
            playing: false,
            sent: 0,
            received: 0,
            rtcp_reports: 0,
            peer_report: None,
            setup,
            streams: Vec::with_capacity(2),
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            queue: VecDeque::new(),
            streaming: false,
            pos: 0,
            token: 0,
            talking: false,
            taps: Vec::new(),
        }
    }

    /// Feeds recording taps with one of this leg's payloads, heard (`rx`) or sent.
    fn tap(&mut self, payload: &[u8], rx: bool) {
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

    fn finish_play(&mut self, interrupted: bool) {
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

    fn receive(
        &mut self,
        buf: &mut [u8],
        tick: u64,
        stats: &MediaStats,
        mut peer: Option<&mut Leg>,
    ) {
        loop {
            let (n, from) = match self.setup.socket.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // ICMP port unreachable from an earlier send: the peer is not
                // listening (yet); the call goes on.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(_) => return,
            };
            let data = &buf[..n];
            if packet::is_rtcp(data) {
                self.on_rtcp(data);
                continue;
            }
            let Ok(pkt) = RtpPacket::parse(data) else {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            stats.packets_in.fetch_add(1, Ordering::Relaxed);
            self.received += 1;
            self.last_rx_tick = tick;
            if self.setup.latch {
                self.latch(from, tick);
            }
            if let Some(peer) = peer.as_deref_mut() {
                // Bridged: the far leg hears this leg; only recordings listen here.
                self.bridged(&pkt, peer, stats);
                continue;
            }
            if self.room.is_some() {
                self.conferenced(&pkt);
                continue;
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
            stats
                .lost
                .fetch_add(after.lost - before.lost, Ordering::Relaxed);
            stats
                .late
                .fetch_add(after.late - before.late, Ordering::Relaxed);
        }
    }

    /// Passes a packet this leg received to its bridged peer: the same codec
    /// is copied as is, another is decoded here and played out by the peer
    /// from its jitter buffer (re-encoded on the peer's tick), RFC 4733 events
    /// are forwarded when the peer negotiated them.
    fn bridged(&mut self, pkt: &RtpPacket<'_>, peer: &mut Leg, stats: &MediaStats) {
        let codec = self.setup.codec;
        if pkt.payload_type == codec.payload_type() {
            let n = pkt.payload.len().min(MAX_PAYLOAD);
            let payload = &pkt.payload[..n];
            if codec.same_codec(peer.setup.codec) {
                self.tap(payload, true);
                return peer.relay(pkt.timestamp, pkt.marker, payload, false, stats);
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
                    peer.relay(pkt.timestamp, pkt.marker, &out[..samples], false, stats);
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
                peer.relay(pkt.timestamp, pkt.marker, pkt.payload, true, stats);
            } else {
                peer.relay_event_across_clocks(pkt, codec.clock_rate(), stats);
            }
        }
        // Comfort noise or unknown payloads: dropped.
    }

    /// A packet from a conference member: its voice is decoded here, on its
    /// own worker, and kept for the room until this leg's tick; its keys go
    /// to the call.
    fn conferenced(&mut self, pkt: &RtpPacket<'_>) {
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
                let mut h = super::mixer::Heard {
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
    fn exchange_with_room(&mut self) -> Option<[i16; FRAME]> {
        let room = self.room.as_ref()?;
        let mut pcm = [0i16; FRAME];
        let got =
            lock_room(room).exchange(self.setup.id, &self.room_heard, Instant::now(), &mut pcm);
        self.room_heard.clear();
        got.then_some(pcm)
    }

    /// Sends this leg's frame of the room's mix when the mixer made one, or
    /// silence to keep an answered leg's stream going.
    fn play_out_room(
        &mut self,
        mix: Option<[i16; FRAME]>,
        out: &mut [u8; OUT],
        stats: &MediaStats,
    ) {
        if self.held {
            self.talking = false;
            return;
        }
        let Some(pcm) = mix.filter(|_| self.room.is_some()) else {
            return self.send_silence(out, stats);
        };
        for t in &mut self.taps {
            t.sent(&pcm);
        }
        let n = self.encode(&pcm, &mut out[12..]);
        self.send_frame(out, n, stats);
    }

    /// One frame of encoded silence, if this leg keeps its stream alive. A
    /// G.711 frame is a fill; other codecs encode it (their state keeps time).
    fn send_silence(&mut self, out: &mut [u8; OUT], stats: &MediaStats) {
        if !self.keep_alive {
            self.talking = false;
            return;
        }
        let n = match self.setup.codec.g711() {
            Some(g) => {
                out[12..12 + FRAME].fill(g.silence());
                FRAME
            }
            None => self.encode(&[0; FRAME], &mut out[12..]),
        };
        // Silence continues the stream (no marker); the audio after it
        // starts a talkspurt (marker), as one after a pause would.
        if self.in_silence {
            self.talking = true;
            self.in_silence = false;
        }
        self.send_frame(out, n, stats);
        self.in_silence = true;
    }

    /// Plays `key` as DTMF tones over what this leg sends (100 ms, the
    /// shortest that detectors accept reliably, then 40 ms of silence).
    fn play_key(&mut self, key: char) {
        if let Some(mut samples) = super::tone::dtmf(&key.to_string()) {
            samples.truncate(800);
            samples.resize(800 + 320, 0);
            self.key_tone = Some((samples, 0));
        }
    }

    /// Replaces `pcm` with the key tone in progress, if any.
    fn overlay_key(&mut self, pcm: &mut [i16]) {
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
    fn push_decoded(&mut self, timestamp: u32, ts_per_frame: u32, pcm: &[i16]) {
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
    fn relay(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        event: bool,
        stats: &MediaStats,
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
            return self.send_packet(marker, pt, timestamp.wrapping_add(offset), &out[..n], stats);
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
            stats,
        );
    }

    /// A key press from a peer on another RTP clock (Opus' 48 kHz against
    /// 8 kHz): every packet of one event gets one timestamp of ours, and the
    /// duration is rescaled.
    fn relay_event_across_clocks(
        &mut self,
        pkt: &RtpPacket<'_>,
        src_clock: u32,
        stats: &MediaStats,
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
        self.send_packet(pkt.marker, pt, ts, &ev, stats);
    }

    /// Writes and sends one RTP packet of ours: our header and the payload
    /// as two pieces of one datagram, so nothing is copied or cleared.
    fn send_packet(
        &mut self,
        marker: bool,
        payload_type: u8,
        timestamp: u32,
        payload: &[u8],
        stats: &MediaStats,
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
        let parts = [IoSlice::new(&header), IoSlice::new(&payload[..n])];
        let sent = socket2::SockRef::from(&self.setup.socket)
            .send_to_vectored(&parts, &self.remote.into());
        if sent.is_ok() {
            stats.packets_out.fetch_add(1, Ordering::Relaxed);
            self.sent += 1;
        }
    }

    fn on_rtcp(&mut self, data: &[u8]) {
        self.rtcp_reports += 1;
        if let Some(r) = crate::rtp::rtcp::report_for(data, self.ssrc) {
            self.peer_report = Some(r);
        }
    }

    /// Reads the RTCP socket (every few ticks: reports come every few seconds).
    fn receive_rtcp(&mut self, buf: &mut [u8]) {
        let Some(sock) = self.setup.rtcp.take() else {
            return;
        };
        while let Ok(n) = sock.recv(buf) {
            if packet::is_rtcp(&buf[..n]) {
                self.on_rtcp(&buf[..n]);
            }
        }
        self.setup.rtcp = Some(sock);
    }

    /// Sends our RTCP report (SR while we send, else RR) to the peer's RTCP port.
    fn send_rtcp(&mut self) {
        let Some(sock) = &self.setup.rtcp else { return };
        let peer = self.streams.iter().max_by_key(|s| s.last_tick).map(|s| {
            let st = s.reorder.stats();
            crate::rtp::rtcp::ReceiverState {
                peer_ssrc: s.ssrc,
                fraction_lost: 0,
                cumulative_lost: st.lost as u32,
                highest_seq: 0,
            }
        });
        let sent = (self.sent > 0).then(|| {
            let ntp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| {
                    ((d.as_secs() + 2_208_988_800) << 32)
                        | (((d.subsec_nanos() as u64) << 32) / 1_000_000_000)
                })
                .unwrap_or(0);
            (
                self.sent as u32,
                (self.sent * FRAME as u64) as u32,
                self.timestamp,
                ntp,
            )
        });
        let mut out = [0u8; 128];
        let n = crate::rtp::rtcp::write_report(&mut out, self.ssrc, sent, peer, b"hookline");
        let to = SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1));
        let _ = sock.send_to(&out[..n], to);
    }

    /// Symmetric RTP: follow the peer's source address. Once latched, move only
    /// if the latched source has been silent for a second (a NAT rebinding), so
    /// a stray sender cannot take the stream over.
    fn latch(&mut self, from: SocketAddr, tick: u64) {
        match self.latched {
            Some(l) if l == from => self.last_latched_tick = tick,
            Some(_) if tick - self.last_latched_tick < 50 => {}
            _ => {
                self.latched = Some(from);
                self.remote = from;
                self.last_latched_tick = tick;
            }
        }
    }

    fn check_timeout(&mut self, tick: u64) {
        if let Some(limit) = self.timeout_ticks {
            if !self.timed_out && tick - self.last_rx_tick > limit {
                self.timed_out = true;
                (self.setup.events)(MediaEvent::RtpTimeout);
            }
        }
    }

    /// One frame from the jitter buffer of a transcoding bridge.
    fn play_out_jitter(&mut self, out: &mut [u8; OUT], stats: &MediaStats) {
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
        self.send_frame(out, n, stats);
    }

    /// Encodes one node-rate frame in this leg's format; returns the payload length.
    fn encode(&mut self, pcm: &[i16; FRAME], out: &mut [u8]) -> usize {
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
    fn send_frame(&mut self, out: &mut [u8; OUT], n: usize, stats: &MediaStats) {
        if n == 0 {
            return;
        }
        let marker = !self.talking || std::mem::take(&mut self.in_silence);
        self.talking = true;
        packet::write_header(
            &mut out[..12],
            marker,
            self.setup.codec.payload_type(),
            self.seq,
            self.timestamp,
            self.ssrc,
        );
        self.seq = self.seq.wrapping_add(1);
        match self.setup.socket.send_to(&out[..12 + n], self.remote) {
            Ok(_) => {
                stats.packets_out.fetch_add(1, Ordering::Relaxed);
                self.sent += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {} // e.g. ECONNREFUSED from an earlier ICMP: keep going.
        }
    }

    fn send(&mut self, out: &mut [u8; OUT], stats: &MediaStats) {
        self.timestamp = self.timestamp.wrapping_add(self.ts_step);
        if self.bridge.is_some() {
            return self.play_out_jitter(out, stats);
        }
        // A room member's voice reaches the room even while a prompt plays to it.
        let mix = self.exchange_with_room();
        if self.queue.is_empty() {
            return self.play_out_room(mix, out, stats);
        }
        let n = match self.setup.codec.g711() {
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
            self.send_frame(out, n, stats);
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

struct Worker {
    rx: Receiver<Command>,
    legs: Vec<Leg>,
    /// Conference rooms this worker mixes.
    rooms: Vec<Room>,
    /// Leg id -> index in `legs`.
    index: HashMap<LegId, usize>,
    stats: Arc<MediaStats>,
    tick: u64,
    options: CodecOptions,
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
        }
        self.legs[i].relay_ts_offset = None;
        self.legs[i].jitter = None;
    }

    fn remove(&mut self, id: LegId) {
        self.unbridge(id);
        let Some(i) = self.index.remove(&id) else {
            return;
        };
        let mut leg = self.legs.swap_remove(i);
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

    /// Applies queued commands; false once the engine is gone.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Add(setup)) => {
                    self.stats.legs.fetch_add(1, Ordering::Relaxed);
                    self.index.insert(setup.id, self.legs.len());
                    self.legs.push(Leg::new(*setup, self.tick, self.options));
                }
                Ok(Command::SetRemote {
                    leg,
                    remote,
                    codec,
                    dtmf_pt,
                }) => {
                    if let Some(l) = self.leg(leg) {
                        l.remote = remote;
                        l.setup.remote = remote;
                        if codec != l.setup.codec {
                            l.coder = coder_for(codec, l.options);
                            l.sent_decoder = None;
                            l.ts_step = codec.ts_per_frame();
                        }
                        l.setup.codec = codec;
                        l.setup.dtmf_pt = dtmf_pt;
                    }
                }
                Ok(Command::Bridge { a, b }) => {
                    self.unbridge(a);
                    self.unbridge(b);
                    if let (Some(&i), Some(&j)) = (self.index.get(&a), self.index.get(&b)) {
                        for (x, y) in [(i, j), (j, i)] {
                            self.legs[x].finish_play(true);
                            self.legs[x].bridge = Some(y);
                            self.legs[x].relay_ts_offset = None;
                        }
                    }
                }
                Ok(Command::Unbridge { a, b }) => {
                    self.unbridge(a);
                    self.unbridge(b);
                }
                Ok(Command::KeepAlive { leg }) => {
                    if let Some(l) = self.leg(leg) {
                        l.keep_alive = true;
                    }
                }
                Ok(Command::Hold { leg, hold, remote }) => {
                    if let Some(l) = self.leg(leg) {
                        l.held = hold;
                        if l.latched.is_none() {
                            l.remote = remote;
                        }
                        l.setup.remote = remote;
                    }
                }
                Ok(Command::Loop { leg }) => {
                    if let Some(l) = self.leg(leg) {
                        l.looped = l.queue.iter().cloned().collect();
                    }
                }
                Ok(Command::Append { leg, token, prompt }) => {
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
                Ok(Command::Play {
                    leg,
                    prompts,
                    token,
                    open,
                }) => {
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
                Ok(Command::Stop { leg }) => {
                    if let Some(l) = self.leg(leg) {
                        l.finish_play(true);
                    }
                }
                Ok(Command::Record { leg, tap }) => match self.leg(leg) {
                    Some(l) => l.taps.push(*tap),
                    None => tap.close(None),
                },
                Ok(Command::StopRecord { leg, handle, done }) => {
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
                Ok(Command::Remove { leg }) => self.remove(leg),
                Ok(Command::AddMixer(room)) => self.rooms.push(room),
                Ok(Command::Conference { leg, room, muted }) => {
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
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut out = [0u8; OUT];
        let mut next = Instant::now() + TICK;
        while self.commands() {
            self.tick += 1;
            let tick = self.tick;
            // Rooms mix first, so members on this worker send this tick's mix;
            // a room nobody else holds any more is dropped.
            self.rooms.retain(|r| Arc::strong_count(r) > 1);
            for room in &self.rooms {
                lock_room(room).mix();
            }
            for i in 0..self.legs.len() {
                match self.legs[i].bridge {
                    Some(j) => {
                        let (leg, peer) = pair_mut(&mut self.legs, i, j);
                        leg.receive(&mut buf, tick, &self.stats, Some(peer));
                    }
                    None => self.legs[i].receive(&mut buf, tick, &self.stats, None),
                }
                let leg = &mut self.legs[i];
                leg.check_timeout(tick);
                leg.send(&mut out, &self.stats);
                for t in &mut leg.taps {
                    if t.tick() {
                        (leg.setup.events)(MediaEvent::Silence { handle: t.handle });
                    }
                }
                // RTCP: read every 100 ms, report every 5 s (staggered by leg).
                if tick % 5 == (i as u64) % 5 {
                    leg.receive_rtcp(&mut buf);
                }
                if (tick + i as u64).is_multiple_of(250) && (leg.sent > 0 || leg.received > 0) {
                    leg.send_rtcp();
                }
            }
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
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

/// Two distinct elements of a slice, mutably.
fn pair_mut<T>(v: &mut [T], i: usize, j: usize) -> (&mut T, &mut T) {
    assert_ne!(i, j);
    if i < j {
        let (l, r) = v.split_at_mut(j);
        (&mut l[i], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(i);
        (&mut r[0], &mut l[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::g711::G711;
    use tokio::sync::mpsc;

    #[test]
    fn plays_a_prompt_and_hears_a_digit_through_real_sockets() {
        let engine = MediaEngine::start(1);
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31000, 31100);
        let (socket, port) = pool.bind().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        engine.add_leg(LegSetup {
            id: 1,
            socket,
            remote: peer.local_addr().unwrap(),
            codec: Format::PCMU,
            dtmf_pt: Some(101),
            inband_dtmf: false,
            rtp_timeout: None,
            latch: false,
            rtcp: None,
            events: Box::new(move |e| {
                let _ = tx.send(e);
            }),
        });
        // 50 ms of audio: three packets, the last padded with silence.
        let prompt = Arc::new(Prompt::from_pcm("p", vec![1000; 400]));
        engine.play(1, vec![prompt], 7);
        let mut buf = [0u8; 512];
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let n = peer.recv(&mut buf).unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            assert_eq!(p.payload.len(), FRAME);
            seqs.push(p.sequence);
        }
        assert_eq!(seqs[1], seqs[0].wrapping_add(1));
        // A digit from the peer, sent twice (redundant end packets).
        let mut pkt = [0u8; 16];
        packet::write_header(&mut pkt, true, 101, 1, 4000, 9);
        pkt[12..].copy_from_slice(&[2, 0x8a, 0, 160]);
        peer.send_to(&pkt, ("127.0.0.1", port)).unwrap();
        packet::write_header(&mut pkt, false, 101, 2, 4000, 9);
        peer.send_to(&pkt, ("127.0.0.1", port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut events = Vec::new();
        while Instant::now() < deadline && events.len() < 2 {
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            events.contains(&MediaEvent::PlayDone {
                token: 7,
                interrupted: false
            }),
            "{events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| **e == MediaEvent::Dtmf('2'))
                .count(),
            1,
            "{events:?}"
        );
        engine.remove_leg(1);
    }

    /// RFC 4733 on one side, none on the other: the key becomes tones.
    #[test]
    fn a_key_event_becomes_tones_for_a_peer_without_rfc4733() {
        let engine = MediaEngine::start(1);
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31400, 31500);
        let (sock_a, port_a) = pool.bind().unwrap();
        let (sock_b, _) = pool.bind().unwrap();
        let phone_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        phone_b
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let a = engine.new_leg_id(None);
        let b = engine.new_leg_id(Some(a));
        for (id, socket, remote, dtmf_pt) in [
            (a, sock_a, phone_a.local_addr().unwrap(), Some(101)),
            (b, sock_b, phone_b.local_addr().unwrap(), None),
        ] {
            engine.add_leg(LegSetup {
                id,
                socket,
                remote,
                codec: Format::PCMU,
                dtmf_pt,
                inband_dtmf: false,
                rtp_timeout: None,
                latch: false,
                rtcp: None,
                events: Box::new(|_| {}),
            });
        }
        engine.bridge(a, b);
        thread::sleep(Duration::from_millis(60));
        // Phone A talks (silence) and presses 7 between its audio packets.
        let mut heard = Vec::new();
        let mut buf = [0u8; 512];
        for k in 0..20u16 {
            let mut pkt = [0u8; 12 + FRAME];
            packet::write_header(&mut pkt, false, 0, k, k as u32 * 160, 5);
            pkt[12..].fill(0xff);
            phone_a.send_to(&pkt, ("127.0.0.1", port_a)).unwrap();
            if k == 3 {
                let mut ev = [0u8; 16];
                packet::write_header(&mut ev, true, 101, 100, 480, 5);
                ev[12..].copy_from_slice(&[7, 10, 0, 160]);
                phone_a.send_to(&ev, ("127.0.0.1", port_a)).unwrap();
            }
            thread::sleep(Duration::from_millis(20));
            while let Ok(n) = phone_b.recv(&mut buf) {
                let p = RtpPacket::parse(&buf[..n]).unwrap();
                assert_eq!(p.payload_type, 0, "no telephone-event towards B");
                let mut pcm = vec![0i16; p.payload.len()];
                G711::Ulaw(0).decode(p.payload, &mut pcm);
                heard.extend(pcm);
                if phone_b.peek(&mut buf).is_err() {
                    break;
                }
            }
        }
        let mut keys = String::new();
        crate::media::dtmf_detect::DtmfDetector::default().feed(&heard, |k| keys.push(k));
        assert_eq!(keys, "7", "{} samples heard", heard.len());
        engine.remove_leg(a);
        engine.remove_leg(b);
    }

    #[test]
    fn bridge_relays_and_transcodes_between_laws() {
        let engine = MediaEngine::start(2);
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31200, 31300);
        let (sock_a, port_a) = pool.bind().unwrap();
        let (sock_b, _) = pool.bind().unwrap();
        let phone_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        phone_b
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let a = engine.new_leg_id(None);
        let b = engine.new_leg_id(Some(a));
        let setup = |id, socket, remote, codec| LegSetup {
            id,
            socket,
            remote,
            codec,
            dtmf_pt: None,
            inband_dtmf: false,
            rtp_timeout: None,
            latch: false,
            rtcp: None,
            events: Box::new(|_| {}),
        };
        engine.add_leg(setup(
            a,
            sock_a,
            phone_a.local_addr().unwrap(),
            Format::PCMU,
        ));
        engine.add_leg(setup(
            b,
            sock_b,
            "127.0.0.1:9".parse().unwrap(),
            Format::PCMU,
        ));
        // The callee answered with A-law at phone_b.
        engine.set_remote(b, phone_b.local_addr().unwrap(), Format::PCMA, None);
        engine.bridge(a, b);
        thread::sleep(Duration::from_millis(60));
        let pcm: Vec<i16> = (0..160)
            .map(|n| ((n as f64 / 5.0).sin() * 8000.0) as i16)
            .collect();
        let mut ulaw = [0u8; 160];
        G711::Ulaw(0).encode(&pcm, &mut ulaw);
        let mut pkt = [0u8; 172];
        pkt[12..].copy_from_slice(&ulaw);
        for seq in 0..3u16 {
            packet::write_header(
                &mut pkt,
                seq == 0,
                0,
                500 + seq,
                8000 + seq as u32 * 160,
                77,
            );
            phone_a.send_to(&pkt, ("127.0.0.1", port_a)).unwrap();
        }
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = phone_b.recv(&mut buf).unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            got.push((p.payload_type, p.sequence, p.timestamp, p.payload.to_vec()));
        }
        assert!(got.iter().all(|g| g.0 == 8), "relayed as PCMA");
        assert_eq!(got[1].1, got[0].1.wrapping_add(1));
        assert_eq!(got[1].2.wrapping_sub(got[0].2), 160, "source timing kept");
        let mut back = [0i16; 160];
        G711::Alaw(8).decode(&got[0].3, &mut back);
        let err: f64 = pcm
            .iter()
            .zip(back)
            .map(|(x, y)| (*x as f64 - y as f64).abs())
            .sum::<f64>()
            / 160.0;
        assert!(err < 150.0, "transcoded audio differs: mean error {err}");
        engine.remove_leg(a);
        engine.remove_leg(b);
    }
}
