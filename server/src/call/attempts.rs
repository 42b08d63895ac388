//! The outbound legs a dial holds, and their owner. Whichever way a dial
//! ends — it returns, or its plugin is cut by a budget, traps or panics and
//! the dial's future is dropped mid-ring or mid-bridge — dropping
//! [`Attempts`] ends every leg still open (CANCEL or BYE, record closed),
//! frees the agents it held, and gives back each media leg and port.

use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::{Node, SipCommand};
use crate::media::worker::LegId;

/// One contact's leg as the dial holds it (the ringer holds when and why).
pub(super) struct Attempt {
    /// Who rings: an agent's name for presence, a number.
    pub label: String,
    pub group: Option<String>,
    /// An extension or group member: held busy while it rings and talks.
    pub agent: bool,
    /// The current INVITE's Call-ID; empty until the first goes out.
    pub call_id: String,
    pub leg: LegId,
    /// Its RTP port; 0 when it has none (not rung yet, or given back).
    pub port: u16,
    pub local: SocketAddr,
    /// Caller ID the plugin asked for (kept across failover).
    pub from_user: String,
    /// An agent held busy while this rings or talks (other dials skip them).
    pub reserved: bool,
    /// Answered and connected: a group's agent wraps up afterwards.
    pub talked: bool,
    /// Its SIP dialog and call record are open (an INVITE went out and no
    /// end was recorded): whoever drops it must end both.
    pub open: bool,
}

impl Attempt {
    pub fn new(label: &str, group: Option<String>, agent: bool, from_user: &str) -> Attempt {
        Attempt {
            label: label.to_string(),
            group,
            agent,
            call_id: String::new(),
            leg: 0,
            port: 0,
            local: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0),
            from_user: from_user.to_string(),
            reserved: false,
            talked: false,
            open: false,
        }
    }
}

impl Node {
    /// Frees the agent an attempt held, once. After a group's call they wrap
    /// up for the group's `wrap_up_s`; a ring nobody answered is not a call,
    /// so it leaves the agent's idle time (by which `uniform` picks) as it was.
    pub(super) fn release_agent(&self, a: &mut Attempt) {
        if !std::mem::take(&mut a.reserved) {
            return;
        }
        if !a.talked {
            return self.presence.unring(&a.label);
        }
        let wrap_up_s = match &a.group {
            Some(g) => self.config.group(g).map_or(0, |g| g.wrap_up_s),
            None => 0,
        };
        self.presence
            .free_after(&a.label, crate::store::now_ms(), wrap_up_s as i64 * 1000);
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

impl Attempts {
    /// Attempt `i` is over for good: its agent and its media leg and port
    /// go back now, not when the dial ends.
    pub fn release(&mut self, i: usize) {
        let a = &mut self.list[i];
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
        for i in 0..self.list.len() {
            let a = &mut self.list[i];
            if std::mem::take(&mut a.open) {
                // Still ringing or talking: the dial was cut short.
                let _ = self.sip.send(SipCommand::Hangup {
                    call_id: a.call_id.clone(),
                });
                self.node.store.call_ended(&a.call_id, "dial-cut", vec![]);
            }
            self.release(i);
        }
    }
}
