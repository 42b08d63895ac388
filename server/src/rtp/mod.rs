//! Sans-IO RTP: packet format, per-stream reordering and RFC 4733 telephone events.

pub mod dtmf;
pub mod jitter;
pub mod packet;
pub mod reorder;
pub mod rtcp;
