//! Conference mixer. Sans-IO: members' decoded audio goes in with its RTP
//! timestamp and arrival time; once per 20 ms tick `mix` takes one frame from
//! each member's jitter buffer, sums them once, and gives every member the
//! sum minus its own voice (so nobody hears themselves). Members' legs may
//! live on any media worker: once per tick each hands over what it heard and
//! takes its next frame in one `exchange` (one lock of the room per member
//! and tick, none per packet).

use std::collections::VecDeque;
use std::time::Instant;

use super::prompt::FRAME;
use super::worker::LegId;
use crate::rtp::jitter::{JitterBuffer, Played};

/// Mixed frames a member may have waiting: enough to ride out two workers'
/// ticks drifting against each other, few enough to add no audible delay.
const OUT_DEPTH: usize = 3;

struct Member {
    id: LegId,
    /// Heard by the others? (a muted member only listens).
    muted: bool,
    input: JitterBuffer,
    /// This tick's frame from the member, and whether it went into the sum.
    own: [i16; FRAME],
    spoke: bool,
    out: VecDeque<[i16; FRAME]>,
}

impl Member {
    fn hear(&mut self, timestamp: u32, pcm: &[i16], now: Instant) {
        if self.muted {
            return;
        }
        let step = self.input.ts_per_frame();
        for (k, frame) in pcm.chunks(FRAME).enumerate() {
            self.input
                .push(timestamp.wrapping_add(k as u32 * step), frame, now);
        }
    }

    fn next(&mut self, out: &mut [i16; FRAME]) -> bool {
        match self.out.pop_front() {
            Some(f) => {
                *out = f;
                true
            }
            None => false,
        }
    }
}

/// A frame a member's leg decoded, kept on the leg until its tick's exchange.
#[derive(Clone, Copy)]
pub struct Heard {
    pub timestamp: u32,
    pub len: usize,
    pub pcm: [i16; FRAME],
}

/// One conference room's audio.
#[derive(Default)]
pub struct Mixer {
    members: Vec<Member>,
}

impl Mixer {
    /// Adds a leg whose RTP clock advances `ts_per_frame` per 20 ms.
    pub fn join(&mut self, id: LegId, muted: bool, ts_per_frame: u32) {
        self.leave(id);
        self.members.push(Member {
            id,
            muted,
            input: JitterBuffer::with_clock(ts_per_frame),
            own: [0; FRAME],
            spoke: false,
            out: VecDeque::with_capacity(OUT_DEPTH),
        });
    }

    pub fn leave(&mut self, id: LegId) {
        self.members.retain(|m| m.id != id);
    }

    pub fn set_muted(&mut self, id: LegId, muted: bool) {
        if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
            m.muted = muted;
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn member(&mut self, id: LegId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// Audio heard from a member: whole 20 ms frames from `timestamp` on.
    pub fn push(&mut self, id: LegId, timestamp: u32, pcm: &[i16], now: Instant) {
        if let Some(m) = self.member(id) {
            m.hear(timestamp, pcm, now);
        }
    }

    /// A member's tick: what it heard since the last one goes in, and its
    /// next mixed frame, if one is ready, comes out.
    pub fn exchange(
        &mut self,
        id: LegId,
        heard: &[Heard],
        now: Instant,
        out: &mut [i16; FRAME],
    ) -> bool {
        let Some(m) = self.member(id) else {
            return false;
        };
        for h in heard {
            m.hear(h.timestamp, &h.pcm[..h.len], now);
        }
        m.next(out)
    }

    /// One tick: every member gets the others' voices summed (clipped).
    pub fn mix(&mut self) {
        let mut total = [0i32; FRAME];
        for m in &mut self.members {
            let played = m.input.pop(&mut m.own);
            m.spoke = played != Played::Silence && !m.muted;
            if m.spoke {
                for (t, s) in total.iter_mut().zip(m.own.iter()) {
                    *t += *s as i32;
                }
            }
        }
        for m in &mut self.members {
            let mut frame = [0i16; FRAME];
            for (i, f) in frame.iter_mut().enumerate() {
                let own = if m.spoke { m.own[i] as i32 } else { 0 };
                *f = (total[i] - own).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            }
            if m.out.len() == OUT_DEPTH {
                m.out.pop_front();
            }
            m.out.push_back(frame);
        }
    }

    /// The member's next mixed frame, if one is ready.
    pub fn pull(&mut self, id: LegId, out: &mut [i16; FRAME]) -> bool {
        self.member(id).is_some_and(|m| m.next(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn level(f: &[i16]) -> i32 {
        f.iter().map(|s| s.unsigned_abs() as i32).max().unwrap_or(0)
    }

    /// Three members each send a constant level; after the playout delay
    /// each hears exactly the other two, a muted one is heard by nobody,
    /// and a member's own voice never comes back to it.
    #[test]
    fn each_member_hears_the_others_but_not_itself() {
        let mut m = Mixer::default();
        m.join(1, false, 160);
        m.join(2, false, 960); // Opus clock
        m.join(3, true, 160);
        let t0 = Instant::now();
        let mut heard = [[0i16; FRAME]; 4];
        for tick in 0..20u32 {
            let now = t0 + Duration::from_millis(20 * tick as u64);
            m.push(1, tick * 160, &[100; FRAME], now);
            m.push(2, tick * 960, &[1000; FRAME], now);
            m.push(3, tick * 160, &[10_000; FRAME], now);
            m.mix();
            for id in 1..=3 {
                let mut f = [0; FRAME];
                if m.pull(id, &mut f) {
                    heard[id as usize] = f;
                }
            }
        }
        assert_eq!(heard[1][0], 1000, "1 hears 2 only");
        assert_eq!(heard[2][0], 100, "2 hears 1 only");
        assert_eq!(heard[3][0], 1100, "the muted member hears both");
        m.leave(2);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn loud_sums_clip_instead_of_wrapping() {
        let mut m = Mixer::default();
        for id in 1..=3 {
            m.join(id, false, 160);
        }
        let t0 = Instant::now();
        let mut last = [0i16; FRAME];
        for tick in 0..10u32 {
            let now = t0 + Duration::from_millis(20 * tick as u64);
            for id in 1..=3 {
                m.push(id, tick * 160, &[30_000; FRAME], now);
            }
            m.mix();
            let mut f = [0; FRAME];
            if m.pull(3, &mut f) {
                last = f;
            }
        }
        assert_eq!(last[0], i16::MAX);
    }

    /// A member whose worker stalls gets at most OUT_DEPTH frames of backlog.
    #[test]
    fn a_slow_reader_does_not_build_up_delay() {
        let mut m = Mixer::default();
        m.join(1, false, 160);
        m.join(2, false, 160);
        for _ in 0..10 {
            m.mix();
        }
        let mut f = [0; FRAME];
        let mut n = 0;
        while m.pull(1, &mut f) {
            n += 1;
        }
        assert_eq!(n, OUT_DEPTH);
        assert_eq!(level(&f), 0);
        assert!(!m.pull(9, &mut f), "unknown member");
    }
}
