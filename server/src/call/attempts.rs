//! The outbound legs a dial holds, and their owner. Whichever way a dial
//! ends — it returns, or its plugin is cut by a budget, traps or panics and
//! the dial's future is dropped mid-ring or mid-bridge — dropping
//! [`Attempts`] ends every leg still open (CANCEL or BYE, record closed),
//! frees the agents it held, and gives back each media leg and port.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::dial::Route;
use super::{Node, SipCommand};
use crate::media::worker::LegId;

/// When a leg rings, from the start of the dial (ring groups stagger them).
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub start: Duration,
    /// In turn: the leg stops ringing when the next agent's turn comes.
    pub stop: Option<Duration>,
}

pub(super) const AT_ONCE: Slot = Slot {
    start: Duration::ZERO,
    stop: None,
};

/// One ringing leg.
pub(super) struct Attempt {
    pub target: u32,
    pub label: String,
    pub slot: Slot,
    pub agent: bool,
    /// The INVITE went out (a later turn of a group waits).
    pub started: bool,
    /// Rang for its whole turn unanswered.
    pub unanswered: bool,
    /// An agent held busy while this rings or talks (other dials skip them).
    pub reserved: bool,
    pub group: Option<String>,
    /// The route to start with, until started.
    pub first: Option<Route>,
    pub call_id: String,
    pub leg: LegId,
    pub port: u16,
    pub local: SocketAddr,
    /// Final response received (or cancelled).
    pub done: bool,
    pub busy: bool,
    /// Further trunks to try if this one fails.
    pub failover: std::collections::VecDeque<Route>,
    /// Caller ID the plugin asked for (kept across failover).
    pub from_user: String,
    /// 3xx redirects followed so far.
    pub redirects: u32,
    /// Answered and connected: a group's agent wraps up afterwards.
    pub talked: bool,
    /// Its SIP dialog and call record are open (an INVITE went out and no
    /// end was recorded): whoever drops it must end both.
    pub open: bool,
}

impl Node {
    /// Frees the agent an attempt held (ringing or talking), once; after a
    /// group's call they wrap up for the group's `wrap_up_s`.
    pub(super) fn release_agent(&self, a: &mut Attempt) {
        if std::mem::take(&mut a.reserved) {
            let wrap_up_s = match (&a.group, a.talked) {
                (Some(g), true) => self.config.group(g).map_or(0, |g| g.wrap_up_s),
                _ => 0,
            };
            self.presence
                .free_after(&a.label, crate::store::now_ms(), wrap_up_s as i64 * 1000);
        }
    }
}

/// Every attempt of one dial, owned: see the module's comment.
pub(super) struct Attempts {
    node: Arc<Node>,
    sip: UnboundedSender<SipCommand>,
    list: Vec<Attempt>,
}

impl Attempts {
    pub fn new(node: Arc<Node>, sip: UnboundedSender<SipCommand>) -> Attempts {
        Attempts {
            node,
            sip,
            list: Vec::new(),
        }
    }
}

impl Deref for Attempts {
    type Target = Vec<Attempt>;
    fn deref(&self) -> &Vec<Attempt> {
        &self.list
    }
}

impl DerefMut for Attempts {
    fn deref_mut(&mut self) -> &mut Vec<Attempt> {
        &mut self.list
    }
}

impl Drop for Attempts {
    fn drop(&mut self) {
        for a in &mut self.list {
            if std::mem::take(&mut a.open) {
                // Still ringing or talking: the dial was cut short.
                let _ = self.sip.send(SipCommand::Hangup {
                    call_id: a.call_id.clone(),
                });
                self.node.store.call_ended(&a.call_id, "dial-cut", vec![]);
            }
            self.node.release_agent(a);
            let port = std::mem::take(&mut a.port);
            if port != 0 {
                // Removing the leg also ends its bridge to the caller.
                self.node.media.remove_leg(a.leg);
                self.node.ports.release(port);
                let _ = self.sip.send(SipCommand::Finished {
                    call_id: a.call_id.clone(),
                });
            }
        }
    }
}
