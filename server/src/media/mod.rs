//! The media engine: prompts decoded once and shared, and per-core workers
//! that pace RTP on a 20 ms tick.

mod arrival;
mod between_ticks;
pub mod dtmf_detect;
mod engine;
mod inbox;
mod leg;
mod load;
pub mod mixer;
pub mod outbox;
mod play_queue;
mod ports;
mod prefetch;
pub mod prompt;
pub mod recorder;
mod tally;
pub mod tone;
pub mod worker;

/// Mean absolute level of a frame at or above which it counts as voice
/// (≈ -40 dBFS): recordings' silence detection and speech endpointing.
pub const VOICE_LEVEL: u32 = 330;

/// Whether a frame of audio carries voice (rather than line noise).
pub fn is_voiced(frame: &[i16]) -> bool {
    let sum: u32 = frame.iter().map(|s| s.unsigned_abs() as u32).sum();
    sum >= VOICE_LEVEL * frame.len().max(1) as u32
}
