//! Counting in fixed windows of time, the one mechanism behind every rate
//! the node enforces on untrusted input: a plugin's speech per minute and
//! log lines per second, a browser agent's offers, failed authentications
//! per address, SIP requests per source. Sans-IO: `now` comes in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A count over a fixed window that starts again once `span` has passed.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    started: Instant,
    pub used: u64,
}

impl Window {
    pub fn new(now: Instant) -> Window {
        Window {
            started: now,
            used: 0,
        }
    }

    /// The count in the window that holds `now` (0 once `span` has passed).
    pub fn count(&self, now: Instant, span: Duration) -> u64 {
        if now.saturating_duration_since(self.started) >= span {
            0
        } else {
            self.used
        }
    }

    /// Counts `n` more, unconditionally; returns the window's count.
    pub fn add(&mut self, now: Instant, span: Duration, n: u64) -> u64 {
        if now.saturating_duration_since(self.started) >= span {
            *self = Window::new(now);
        }
        self.used = self.used.saturating_add(n);
        self.used
    }

    /// Takes `n` out of `limit` per `span`; false (nothing taken) when it
    /// would go over.
    pub fn take(&mut self, now: Instant, span: Duration, n: u64, limit: u64) -> bool {
        if self.count(now, span).saturating_add(n) > limit {
            return false;
        }
        self.add(now, span, n);
        true
    }
}

/// A window per key (a source address), in a table untrusted input cannot
/// grow past `max_keys`: windows that have run out are pruned to make room,
/// and while every tracked key is live a new one is not tracked.
#[derive(Debug)]
pub struct PerKey<K> {
    span: Duration,
    max_keys: usize,
    windows: HashMap<K, Window>,
}

impl<K: Hash + Eq + Clone> PerKey<K> {
    pub fn new(span: Duration, max_keys: usize) -> PerKey<K> {
        PerKey {
            span,
            max_keys,
            windows: HashMap::new(),
        }
    }

    /// `key`'s count in its current window.
    pub fn count(&self, key: &K, now: Instant) -> u64 {
        self.windows
            .get(key)
            .map(|w| w.count(now, self.span))
            .unwrap_or(0)
    }

    /// Counts one for `key`; its count now, or `None` when the table is full
    /// of live keys and `key` is not one of them.
    pub fn add(&mut self, key: &K, now: Instant) -> Option<u64> {
        if self.windows.len() >= self.max_keys && !self.windows.contains_key(key) {
            let span = self.span;
            self.windows.retain(|_, w| w.count(now, span) > 0);
            if self.windows.len() >= self.max_keys {
                return None;
            }
        }
        let span = self.span;
        Some(
            self.windows
                .entry(key.clone())
                .or_insert_with(|| Window::new(now))
                .add(now, span, 1),
        )
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// A log's budget: lines per second, with what was dropped said once when
/// the next line gets through. Each plugin call has one (its quota), and the
/// node one for lines strangers can cause (refused credentials, no route).
#[derive(Debug)]
pub struct LogBudget {
    window: Window,
    /// Lines dropped since the last one written.
    pub dropped: u64,
}

impl LogBudget {
    pub fn new(now: Instant) -> LogBudget {
        LogBudget {
            window: Window::new(now),
            dropped: 0,
        }
    }

    /// Whether a line may be written now; `Some(n)` first when `n` lines were
    /// dropped since the last one written (say so with [`dropped_line`]).
    pub fn admit(&mut self, now: Instant, per_s: u32) -> (bool, Option<u64>) {
        if self
            .window
            .take(now, Duration::from_secs(1), 1, per_s.max(1) as u64)
        {
            let dropped = std::mem::take(&mut self.dropped);
            (true, (dropped > 0).then_some(dropped))
        } else {
            self.dropped += 1;
            (false, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refills_after_its_span() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        let minute = Duration::from_secs(60);
        assert!(w.take(t0, minute, 900, 1000));
        assert!(!w.take(t0, minute, 200, 1000));
        assert_eq!(w.count(t0, minute), 900);
        assert!(w.take(t0 + minute, minute, 200, 1000));
    }

    #[test]
    fn keys_are_counted_apart_in_a_bounded_table() {
        let second = Duration::from_secs(1);
        let mut t: PerKey<u32> = PerKey::new(second, 100);
        let t0 = Instant::now();
        assert_eq!(t.add(&1, t0), Some(1));
        assert_eq!(t.add(&1, t0), Some(2));
        assert_eq!(t.count(&2, t0), 0);
        for k in 2..200 {
            t.add(&k, t0);
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.add(&500, t0), None, "full of live keys");
        assert_eq!(t.count(&1, t0 + second), 0);
        // A second later the stale windows make room.
        assert_eq!(t.add(&500, t0 + second), Some(1));
        assert!(t.len() <= 100);
    }
}
