//! Sans-IO SIP: message helpers, SDP offer/answer and the UAS endpoint.

pub mod endpoint;
pub mod message;
pub mod sdp;
