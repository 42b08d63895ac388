//! Hookline media node: SIP/RTP media server whose call logic runs in
//! sandboxed WebAssembly plugins (see `DESIGN.md` in the shared docs).

pub mod api;
pub mod auth;
pub mod call;
pub mod codec;
pub mod config;
pub mod media;
pub mod metrics;
pub mod node;
pub mod node_catalog;
pub mod plugin;
pub mod prompts;
pub mod rate;
pub mod rtp;
pub mod sip;
pub mod speech;
pub mod store;
pub mod webrtc;
