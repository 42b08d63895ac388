//! Sans-IO SIP: message helpers, SDP offer/answer and the UAS endpoint.

pub mod digest;
pub mod endpoint;
pub mod message;
pub mod registrar;
pub mod retx;
pub mod sdp;
pub mod source_limit;
pub mod stream;
pub mod uac;
