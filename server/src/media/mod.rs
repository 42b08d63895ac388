//! The media engine: prompts decoded once and shared, and per-core workers
//! that pace RTP on a 20 ms tick.

pub mod dtmf_detect;
pub mod prompt;
pub mod recorder;
pub mod tone;
pub mod worker;
