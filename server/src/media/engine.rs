//! The media engine's handle: what call control asks of the media workers
//! (add a leg, play, bridge, record, ...), sent as commands to the worker
//! that owns the leg.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::Sender;

use super::outbox::MediaIo;
use super::prompt::Prompt;
use super::recorder::{RecordingHandle, Tap, WriterMsg};
use super::worker::{LegId, LegSetup, MediaStats, Room, Worker};
use crate::codec::{CodecOptions, Format};

pub(super) enum Command {
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
    /// Call this on every tick of this worker.
    OnTick(Box<dyn Fn() + Send>),
    /// Joins a leg to a room (`None`: leaves its room).
    Conference {
        leg: LegId,
        room: Option<Room>,
        muted: bool,
    },
}

/// The set of media workers.
pub struct MediaEngine {
    workers: Vec<Sender<Command>>,
    /// How busy each worker is (per mille), for placing new legs.
    busy: Arc<[AtomicU32]>,
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
        Self::start_with(threads, CodecOptions::default(), MediaIo::Auto)
    }

    /// Starts workers whose legs' codecs are tuned by `options`, sending as `io` says.
    pub fn start_with(threads: usize, options: CodecOptions, io: MediaIo) -> Self {
        let stats = Arc::new(MediaStats::default());
        let busy: Arc<[AtomicU32]> = (0..threads.max(1)).map(|_| AtomicU32::new(0)).collect();
        let workers = (0..threads.max(1))
            .map(|i| {
                let (tx, rx) = crossbeam_channel::unbounded();
                let stats = stats.clone();
                let busy = busy.clone();
                thread::Builder::new()
                    .name(format!("media-{i}"))
                    .spawn(move || {
                        Worker {
                            rx,
                            legs: Vec::new(),
                            rooms: Vec::new(),
                            index: HashMap::new(),
                            stats,
                            tally: super::tally::Tally::default(),
                            tick: 0,
                            options,
                            arrivals: super::arrival::Arrivals::new(),
                            outbox: super::outbox::Outbox::new(io).logged(i),
                            on_tick: Vec::new(),
                            meter: super::load::Meter::new(std::time::Instant::now()),
                            busy,
                            shard: i,
                        }
                        .run()
                    })
                    .expect("spawn media worker");
                tx
            })
            .collect();
        MediaEngine {
            workers,
            busy,
            stats,
            recordings: super::recorder::start_writer(),
        }
    }

    /// Calls `f` on every tick of the first worker (20 ms): a clock for
    /// work that needs one, without a thread of its own waking for it.
    pub fn on_tick(&self, f: impl Fn() + Send + 'static) {
        let _ = self.workers[0].send(Command::OnTick(Box::new(f)));
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
            None => super::load::pick(&self.busy) as u64,
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
    pub fn listen(
        &self,
        leg: LegId,
    ) -> (
        RecordingHandle,
        tokio::sync::mpsc::UnboundedReceiver<Vec<i16>>,
    ) {
        let handle = next_tap_handle();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// New legs go to the first worker while it has room, then to the next;
    /// a leg made near another shares its worker; and the first worker's
    /// measure of itself becomes what placement reads (idle: below the mark).
    /// The first worker is given a tick caller so that it ticks and never
    /// idles: only its meter writes its share, once a second.
    #[test]
    fn new_legs_pack_onto_the_first_worker_with_room() {
        let engine = MediaEngine::start(2);
        engine.on_tick(|| {});
        let shard = |leg: LegId| leg & 0xff;
        assert!((0..8).all(|_| shard(engine.new_leg_id(None)) == 0));
        engine.busy[0].store(super::super::load::PACK_BELOW, Ordering::Relaxed);
        let a = engine.new_leg_id(None);
        assert_eq!(shard(a), 1);
        assert_eq!(shard(engine.new_leg_id(Some(a))), 1);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(engine.busy[0].load(Ordering::Relaxed) < 100);
        assert_eq!(shard(engine.new_leg_id(None)), 0);
    }

    /// A worker left with nothing to tick for says it is idle before it
    /// waits for its next command (its meter stops with it).
    #[test]
    fn a_worker_going_idle_tells_placement() {
        let engine = MediaEngine::start(2);
        engine.busy[1].store(900, Ordering::Relaxed);
        // Any command wakes it; with no legs it goes idle again at once.
        engine.keep_alive((1 << 8) | 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while engine.busy[1].load(Ordering::Relaxed) != 0 {
            assert!(std::time::Instant::now() < deadline, "still 900");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
