//! Call control: the SIP driver task, routing of new calls to plugins, the
//! per-call task that runs a plugin and writes the call record, and the
//! verbs plugins call (`host_api`). `Node` (in `node.rs`) is what the node's
//! tasks share; `crate::node` assembles it at start-up.

pub mod admission;
mod attempts;
pub mod browser;
pub mod callback;
pub mod collect;
pub mod conference;
pub mod dial;
pub mod error;
pub mod events;
pub mod forwarding;
mod host_api;
mod keys;
mod launch;
mod play;
pub(crate) use launch::ended_session;
pub use launch::{detached_session, parked_session};
pub(crate) use launch::{launch, route_and_admit, NewCall, Rejection};
pub(crate) mod held;
pub mod presence;
pub mod queue;
mod queue_wait;
pub mod record;
mod recovery;
pub use recovery::recover_recordings;
mod ringer;
mod route;
pub mod routing;
pub mod session;
mod shallow;
mod sip_driver;
pub use sip_driver::run_sip;
mod node;
pub mod speech;
pub mod targets;
pub mod verbs;
pub use node::{Node, Plugin};
pub use sip_driver::SipCommand;
