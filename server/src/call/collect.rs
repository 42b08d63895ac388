//! Digit collection as a sans-IO state machine: digits and time in, outcome out.

use std::time::{Duration, Instant};

/// What the plugin asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectSpec {
    pub max_digits: u32,
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub terminator: Option<char>,
}

/// Why an entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    MaxDigits,
    Terminator,
    Timeout,
}

/// Collects one entry.
#[derive(Debug)]
pub struct DigitCollector {
    spec: CollectSpec,
    digits: String,
    deadline: Instant,
}

impl DigitCollector {
    pub fn new(spec: CollectSpec, now: Instant) -> Self {
        let deadline = now + spec.first_digit_timeout;
        DigitCollector {
            spec,
            digits: String::new(),
            deadline,
        }
    }

    /// When the current timeout fires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A key arrived; returns the entry once it is complete.
    pub fn on_digit(&mut self, key: char, now: Instant) -> Option<(String, End)> {
        if Some(key) == self.spec.terminator {
            return Some((std::mem::take(&mut self.digits), End::Terminator));
        }
        self.digits.push(key);
        if self.digits.len() as u32 >= self.spec.max_digits {
            return Some((std::mem::take(&mut self.digits), End::MaxDigits));
        }
        self.deadline = now + self.spec.inter_digit_timeout;
        None
    }

    /// Time passed; returns the entry if the deadline is reached.
    pub fn on_time(&mut self, now: Instant) -> Option<(String, End)> {
        (now >= self.deadline).then(|| (std::mem::take(&mut self.digits), End::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CollectSpec {
        CollectSpec {
            max_digits: 4,
            first_digit_timeout: Duration::from_secs(5),
            inter_digit_timeout: Duration::from_secs(2),
            terminator: Some('#'),
        }
    }

    #[test]
    fn max_digits_terminator_and_timeouts() {
        let t = Instant::now();
        let mut c = DigitCollector::new(spec(), t);
        assert_eq!(c.on_time(t + Duration::from_secs(4)), None);
        for k in "123".chars() {
            assert_eq!(c.on_digit(k, t), None);
        }
        assert_eq!(c.on_digit('4', t), Some(("1234".into(), End::MaxDigits)));

        let mut c = DigitCollector::new(spec(), t);
        c.on_digit('9', t);
        assert_eq!(c.on_digit('#', t), Some(("9".into(), End::Terminator)));

        let mut c = DigitCollector::new(spec(), t);
        c.on_digit('7', t + Duration::from_secs(1));
        // The inter-digit timeout now applies, counted from the last key.
        assert_eq!(c.deadline(), t + Duration::from_secs(3));
        assert_eq!(
            c.on_time(t + Duration::from_secs(3)),
            Some(("7".into(), End::Timeout))
        );

        let mut c = DigitCollector::new(spec(), t);
        assert_eq!(
            c.on_time(t + Duration::from_secs(5)),
            Some((String::new(), End::Timeout))
        );
    }
}
