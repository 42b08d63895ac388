//! A voice menu with retries: the pattern every IVR repeats.

use crate::media::{self, CollectOptions, PlayItem, SpeechOptions};
use crate::CallError;

/// A one-key menu: prompts played with barge-in, then a wait for one key.
#[derive(Debug, Clone)]
pub struct Menu<'a> {
    /// What announces the choices.
    pub prompts: &'a [PlayItem],
    /// Keys that are valid choices, e.g. "12".
    pub choices: &'a str,
    /// How many times the menu is offered before giving up.
    pub attempts: u32,
    /// How long to wait for a key after the prompts end.
    pub timeout_ms: u32,
    /// Played after a wrong key (before the next attempt).
    pub invalid_prompts: &'a [PlayItem],
    /// Played after silence (before the next attempt).
    pub timeout_prompts: &'a [PlayItem],
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
    /// Runs the menu until a valid choice or until the attempts are used up
    /// (one host call: the node plays, collects, validates and retries).
    pub fn run(&self) -> Result<MenuOutcome, CallError> {
        let got = media::collect_digits(&CollectOptions {
            prompts: self.prompts.to_vec(),
            min_digits: 1,
            max_digits: 1,
            first_digit_timeout_ms: self.timeout_ms,
            inter_digit_timeout_ms: self.timeout_ms,
            terminator: None,
            attempts: self.attempts.max(1),
            valid: self.choices.chars().map(String::from).collect(),
            invalid_prompts: self.invalid_prompts.to_vec(),
            timeout_prompts: self.timeout_prompts.to_vec(),
        })?;
        Ok(match got.digits.chars().next() {
            Some(k) if got.valid => MenuOutcome::Chosen(k),
            _ => MenuOutcome::NoChoice,
        })
    }

    /// Like `run`, but the caller may also say a choice: `spoken` maps
    /// phrases to keys ("sales" -> '1'). Needs the "speech" grant; where the
    /// node has no recognizer for the call's language (or the grant is
    /// missing) the menu takes keys only.
    pub fn run_spoken(&self, spoken: &[(String, char)]) -> Result<MenuOutcome, CallError> {
        if spoken.is_empty() {
            return self.run();
        }
        let phrases: Vec<String> = spoken.iter().map(|(p, _)| p.clone()).collect();
        for attempt in 0..self.attempts.max(1) {
            let heard = media::collect_speech(&SpeechOptions {
                prompts: self.prompts.to_vec(),
                language: None,
                phrases: phrases.clone(),
                timeout_ms: self.timeout_ms,
                max_ms: 5000,
            });
            let heard = match heard {
                // No recognizer for this language, none free now, or no
                // grant: the rest of the attempts take keys.
                Err(CallError::Unavailable | CallError::NotAllowed) => {
                    let keys = Menu {
                        attempts: self.attempts.max(1) - attempt,
                        ..self.clone()
                    };
                    return keys.run();
                }
                other => other?,
            };
            let key = match (&heard.digit, heard.phrase) {
                (Some(d), _) => d.chars().next(),
                (None, Some(i)) => spoken.get(i as usize).map(|(_, k)| *k),
                (None, None) => None,
            };
            match key {
                Some(k) if self.choices.contains(k) => return Ok(MenuOutcome::Chosen(k)),
                _ if heard.digit.is_none() && heard.text.is_empty() => {
                    media::play(self.timeout_prompts, true)?;
                }
                _ => {
                    media::play(self.invalid_prompts, true)?;
                }
            }
        }
        Ok(MenuOutcome::NoChoice)
    }
}
