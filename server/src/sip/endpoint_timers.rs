//! The endpoint's timers: resending final responses until their ACK and BYEs
//! until answered, giving up, forgetting finished dialogs — and when the next
//! of them is due, so the driver sleeps until then.

use super::*;

impl Endpoint {
    /// When [`Endpoint::handle_timeout`] is next due; `None` while no
    /// timer runs (the driver then sleeps until a datagram or a command).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    /// Runs the retransmission and expiry timers due at `now` (call it at
    /// [`Endpoint::poll_timeout`]; earlier is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        // Only legs with something due produce work; no per-tick copy of every key.
        let due: Vec<(String, Vec<uac::Action>)> = self
            .outbound
            .iter_mut()
            .filter_map(|(id, call)| {
                let actions = call.on_timeout(now);
                (!actions.is_empty()).then(|| (id.clone(), actions))
            })
            .collect();
        for (id, actions) in due {
            self.apply(&id, actions);
        }
        self.outbound.retain(|_, c| !c.expired(now));
        let mut resend = Vec::new();
        let mut ack_lost = Vec::new();
        self.dialogs.retain(|call_id, d| match &mut d.state {
            State::Gone(until) => *until > now,
            State::Answered(r) | State::Rejected(r) | State::Closing(r) => {
                if r.expired(now) {
                    match d.state {
                        State::Answered(_) => ack_lost.push(call_id.clone()),
                        _ => d.state = State::Gone(now + TIMER_H),
                    }
                } else if r.due(now) {
                    resend.push((d.peer, r.data.clone()));
                }
                true
            }
            State::Early | State::Confirmed => true,
        });
        for (to, data) in resend {
            self.send(to, data);
        }
        for call_id in ack_lost {
            self.send_bye(now, &call_id);
            self.ended(&call_id, EndCause::AckTimeout);
        }
        // Every timer was just looked at: the next wake is exactly the earliest.
        let dialogs = self.dialogs.values().filter_map(|d| match &d.state {
            State::Gone(until) => Some(*until),
            State::Answered(r) | State::Rejected(r) | State::Closing(r) => Some(r.poll_timeout()),
            State::Early | State::Confirmed => None,
        });
        let outbound = self.outbound.values().filter_map(|c| c.poll_timeout());
        self.wake = dialogs.chain(outbound).min();
    }
}
