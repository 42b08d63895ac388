//! RFC 3261 timer values and the retransmission schedule both sides share:
//! resend after T1, doubling up to T2, give up after 64·T1.

use std::time::{Duration, Instant};

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
/// 64·T1: timers B, F and H.
pub const GIVE_UP: Duration = Duration::from_secs(32);

/// A message sent over UDP until it is answered or given up on.
#[derive(Debug)]
pub struct Retx {
    pub data: Vec<u8>,
    next: Instant,
    interval: Duration,
    deadline: Instant,
}

impl Retx {
    pub fn new(now: Instant, data: Vec<u8>) -> Self {
        Retx {
            data,
            next: now + T1,
            interval: T1,
            deadline: now + GIVE_UP,
        }
    }

    /// When this next needs a look: the next resend or giving up.
    pub fn poll_timeout(&self) -> Instant {
        self.next.min(self.deadline)
    }

    /// Past 64·T1 without an answer.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Whether to send again now (and schedule the next time).
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next || self.expired(now) {
            return false;
        }
        self.interval = (self.interval * 2).min(T2);
        self.next = now + self.interval;
        true
    }

    /// Stop resending but keep waiting (a provisional answer came, e.g. to a CANCEL).
    pub fn quiet_until_give_up(&mut self, now: Instant) {
        self.next = now + GIVE_UP;
        self.deadline = now + GIVE_UP;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_capped_at_t2_until_64_t1() {
        let t = Instant::now();
        let mut r = Retx::new(t, vec![]);
        let sends: Vec<u64> = (1..=330)
            .map(|i| t + Duration::from_millis(i * 100))
            .filter(|now| r.due(*now))
            .map(|now| (now - t).as_millis() as u64)
            .collect();
        assert_eq!(
            sends,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert!(r.expired(t + GIVE_UP));
    }
}
