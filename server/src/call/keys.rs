//! The collect verb: prompts, the digit collector (`collect.rs`, sans-IO)
//! driven by the call's events and the clock, validation and retries.

use std::time::{Duration, Instant};

use super::collect::{CollectSpec, DigitCollector, End};
use super::error::Error;
use super::session::{CallEvent, CallSession};
use super::shallow::in_box;
use crate::media::worker::MediaEvent;
use crate::plugin::hookline::call::media::{CollectEnd, CollectOptions, Collected};
use crate::plugin::rules::entry_is_valid;

impl CallSession {
    /// Collects an entry with prompts, validation and retries (the WIT verb).
    pub async fn collect_digits(&mut self, o: &CollectOptions) -> Result<Collected, Error> {
        self.check_live()?;
        let (spec, attempts) = collect_spec(o)?;
        // Resolve every prompt up front: a bad item fails before the caller hears anything.
        let prompts = self.resolve(&o.prompts).await?;
        let invalid = self.resolve(&o.invalid_prompts).await?;
        let silent = match o.timeout_prompts.is_empty() {
            true => invalid.clone(),
            false => self.resolve(&o.timeout_prompts).await?,
        };
        self.answer()?;
        let mut last = Collected {
            digits: String::new(),
            end: CollectEnd::Timeout,
            valid: false,
            attempts: 0,
        };
        for attempt in 1..=attempts {
            // Keys typed ahead (during a greeting) skip the prompts.
            if !prompts.is_empty() && self.digits.is_empty() {
                self.mark_items(&o.prompts);
                in_box(|| self.play_prompts(prompts.clone(), true)).await?;
            }
            let (digits, end) = in_box(|| self.collect_once(&spec)).await?;
            let valid = entry_is_valid(o, &digits);
            last = Collected {
                digits,
                end: match end {
                    End::MaxDigits => CollectEnd::MaxDigits,
                    End::Terminator => CollectEnd::Terminator,
                    End::Timeout => CollectEnd::Timeout,
                },
                valid,
                attempts: attempt,
            };
            if valid {
                break;
            }
            let (retry, items) = match (last.digits.is_empty(), o.timeout_prompts.is_empty()) {
                (true, false) => (&silent, &o.timeout_prompts),
                _ => (&invalid, &o.invalid_prompts),
            };
            if attempt < attempts && !retry.is_empty() {
                self.mark_items(items);
                in_box(|| self.play_prompts(retry.clone(), true)).await?;
            }
        }
        Ok(last)
    }

    /// One entry: digits until max, terminator or timeout.
    async fn collect_once(&mut self, spec: &CollectSpec) -> Result<(String, End), Error> {
        let mut c = DigitCollector::new(spec.clone(), Instant::now());
        let mut result = None;
        while result.is_none() {
            if let Some(k) = self.digits.pop_front() {
                result = c.on_digit(k, Instant::now());
                continue;
            }
            let deadline = tokio::time::Instant::from_std(c.deadline());
            tokio::select! {
                ev = self.next_event() => match ev {
                    CallEvent::Media(MediaEvent::Dtmf(k)) => result = c.on_digit(k, Instant::now()),
                    ev @ CallEvent::Ended(_) => {
                        self.absorb(ev);
                        return Err(Error::HungUp);
                    }
                    _ => {}
                },
                _ = tokio::time::sleep_until(deadline) => result = c.on_time(Instant::now()),
            }
        }
        let (digits, end) = result.unwrap_or_default_entry();
        self.mark(&format!("digits:{digits}"));
        Ok((digits, end))
    }
}

/// The collection `o` asks for, and its attempts; out of line, as the
/// verb's poll runs on the plugin's fiber stack (see `await_play`).
#[inline(never)]
fn collect_spec(o: &CollectOptions) -> Result<(CollectSpec, u32), Error> {
    if o.max_digits == 0 || o.min_digits > o.max_digits || o.max_digits > 64 {
        return Err(Error::InvalidArgument(format!(
            "need min-digits ({}) <= max-digits ({}), 1 <= max-digits <= 64",
            o.min_digits, o.max_digits
        )));
    }
    let terminator = match o.terminator.as_deref() {
        None | Some("") => None,
        Some(t) if t.chars().count() == 1 => t.chars().next(),
        Some(t) => {
            return Err(Error::InvalidArgument(format!(
                "terminator {t:?} is not one key"
            )))
        }
    };
    let spec = CollectSpec {
        max_digits: o.max_digits,
        first_digit_timeout: Duration::from_millis(o.first_digit_timeout_ms.into()),
        inter_digit_timeout: Duration::from_millis(o.inter_digit_timeout_ms.into()),
        terminator,
    };
    Ok((spec, o.attempts.clamp(1, 10)))
}

trait EntryExt {
    fn unwrap_or_default_entry(self) -> (String, End);
}

impl EntryExt for Option<(String, End)> {
    fn unwrap_or_default_entry(self) -> (String, End) {
        self.unwrap_or((String::new(), End::Timeout))
    }
}
