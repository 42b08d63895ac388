//! Requests per second from one source address, for requests that open
//! something (INVITE, REGISTER, OPTIONS and other out-of-dialog requests):
//! past the rate a source gets 503 with Retry-After, and past twice the rate
//! nothing at all (answering a flood would amplify it). Trunks and this
//! machine (a local proxy) are exempt. Sans-IO: time comes in.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::rate::PerKey;

/// Sources tracked at once; stale ones are pruned to make room.
const MAX_TRACKED: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(1);

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// 503 with Retry-After.
    Busy,
    /// Say nothing.
    Drop,
}

#[derive(Debug)]
pub struct SourceLimit {
    per_s: u32,
    seen: PerKey<IpAddr>,
    pub refused: u64,
}

impl SourceLimit {
    /// `per_s` of 0 turns the limit off.
    pub fn new(per_s: u32) -> SourceLimit {
        SourceLimit {
            per_s,
            seen: PerKey::new(WINDOW, MAX_TRACKED),
            refused: 0,
        }
    }

    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.per_s == 0 {
            return Verdict::Pass;
        }
        // A table full of live sources is a flood from many addresses: newcomers are refused.
        let verdict = match self.seen.add(&ip, now) {
            Some(n) if n <= self.per_s as u64 => return Verdict::Pass,
            Some(n) if n <= self.per_s as u64 * 2 => Verdict::Busy,
            _ => Verdict::Drop,
        };
        self.refused += 1;
        verdict
    }

    pub fn tracked(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_past_its_rate_is_told_to_wait_then_ignored_until_the_next_second() {
        let mut l = SourceLimit::new(10);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        let v: Vec<Verdict> = (0..25).map(|_| l.check(a, t0)).collect();
        assert!(v[..10].iter().all(|x| *x == Verdict::Pass));
        assert!(v[10..20].iter().all(|x| *x == Verdict::Busy));
        assert!(v[20..].iter().all(|x| *x == Verdict::Drop));
        assert_eq!(l.check(b, t0), Verdict::Pass);
        assert_eq!(l.check(a, t0 + WINDOW), Verdict::Pass);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut l = SourceLimit::new(10);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            l.check(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0);
        }
        assert!(l.tracked() <= MAX_TRACKED);
        l.check("203.0.113.1".parse().unwrap(), t0 + WINDOW);
        assert!(l.tracked() <= MAX_TRACKED);
    }
}
