//! Speech recognition behind a trait. An engine holds what is loaded once
//! (models, shared by every call); an utterance is one call's recognition,
//! fed 8 kHz audio as it arrives.

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AsrError {
    #[error("speech library {0}: {1}")]
    Library(String, String),
    #[error("speech model {0}: {1}")]
    Model(String, String),
    #[error("recognition failed: {0}")]
    Failed(String),
    /// Every recognizer is in use: the caller can still press keys.
    #[error("{0}")]
    Busy(String),
}

/// The best guess for an utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub text: String,
    /// 0.0 .. 1.0 as the engine reports it.
    pub confidence: f32,
}

/// A recognizer for one language, its models loaded once.
pub trait Engine: Send + Sync {
    /// For logs and benchmarks.
    fn name(&self) -> &'static str;
    /// Starts one utterance. Non-empty `phrases` restrict the result to them
    /// (a menu grammar); phrases the engine has no words for are left out.
    fn open(&self, phrases: &[String]) -> Result<Box<dyn Utterance>, AsrError>;
}

/// One utterance being recognised (blocking: run on a blocking thread).
pub trait Utterance: Send {
    /// 8 kHz mono audio.
    fn accept(&mut self, pcm: &[i16]) -> Result<(), AsrError>;
    /// The words so far.
    fn partial(&mut self) -> Option<String>;
    /// Ends the utterance; an empty text means nothing was understood.
    fn finish(&mut self) -> Result<Hypothesis, AsrError>;
}

/// The node's recognizers, by BCP 47 primary language tag, and the permits
/// for recognitions running at once (one per decoder engaged).
#[derive(Clone)]
pub struct Recognizers {
    engines: HashMap<String, Arc<dyn Engine>>,
    pub permits: Arc<tokio::sync::Semaphore>,
}

impl Default for Recognizers {
    fn default() -> Self {
        Recognizers::with_permits(crate::config::SpeechConfig::default().max_recognitions)
    }
}

impl Recognizers {
    /// At most `n` recognitions at once, all languages together.
    pub fn with_permits(n: usize) -> Self {
        Recognizers {
            engines: HashMap::new(),
            permits: Arc::new(tokio::sync::Semaphore::new(n.max(1))),
        }
    }

    pub fn insert(&mut self, language: &str, engine: Arc<dyn Engine>) {
        self.engines.insert(primary(language), engine);
    }

    /// The engine for a language ("en-GB" finds "en").
    pub fn get(&self, language: &str) -> Option<Arc<dyn Engine>> {
        self.engines.get(&primary(language)).cloned()
    }

    pub fn languages(&self) -> Vec<String> {
        let mut l: Vec<String> = self.engines.keys().cloned().collect();
        l.sort();
        l
    }
}

fn primary(language: &str) -> String {
    language
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Lower-case words without punctuation, for comparing what was said.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which phrase was said: the exact phrase, else the longest phrase the text
/// contains as whole words (engines add filler words around a menu option).
pub fn match_phrase(text: &str, phrases: &[String]) -> Option<u32> {
    let said = format!(" {} ", normalize(text));
    if said.trim().is_empty() {
        return None;
    }
    let mut best: Option<(usize, u32)> = None;
    for (i, p) in phrases.iter().enumerate() {
        let p = normalize(p);
        if p.is_empty() {
            continue;
        }
        if said.trim() == p {
            return Some(i as u32);
        }
        if said.contains(&format!(" {p} ")) && best.is_none_or(|(len, _)| p.len() > len) {
            best = Some((p.len(), i as u32));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn phrases_match_exactly_or_as_whole_words() {
        let p = v(&["Sales", "technical support", "support"]);
        assert_eq!(match_phrase("sales", &p), Some(0));
        assert_eq!(match_phrase("SUPPORT.", &p), Some(2));
        assert_eq!(match_phrase("uh technical support please", &p), Some(1));
        assert_eq!(match_phrase("wholesales", &p), None);
        assert_eq!(match_phrase("", &p), None);
        assert_eq!(match_phrase("상담원", &v(&["예약", "상담원"])), Some(1));
    }

    #[test]
    fn languages_resolve_by_primary_tag() {
        struct Nothing;
        impl Engine for Nothing {
            fn name(&self) -> &'static str {
                "nothing"
            }
            fn open(&self, _: &[String]) -> Result<Box<dyn Utterance>, AsrError> {
                Err(AsrError::Failed("none".into()))
            }
        }
        let mut r = Recognizers::default();
        r.insert("en", Arc::new(Nothing));
        assert!(r.get("en-GB").is_some());
        assert!(r.get("EN").is_some());
        assert!(r.get("ru").is_none());
    }
}
