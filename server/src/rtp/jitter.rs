//! Adaptive jitter buffer with packet-loss concealment, for paths that decode
//! (transcoding bridges; later recording, ASR, mixing). Sans-IO: packets go in
//! with their arrival time, one 20 ms frame comes out per playout tick.
//!
//! The playout delay follows the measured interarrival jitter (RFC 3550 A.8
//! estimator): target = 2 × jitter + one frame, clamped to 20–200 ms, moved one
//! frame at a time. A missing frame is concealed by repeating the last one at
//! half the level, then silence after three in a row.

use std::time::Instant;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
const SLOTS: usize = 16;
const MIN_DELAY: u32 = 1;
const MAX_DELAY: u32 = 10;

/// How a frame came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Played {
    /// Real audio.
    Audio,
    /// Concealed loss (previous frame, attenuated).
    Concealed,
    /// Nothing to play (before the stream starts, or long gaps).
    Silence,
}

/// Counters for the call record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub played: u64,
    pub concealed: u64,
    pub dropped_late: u64,
    /// Current playout delay in frames.
    pub delay_frames: u32,
    /// Estimated interarrival jitter in milliseconds.
    pub jitter_ms: u32,
}

/// One stream's jitter buffer.
pub struct JitterBuffer {
    frames: Box<[[i16; FRAME]; SLOTS]>,
    present: [Option<u64>; SLOTS],
    /// Next frame index (timestamp / FRAME) to play.
    next: Option<u64>,
    delay: u32,
    /// Ticks still to wait before the first frame plays (the initial delay).
    startup: u32,
    last: [i16; FRAME],
    concealed_run: u32,
    // RFC 3550 jitter in timestamp units ×16 (fixed point, as in A.8).
    jitter_x16: i64,
    last_transit: Option<i64>,
    epoch: Option<Instant>,
    stats: JitterStats,
    /// RTP timestamp units per 20 ms frame of the source (160 at 8 kHz, 960 for Opus).
    ts_per_frame: u32,
    /// The source's timestamps unwrapped to 64 bits (they wrap every few hours).
    last_ts: Option<u32>,
    ext_ts: i64,
    /// Since the last pop: a frame came too late to play, one came in time.
    late_in_tick: bool,
    fresh_in_tick: bool,
    /// Pops in a row between which frames came, every one too late.
    late_ticks: u32,
}

/// Pops in a row with nothing but late frames after which the playout
/// follows the stream again. A sender whose clock paused (its capture
/// stalled, and its timestamps go on from where they stopped) is behind the
/// playout for good: without this every later frame was dropped as late and
/// the member was silent for the rest of the call. A burst of late frames
/// after a network stall comes within one tick and does not count.
const LATE_TICKS_TO_FOLLOW: u32 = 3;

impl Default for JitterBuffer {
    fn default() -> Self {
        JitterBuffer {
            frames: Box::new([[0; FRAME]; SLOTS]),
            present: [None; SLOTS],
            next: None,
            delay: 2,
            startup: 0,
            last: [0; FRAME],
            concealed_run: 0,
            jitter_x16: 0,
            last_transit: None,
            epoch: None,
            stats: JitterStats::default(),
            ts_per_frame: FRAME as u32,
            last_ts: None,
            ext_ts: 0,
            late_in_tick: false,
            fresh_in_tick: false,
            late_ticks: 0,
        }
    }
}

impl JitterBuffer {
    /// A buffer for a source whose RTP clock advances `ts_per_frame` per 20 ms.
    pub fn with_clock(ts_per_frame: u32) -> Self {
        JitterBuffer {
            ts_per_frame: ts_per_frame.max(1),
            ..JitterBuffer::default()
        }
    }

    pub fn ts_per_frame(&self) -> u32 {
        self.ts_per_frame
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats {
            delay_frames: self.delay,
            jitter_ms: (self.jitter_x16 / 16 * 20 / self.ts_per_frame as i64) as u32,
            ..self.stats
        }
    }

