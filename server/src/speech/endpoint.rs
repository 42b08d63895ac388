//! Where an utterance starts and ends, from frame energy: sans-IO, fed 20 ms
//! frames. The engine hears the utterance plus a little audio before it (the
//! first syllable often starts under the threshold).

use std::collections::VecDeque;

use crate::media::prompt::FRAME;

/// Voiced frames in a row that start an utterance (ignores clicks).
const START_FRAMES: u32 = 3;
/// Frames kept from before the start (300 ms).
const PRE_ROLL: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Keep listening.
    Waiting,
    /// Speech began: `pre_roll()` then every frame goes to the engine.
    Started,
    /// Within the utterance.
    Speaking,
    /// The caller stopped talking (trailing silence) or talked too long.
    Ended { too_long: bool },
}

#[derive(Debug)]
pub struct Endpointer {
    end_quiet: u32,
    max_frames: u32,
    voiced_run: u32,
    quiet_run: u32,
    frames: u32,
    started: bool,
    ended: bool,
    pre_roll: VecDeque<[i16; FRAME]>,
}

impl Endpointer {
    /// `end_silence_ms` of quiet ends an utterance; `max_ms` caps its length.
    pub fn new(end_silence_ms: u32, max_ms: u32) -> Self {
        Endpointer {
            end_quiet: (end_silence_ms / 20).max(1),
            max_frames: (max_ms / 20).max(1),
            voiced_run: 0,
            quiet_run: 0,
            frames: 0,
            started: false,
            ended: false,
            pre_roll: VecDeque::with_capacity(PRE_ROLL + 1),
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// Frames heard before the start, oldest first (emptied by the call).
    pub fn pre_roll(&mut self) -> impl Iterator<Item = [i16; FRAME]> + '_ {
        self.pre_roll.drain(..)
    }

    pub fn push(&mut self, frame: &[i16; FRAME]) -> Point {
        if self.ended {
            return Point::Ended { too_long: false };
        }
        let voiced = crate::media::is_voiced(frame);
        if !self.started {
            self.voiced_run = if voiced { self.voiced_run + 1 } else { 0 };
            if self.voiced_run >= START_FRAMES {
                self.started = true;
                self.frames = self.voiced_run;
                return Point::Started;
            }
            if self.pre_roll.len() == PRE_ROLL {
                self.pre_roll.pop_front();
            }
            self.pre_roll.push_back(*frame);
            return Point::Waiting;
        }
        self.frames += 1;
        self.quiet_run = if voiced { 0 } else { self.quiet_run + 1 };
        if self.quiet_run >= self.end_quiet || self.frames >= self.max_frames {
            self.ended = true;
            return Point::Ended {
                too_long: self.quiet_run < self.end_quiet,
            };
        }
        Point::Speaking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: i16) -> [i16; FRAME] {
        let mut f = [0; FRAME];
        for (i, s) in f.iter_mut().enumerate() {
            *s = if i % 2 == 0 { level } else { -level };
        }
        f
    }

    #[test]
    fn an_utterance_starts_on_voice_and_ends_on_trailing_silence() {
        let mut e = Endpointer::new(400, 10_000);
        for _ in 0..20 {
            assert_eq!(e.push(&frame(10)), Point::Waiting);
        }
        assert_eq!(e.push(&frame(2000)), Point::Waiting);
        assert_eq!(e.push(&frame(2000)), Point::Waiting);
        assert_eq!(e.push(&frame(2000)), Point::Started);
        assert_eq!(e.pre_roll().count(), PRE_ROLL);
        // A short pause inside the utterance does not end it.
        for _ in 0..10 {
            assert_eq!(e.push(&frame(0)), Point::Speaking);
        }
        assert_eq!(e.push(&frame(2000)), Point::Speaking);
        for _ in 0..19 {
            assert_eq!(e.push(&frame(0)), Point::Speaking);
        }
        assert_eq!(e.push(&frame(0)), Point::Ended { too_long: false });
    }

    #[test]
    fn a_click_does_not_start_and_a_monologue_is_cut() {
        let mut e = Endpointer::new(400, 1000);
        assert_eq!(e.push(&frame(5000)), Point::Waiting);
        assert_eq!(e.push(&frame(0)), Point::Waiting);
        assert!(!e.started());
        let mut last = Point::Waiting;
        for _ in 0..60 {
            last = e.push(&frame(3000));
            if matches!(last, Point::Ended { .. }) {
                break;
            }
        }
        assert_eq!(last, Point::Ended { too_long: true });
    }
}
