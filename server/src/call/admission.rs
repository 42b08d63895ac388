//! Admission control, sans-IO: whether a new call may start, by call count and
//! calls per second. Refusals carry the Retry-After a 503 should send.

use std::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    /// `rate` = 0 means unlimited.
    pub fn new(rate: u32) -> Self {
        let rate = rate as f64;
        // One second's worth may arrive at once.
        RateLimiter {
            rate,
            burst: rate.max(1.0),
            tokens: rate.max(1.0),
            last: None,
        }
    }

    pub fn try_acquire(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if let Some(last) = self.last {
            self.tokens = (self.tokens + (now - last).as_secs_f64() * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node is shutting down.
    Draining,
    /// Call limit reached.
    Full,
    /// Calls-per-second limit reached.
    Rate,
}

impl Refusal {
    /// Seconds for the Retry-After of the 503.
    pub fn retry_after(self) -> u32 {
        match self {
            Refusal::Draining => 60,
            Refusal::Full => 5,
            Refusal::Rate => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Draining => "refused-draining",
            Refusal::Full => "refused-capacity",
            Refusal::Rate => "refused-rate",
        }
    }
}

/// Admission state of the node or of one route.
#[derive(Debug)]
pub struct Admission {
    max_calls: usize,
    rate: RateLimiter,
    active: usize,
}

impl Admission {
    /// `max_calls` = 0 means unlimited, as does `max_cps` = 0.
    pub fn new(max_calls: usize, max_cps: u32) -> Self {
        Admission {
            max_calls,
            rate: RateLimiter::new(max_cps),
            active: 0,
        }
    }

    /// Admits one call (counting it) or says why not.
    pub fn admit(&mut self, now: Instant) -> Result<(), Refusal> {
        if self.max_calls > 0 && self.active >= self.max_calls {
            return Err(Refusal::Full);
        }
        if !self.rate.try_acquire(now) {
            return Err(Refusal::Rate);
        }
        self.active += 1;
        Ok(())
    }

    /// A call admitted earlier ended.
    pub fn release(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    pub fn active(&self) -> usize {
        self.active
    }

    /// New limits for the calls to come (those admitted stay counted).
    pub fn set_limits(&mut self, max_calls: usize, max_cps: u32) {
        self.max_calls = max_calls;
        if self.rate.rate != max_cps as f64 {
            self.rate = RateLimiter::new(max_cps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn call_limit_counts_and_releases() {
        let t = Instant::now();
        let mut a = Admission::new(2, 0);
        assert!(a.admit(t).is_ok());
        assert!(a.admit(t).is_ok());
        assert_eq!(a.admit(t), Err(Refusal::Full));
        a.release();
        assert!(a.admit(t).is_ok());
        assert_eq!(a.active(), 2);
    }

    #[test]
    fn cps_limit_refills_over_time() {
        let t = Instant::now();
        let mut a = Admission::new(0, 10);
        let admitted = (0..50).filter(|_| a.admit(t).is_ok()).count();
        assert_eq!(admitted, 10, "one second of burst");
        assert_eq!(a.admit(t), Err(Refusal::Rate));
        // 10 per second: 0.5 s later, five more.
        let later = t + Duration::from_millis(500);
        assert_eq!((0..50).filter(|_| a.admit(later).is_ok()).count(), 5);
        assert_eq!(Refusal::Rate.retry_after(), 1);
    }
}