    /// Takes one decoded 20 ms frame with its RTP timestamp and arrival time.
    pub fn push(&mut self, timestamp: u32, pcm: &[i16], arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let arrival_ts =
            ((arrival - epoch).as_micros() * self.ts_per_frame as u128 / 20_000) as i64;
        self.ext_ts = match self.last_ts {
            None => timestamp as i64,
            Some(last) => self.ext_ts + timestamp.wrapping_sub(last) as i32 as i64,
        };
        self.last_ts = Some(timestamp);
        let transit = arrival_ts - self.ext_ts;
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).abs();
            self.jitter_x16 += d - ((self.jitter_x16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
        // Index frames from a base far from zero so an early wrap cannot go negative.
        let index = ((self.ext_ts + (1 << 40)) / self.ts_per_frame as i64) as u64;
        if self.next.is_none() {
            self.startup = self.delay;
        }
        let next = *self.next.get_or_insert(index);
        if index < next {
            self.stats.dropped_late += 1;
            if self.late_ticks < LATE_TICKS_TO_FOLLOW {
                self.late_in_tick = true;
                return;
            }
            // Persistently behind: play from here.
            self.late_ticks = 0;
            self.restart_at(index);
        } else if index >= next + SLOTS as u64 {
            // Far ahead (a jump): restart the playout there.
            self.restart_at(index);
        }
        let slot = (index % SLOTS as u64) as usize;
        let n = pcm.len().min(FRAME);
        self.frames[slot][..n].copy_from_slice(&pcm[..n]);
        self.frames[slot][n..].fill(0);
        self.present[slot] = Some(index);
        self.fresh_in_tick = true;
    }

    /// Plays from frame `index` on, after the initial delay again.
    fn restart_at(&mut self, index: u64) {
        self.present = [None; SLOTS];
        self.next = Some(index);
        self.startup = self.delay;
    }

    /// Plays the next frame into `out` (one call per 20 ms tick).
    pub fn pop(&mut self, out: &mut [i16; FRAME]) -> Played {
        match (self.late_in_tick, self.fresh_in_tick) {
            (true, false) => self.late_ticks += 1,
            (_, true) => self.late_ticks = 0,
            (false, false) => {}
        }
        (self.late_in_tick, self.fresh_in_tick) = (false, false);
        let Some(next) = self.next else {
            out.fill(0);
            return Played::Silence;
        };
        if self.startup > 0 {
            self.startup -= 1;
            out.fill(0);
            return Played::Silence;
        }
        self.adapt();
        let slot = (next % SLOTS as u64) as usize;
        self.next = Some(next + 1);
        if self.present[slot] == Some(next) {
            self.present[slot] = None;
            *out = self.frames[slot];
            self.last = *out;
            self.concealed_run = 0;
            self.stats.played += 1;
            return Played::Audio;
        }
        self.concealed_run += 1;
        if self.concealed_run <= 3 {
            for (o, l) in out.iter_mut().zip(self.last.iter()) {
                *o = *l / 2;
            }
            self.last = *out;
            self.stats.concealed += 1;
            Played::Concealed
        } else {
            out.fill(0);
            Played::Silence
        }
    }

    /// Moves the playout delay one frame toward 2 × jitter + 1 frame.
    fn adapt(&mut self) {
        let jitter_frames = (self.jitter_x16 / 16) as u32 / self.ts_per_frame;
        let target = (2 * jitter_frames + 1).clamp(MIN_DELAY, MAX_DELAY);
        if let Some(next) = self.next.as_mut() {
            if target > self.delay && *next > 0 {
                self.delay += 1;
                *next -= 1; // play one frame later from now on
            } else if target < self.delay {
                self.delay -= 1;
                *next += 1; // skip ahead one frame
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(v: i16) -> [i16; FRAME] {
        [v; FRAME]
    }

    #[test]
    fn steady_stream_plays_every_frame_in_order() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::default();
        let mut out = [0i16; FRAME];
        let mut played = Vec::new();
        for i in 0..50u32 {
            jb.push(
                i * 160,
                &frame(i as i16 + 1),
                t0 + Duration::from_millis(20 * i as u64),
            );
            if jb.pop(&mut out) == Played::Audio {
                played.push(out[0]);
            }
        }
        // Everything after the initial delay comes out, in order, nothing concealed.
        assert!(played.len() >= 47, "{}", played.len());
        assert!(played.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(jb.stats().concealed, 0);
    }

    #[test]
    fn reordered_frames_are_put_back_and_a_loss_is_concealed() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::default();
        let mut out = [0i16; FRAME];
        let order = [0u32, 1, 3, 2, 4, 6, 7, 8, 9, 10]; // 5 is lost, 2/3 swapped
        let mut kinds = Vec::new();
        for (n, i) in order.iter().enumerate() {
            jb.push(
                i * 160,
                &frame(1000 + *i as i16),
                t0 + Duration::from_millis(20 * n as u64),
            );
            kinds.push((jb.pop(&mut out), out[0]));
        }
        for _ in 0..3 {
            kinds.push((jb.pop(&mut out), out[0]));
        }
        let audio: Vec<i16> = kinds
            .iter()
            .filter(|k| k.0 == Played::Audio)
            .map(|k| k.1)
            .collect();
        assert_eq!(
            audio,
            vec![1000, 1001, 1002, 1003, 1004, 1006, 1007, 1008, 1009, 1010]
        );
        let concealed: Vec<i16> = kinds
            .iter()
            .filter(|k| k.0 == Played::Concealed)
            .map(|k| k.1)
            .collect();
        assert_eq!(concealed, vec![502], "frame 5 replaced by half of frame 4");
    }

    #[test]
    fn delay_grows_with_jitter() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::default();
        let mut out = [0i16; FRAME];
        for i in 0..200u32 {
            // Arrivals wander by ±30 ms.
            let wobble = if i % 2 == 0 { 0 } else { 60 };
            jb.push(
                i * 160,
                &frame(1),
                t0 + Duration::from_millis(20 * i as u64 + wobble),
            );
            jb.pop(&mut out);
        }
        let s = jb.stats();
        assert!(s.jitter_ms >= 20, "{s:?}");
        assert!(s.delay_frames >= 4, "{s:?}");
    }

    /// One frame pushed (if any) and one popped per 20 ms tick; what played.
    fn run(
        jb: &mut JitterBuffer,
        t0: Instant,
        ticks: std::ops::Range<u32>,
        ts: impl Fn(u32) -> Option<u32>,
    ) -> Vec<Played> {
        let mut out = [0; FRAME];
        ticks
            .map(|t| {
                if let Some(ts) = ts(t) {
                    jb.push(ts, &frame(100), t0 + Duration::from_millis(20 * t as u64));
                }
                jb.pop(&mut out)
            })
            .collect()
    }

    /// A sender whose capture stalled for 300 ms and whose timestamps go on
    /// from where they stopped is heard again within a few frames (it was
    /// dropped as late for the rest of the call: a conference member silent
    /// to everyone).
    #[test]
    fn a_sender_whose_clock_paused_is_followed() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::default();
        run(&mut jb, t0, 0..20, |t| Some(t * 160));
        // Nothing for 15 ticks, then frame 20 onwards, one per tick.
        run(&mut jb, t0, 20..35, |_| None);
        let after = run(&mut jb, t0, 35..85, |t| Some((t - 15) * 160));
        let silent = after.iter().take_while(|p| **p != Played::Audio).count();
        assert!(
            silent <= 8,
            "{silent} ticks before the stream was heard again: {after:?}"
        );
        assert!(
            after[silent..].iter().all(|p| *p == Played::Audio),
            "{after:?}"
        );
    }

    /// Frames held up by the network and delivered in one burst are late
    /// once: the playout keeps its place and the stream after them plays.
    #[test]
    fn a_late_burst_does_not_move_the_playout() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::default();
        let mut out = [0; FRAME];
        run(&mut jb, t0, 0..20, |t| Some(t * 160));
        // Ticks 20..30 deliver nothing; at tick 30 frames 20..=30 come at once.
        run(&mut jb, t0, 20..30, |_| None);
        for f in 20..=30u32 {
            jb.push(f * 160, &frame(100), t0 + Duration::from_millis(600));
        }
        jb.pop(&mut out);
        let late = jb.stats().dropped_late;
        assert!(late >= 5, "{late}");
        let after = run(&mut jb, t0, 31..60, |t| Some(t * 160));
        assert!(after.iter().all(|p| *p == Played::Audio), "{after:?}");
    }

    #[test]
    fn timestamps_that_wrap_keep_playing() {
        let mut jb = JitterBuffer::with_clock(960);
        let t0 = Instant::now();
        let start = u32::MAX - 960 * 3;
        let mut out = [0; FRAME];
        let mut audio = 0;
        for i in 0..20u32 {
            jb.push(
                start.wrapping_add(i * 960),
                &frame(100),
                t0 + Duration::from_millis(20 * i as u64),
            );
            if jb.pop(&mut out) == Played::Audio {
                audio += 1;
            }
        }
        assert!(audio >= 17, "{audio} frames played across the wrap");
        assert_eq!(jb.stats().dropped_late, 0);
    }
}
