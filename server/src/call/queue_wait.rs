//! One caller's wait in a queue, sans-IO: told the time, the caller's place
//! and how many agents are free, it says what comes next — an announcement
//! of the place and the wait, ringing the department, the caller's keys
//! (leave, ask for a callback), or the end of the wait. The driver
//! (`queue.rs`) plays, rings and sleeps; this decides, so every rule is
//! tested in simulated time (`queue_wait_tests.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::queue::QueueExit;

/// How often the place and free agents are looked at again when nothing
/// else wakes the caller (a key, an announcement, the deadline).
pub const RECHECK: Duration = Duration::from_millis(500);

/// Keys pressed while an announcement or a ring was going on, kept for the
/// next look; the rest are dropped (a caller leaning on a key fills nothing).
const MAX_KEYS: usize = 16;

/// The queue's rules that one wait follows.
#[derive(Debug, Clone, Copy)]
pub struct WaitRules {
    /// Announcements every this long (counted from the end of the last);
    /// `None`: never.
    pub announce_every: Option<Duration>,
    /// The wait ends here, however it goes.
    pub timeout: Duration,
    pub leave_digit: Option<char>,
    pub callback_digit: Option<char>,
    /// Whether the caller's number can be called back.
    pub callable: bool,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Tell the caller their place and the estimated wait (with the callback
    /// offer when the queue has one), then call [`QueueWait::announced`].
    /// `late` is how long after its due time it came (a busy node shows);
    /// `new_position` is set when the place changed since the last one.
    Announce {
        position: usize,
        late: Duration,
        new_position: Option<usize>,
        offer_callback: Option<char>,
    },
    /// The caller's turn: ring the department, then call
    /// [`QueueWait::ring_ended`] if nobody answered.
    Ring,
    /// The caller asked for a callback: keep their place, say goodbye.
    Callback,
    /// The caller asked for a callback but cannot be called back: say so,
    /// the wait goes on.
    NoCallback,
    /// Nothing to do until this instant, a key, or the caller leaving.
    Wait(Instant),
    /// The wait is over.
    Exit(QueueExit),
}

/// One caller's wait.
#[derive(Debug)]
pub struct QueueWait {
    rules: WaitRules,
    deadline: Instant,
    /// When the next announcement is due (`None`: never, or one is playing).
    next_announce: Option<Instant>,
    last_position: usize,
    /// No new ring before this (the last one just failed).
    ring_after: Instant,
    keys: VecDeque<char>,
}

impl QueueWait {
    /// The caller joined at `now`; the first announcement is due at once.
    pub fn new(rules: WaitRules, now: Instant) -> QueueWait {
        QueueWait {
            deadline: now + rules.timeout,
            next_announce: rules.announce_every.map(|_| now),
            last_position: 0,
            ring_after: now,
            keys: VecDeque::new(),
            rules,
        }
    }

    /// A key the caller pressed.
    pub fn key(&mut self, k: char) {
        if self.keys.len() < MAX_KEYS {
            self.keys.push_back(k);
        }
    }

    /// What comes next, the caller being at `position` (1-based) with `free`
    /// agents free. Announcements come first (a caller who is not being
    /// served hears where they are), then keys, then the caller's turn, then
    /// the deadline.
    pub fn step(&mut self, now: Instant, position: usize, free: usize) -> Step {
        let served_now = position <= free;
        if let Some(due) = self.next_announce.filter(|d| now >= *d && !served_now) {
            // Due again only once this one has been heard (`announced`).
            self.next_announce = None;
            let new_position = (position != self.last_position).then_some(position);
            self.last_position = position;
            return Step::Announce {
                position,
                late: now - due,
                new_position,
                offer_callback: self.rules.callback_digit,
            };
        }
        while let Some(k) = self.keys.pop_front() {
            if Some(k) == self.rules.leave_digit {
                return Step::Exit(QueueExit::Left);
            }
            if Some(k) == self.rules.callback_digit {
                return if self.rules.callable {
                    Step::Callback
                } else {
                    Step::NoCallback
                };
            }
            // Any other key is dropped: kept, it would skip every
            // announcement as type-ahead.
        }
        if served_now && now >= self.ring_after {
            return Step::Ring;
        }
        if now >= self.deadline {
            return Step::Exit(QueueExit::Timeout);
        }
        Step::Wait(self.poll_timeout(now))
    }

    /// The announcement ended at `now`: the next is due a full interval
    /// later (counted from the end, or one longer than the interval would
    /// follow itself and the caller never hear music).
    pub fn announced(&mut self, now: Instant) {
        self.next_announce = self.rules.announce_every.map(|every| now + every);
    }

    /// The department rang and nobody answered: the caller waits on (a
    /// moment at least before the next ring, so agents who just declined
    /// are not rung again in a loop).
    pub fn ring_ended(&mut self, now: Instant) {
        self.ring_after = now + RECHECK;
    }

    /// When to look again if nothing happens.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let mut at = (now + RECHECK).min(self.deadline);
        // An announcement overdue now is held back because the caller is
        // being served; it is no reason to wake before the next look.
        if let Some(a) = self.next_announce.filter(|a| *a > now) {
            at = at.min(a);
        }
        if self.ring_after > now {
            at = at.min(self.ring_after);
        }
        at.max(now)
    }
}

#[cfg(test)]
#[path = "queue_wait_tests.rs"]
mod tests;
