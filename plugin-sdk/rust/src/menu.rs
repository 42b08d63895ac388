//! A voice menu with retries: the pattern every IVR repeats.

use crate::media::{self, CollectEnd, CollectOptions};
use crate::CallError;

/// A one-key menu: prompts played with barge-in, then a wait for one key.
#[derive(Debug, Clone)]
pub struct Menu<'a> {
    /// Prompt ids announcing the choices.
    pub prompts: &'a [String],
    /// Keys that are valid choices, e.g. "12".
    pub choices: &'a str,
    /// How many times the menu is offered before giving up.
    pub attempts: u32,
    /// How long to wait for a key after the prompts end.
    pub timeout_ms: u32,
    /// Played after a key that is not a choice (before the next attempt).
    pub invalid_prompts: &'a [String],
    /// Played when no key came in time (before the next attempt).
    pub timeout_prompts: &'a [String],
}

/// What a caller did with a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuOutcome {
    /// A valid key was pressed.
    Chosen(char),
    /// Every attempt ended in a wrong key or silence; send the caller to a fallback.
    NoChoice,
}

impl Menu<'_> {
    /// Runs the menu until a valid choice or until the attempts are used up.
    pub fn run(&self) -> Result<MenuOutcome, CallError> {
        for attempt in 1..=self.attempts.max(1) {
            media::play(self.prompts, true)?;
            let got = media::collect_digits(&CollectOptions {
                min_digits: 1,
                max_digits: 1,
                first_digit_timeout_ms: self.timeout_ms,
                inter_digit_timeout_ms: self.timeout_ms,
                terminator: None,
            })?;
            let key = got.digits.chars().next();
            match key {
                Some(k) if self.choices.contains(k) => return Ok(MenuOutcome::Chosen(k)),
                _ if attempt == self.attempts.max(1) => {}
                Some(_) => {
                    media::play(self.invalid_prompts, true)?;
                }
                None => {
                    debug_assert_eq!(got.end, CollectEnd::Timeout);
                    media::play(self.timeout_prompts, true)?;
                }
            }
        }
        Ok(MenuOutcome::NoChoice)
    }
}
