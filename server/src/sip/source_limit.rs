//! Requests per second from one source address, for requests that open
//! something (INVITE, REGISTER, OPTIONS and other out-of-dialog requests):
//! past the rate a source gets 503 with Retry-After, and past twice the rate
//! nothing at all (answering a flood would amplify it). Trunks and this
//! machine (a local proxy) are exempt. Sans-IO: time comes in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

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
    seen: HashMap<IpAddr, (Instant, u32)>,
    pub refused: u64,
}

impl SourceLimit {
    /// `per_s` of 0 turns the limit off.
    pub fn new(per_s: u32) -> SourceLimit {
        SourceLimit {
            per_s,
            seen: HashMap::new(),
            refused: 0,
        }
    }

    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.per_s == 0 {
            return Verdict::Pass;
        }
        if self.seen.len() >= MAX_TRACKED && !self.seen.contains_key(&ip) {
            self.seen
                .retain(|_, (since, _)| now.saturating_duration_since(*since) < WINDOW);
            if self.seen.len() >= MAX_TRACKED {
                // Full of live sources: a flood from many addresses. Refuse newcomers.
                self.refused += 1;
                return Verdict::Drop;
            }
        }
        let e = self.seen.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        if e.1 <= self.per_s {
            Verdict::Pass
        } else {
            self.refused += 1;
            if e.1 <= self.per_s * 2 {
                Verdict::Busy
            } else {
                Verdict::Drop
            }
        }
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
