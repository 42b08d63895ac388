//! Speech: text-to-speech for dynamic prompts (recognition comes later).

pub mod tts;
