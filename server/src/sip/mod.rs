//! Sans-IO SIP: message helpers, SDP offer/answer and the UAS endpoint;
//! and `tcp`, the I/O of SIP over TCP connections.

pub mod digest;
pub mod endpoint;
pub mod message;
pub mod registrar;
pub mod retx;
pub mod sdp;
pub mod source_limit;
pub mod stream;
pub mod tcp;
pub mod uac;
