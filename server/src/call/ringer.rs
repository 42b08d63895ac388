//! Who rings, when, and who answered: the ringing half of `dial` as a state
//! machine with no I/O, in the shape of `sip/uac.rs`. The dial feeds it SIP
//! responses, the caller leaving and the time since the dial began; it
//! answers with actions (send an INVITE, end a leg, bridge early media, free
//! an agent) and, at the end, an outcome. Agents' availability is asked at
//! every turn, not once at the start, so an agent who took another call
//! while the group rang is passed over at their turn instead of rung twice.
//!
//! Time is a `Duration` since the dial began, so tests run whole ring-group
//! scenarios in simulated time.

use std::collections::VecDeque;
use std::time::Duration;

use super::dial::DialStatus;
use super::route::{fails_over, uri_dest, Route};
use crate::sip::sdp::Negotiated;
use crate::sip::uac::UacEvent;

/// Redirects (3xx) followed per ring before it counts as failed.
const MAX_REDIRECTS: u32 = 3;

/// When a contact rings, from the start of the dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub start: Duration,
    /// In turn: it stops ringing when the next agent's turn comes.
    pub stop: Option<Duration>,
}

pub(super) const AT_ONCE: Slot = Slot {
    start: Duration::ZERO,
    stop: None,
};

/// One contact to ring: a phone of an extension or group member, a URI, a
/// number with its trunks in failover order.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The plugin's target this contact belongs to (its index).
    pub target: u32,
    /// An extension or a group's agent: held busy while it rings and talks.
    pub agent: bool,
    /// Who rings (the agent's name for presence, the number).
    pub label: String,
    /// The ring group it rings for: availability is checked at its turn.
    pub group: Option<String>,
    pub slot: Slot,
    /// The first route, then the ones to fail over to.
    pub routes: VecDeque<Route>,
}

/// How a ring ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Answered,
    /// Rang its whole turn (or the dial's time) unanswered.
    Unanswered,
    Busy,
    Failed,
    /// Its turn came while the agent was not free (another call, paused,
    /// wrapping up, do-not-disturb): never rung.
    Skipped,
    /// Stopped because someone else answered, or the caller left.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Waiting,
    Ringing,
    Over(End),
}

struct Ring {
    plan: Plan,
    redirects: u32,
    state: State,
}

/// What the dial must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Send an INVITE for `ring` along `route`, on the ring's media leg (open
    /// one if it has none); hold its agent. A failover or redirect reuses the
    /// leg.
    Invite { ring: usize, route: Route },
    /// The ring's current INVITE is over: end its record with `cause`;
    /// `cancel`: we end it (CANCEL, or BYE once answered), else the far end
    /// already did.
    Close {
        ring: usize,
        cause: String,
        cancel: bool,
    },
    /// The ring is over for good: free its agent (without counting a call:
    /// their idle time is unchanged) and its media leg.
    Release { ring: usize },
    /// Its turn came and its agent was not free.
    Skipped { ring: usize },
    /// The caller hears this ring's early media instead of ringback.
    EarlyMedia { ring: usize, media: Negotiated },
    /// That early media ended: ringback again.
    EarlyMediaOver { ring: usize },
}

/// How the ringing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Answered {
        ring: usize,
        media: Negotiated,
        /// How long it rang.
        after: Duration,
    },
    Missed(DialStatus),
    CallerGone,
}

/// What happened, besides time passing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Input {
    Sip {
        ring: usize,
        event: UacEvent,
    },
    /// No media port was free for the ring's INVITE: it was never sent.
    NoMedia {
        ring: usize,
    },
    CallerGone,
}

pub(super) struct Ringer {
    rings: Vec<Ring>,
    timeout: Duration,
    /// Whether a callee's early media may reach the caller (not for a call
    /// the node places, which has no caller yet).
    early_media: bool,
    /// The ring whose early media the caller hears.
    early: Option<usize>,
    actions: VecDeque<Action>,
    outcome: Option<Outcome>,
}

impl Ringer {
    pub fn new(plans: Vec<Plan>, timeout: Duration, early_media: bool) -> Ringer {
        Ringer {
            rings: plans
                .into_iter()
                .map(|plan| Ring {
                    plan,
                    redirects: 0,
                    state: State::Waiting,
                })
                .collect(),
            timeout,
            early_media,
            early: None,
            actions: VecDeque::new(),
            outcome: None,
        }
    }

    pub fn plan(&self, ring: usize) -> &Plan {
        &self.rings[ring].plan
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// When `handle_timeout` is next due: a turn begins or ends, or the
    /// dial's time is up.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.outcome.is_some() {
            return None;
        }
        let turns = self.rings.iter().filter_map(|r| match r.state {
            State::Waiting => Some(r.plan.slot.start),
            State::Ringing => r.plan.slot.stop,
            State::Over(_) => None,
        });
        Some(turns.fold(self.timeout, Duration::min))
    }

    /// Time passed: turns begin and end, the dial's time runs out. `ready`
    /// says whether a group's agent is free for its call now.
    pub fn handle_timeout(&mut self, now: Duration, ready: &dyn Fn(&str) -> bool) {
        if self.outcome.is_some() {
            return;
        }
        if now >= self.timeout {
            self.end_all(None, "no-answer");
            self.outcome = Some(Outcome::Missed(DialStatus::NoAnswer));
            return;
        }
        for i in 0..self.rings.len() {
            let r = &self.rings[i];
            if r.state == State::Ringing && r.plan.slot.stop.is_some_and(|s| s <= now) {
                self.stop(i, "next-agent", End::Unanswered, true);
            }
        }
        // A skipped agent passes the turn on at once, so repeat until no
        // turn is due.
        loop {
            self.bring_forward(now);
            let due: Vec<usize> = (0..self.rings.len())
                .filter(|&i| {
                    self.rings[i].state == State::Waiting && self.rings[i].plan.slot.start <= now
                })
                .collect();
            if due.is_empty() {
                break;
            }
            for i in due {
                self.begin(i, ready);
            }
        }
        self.settle();
    }

    /// A SIP response, the media engine's refusal, or the caller leaving.
    pub fn handle(&mut self, now: Duration, input: Input, ready: &dyn Fn(&str) -> bool) {
        if self.outcome.is_some() {
            return;
        }
        match input {
            Input::CallerGone => {
                self.end_all(None, "caller-hangup");
                self.outcome = Some(Outcome::CallerGone);
                return;
            }
            Input::NoMedia { ring } => {
                if self.rings[ring].state == State::Ringing {
                    self.finish(ring, End::Failed);
                }
            }
            Input::Sip { ring, event } => {
                // Late responses to a ring already over (the CANCEL's 487) are
                // not news.
                if self.rings[ring].state == State::Ringing {
                    self.response(now, ring, event);
                }
            }
        }
        // A ring that ended may hand the turn to the next agent at once.
        self.handle_timeout(now, ready);
    }

    fn response(&mut self, now: Duration, ring: usize, event: UacEvent) {
        match event {
            UacEvent::Progress {
                media: Some(media), ..
            } if self.early.is_none() && self.early_media => {
                self.early = Some(ring);
                self.actions.push_back(Action::EarlyMedia { ring, media });
            }
            UacEvent::Progress { .. } => {}
            UacEvent::Redirected { contact } => {
                self.leave_early(ring);
                self.close(ring, "redirected", false);
                let r = &mut self.rings[ring];
                match uri_dest(&contact).filter(|_| r.redirects < MAX_REDIRECTS) {
                    Some(dest) => {
                        r.redirects += 1;
                        let route = Route::direct(contact, dest);
                        self.actions.push_back(Action::Invite { ring, route });
                    }
                    None => self.finish(ring, End::Failed),
                }
            }
            UacEvent::Answered { media } => match media {
                Ok(media) => {
                    self.rings[ring].state = State::Over(End::Answered);
                    self.end_all(Some(ring), "answered-elsewhere");
                    self.outcome = Some(Outcome::Answered {
                        ring,
                        media,
                        after: now,
                    });
                }
                Err(_) => self.stop(ring, "bad-sdp-answer", End::Failed, true),
            },
            UacEvent::Failed { code } => {
                self.leave_early(ring);
                self.close(ring, &format!("sip-{code}"), false);
                let next = if fails_over(code) {
                    self.rings[ring].plan.routes.pop_front()
                } else {
                    None
                };
                match next {
                    // The carrier failed: the same leg goes out through the next trunk.
                    Some(route) => self.actions.push_back(Action::Invite { ring, route }),
                    None if matches!(code, 486 | 600) => self.finish(ring, End::Busy),
                    None => self.finish(ring, End::Failed),
                }
            }
            UacEvent::RemoteBye => {
                // Hung up before we saw an answer.
                self.leave_early(ring);
                self.close(ring, "callee-bye", false);
                self.finish(ring, End::Failed);
            }
        }
    }

    /// A waiting ring's turn: it rings, unless it is a group's agent who is
    /// not free now (and not already rung by this very dial on another phone).
    fn begin(&mut self, i: usize, ready: &dyn Fn(&str) -> bool) {
        let label = &self.rings[i].plan.label;
        let held_here = self
            .rings
            .iter()
            .any(|r| r.state == State::Ringing && &r.plan.label == label);
        if self.rings[i].plan.group.is_some() && !held_here && !ready(label) {
            self.rings[i].state = State::Over(End::Skipped);
            self.actions.push_back(Action::Skipped { ring: i });
            return;
        }
        match self.rings[i].plan.routes.pop_front() {
            Some(route) => {
                self.rings[i].state = State::Ringing;
                self.actions.push_back(Action::Invite { ring: i, route });
            }
            None => self.rings[i].state = State::Over(End::Failed),
        }
    }

    /// When nobody rings, the next turn need not wait for its time: it and
    /// every later turn move forward to now.
    fn bring_forward(&mut self, now: Duration) {
        if self.rings.iter().any(|r| r.state == State::Ringing) {
            return;
        }
        let next = self
            .rings
            .iter()
            .filter(|r| r.state == State::Waiting)
            .map(|r| r.plan.slot.start)
            .min();
        let Some(shift) = next.and_then(|n| n.checked_sub(now)) else {
            return;
        };
        for r in self.rings.iter_mut().filter(|r| r.state == State::Waiting) {
            r.plan.slot.start -= shift;
            r.plan.slot.stop = r.plan.slot.stop.map(|s| s.saturating_sub(shift));
        }
    }

    /// Every ring over and nobody answered: the dial missed.
    fn settle(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        let mut ends = Vec::with_capacity(self.rings.len());
        for r in &self.rings {
            match r.state {
                State::Over(e) => ends.push(e),
                _ => return,
            }
        }
        let status = if ends.iter().any(|e| matches!(e, End::Busy | End::Skipped)) {
            DialStatus::Busy
        } else if ends.contains(&End::Unanswered) {
            DialStatus::NoAnswer
        } else {
            DialStatus::Failed
        };
        self.outcome = Some(Outcome::Missed(status));
    }

    /// Ends a ringing ring ourselves.
    fn stop(&mut self, ring: usize, cause: &str, end: End, ringback: bool) {
        if ringback {
            self.leave_early(ring);
        } else if self.early == Some(ring) {
            self.early = None;
        }
        self.close(ring, cause, true);
        self.finish(ring, end);
    }

    fn close(&mut self, ring: usize, cause: &str, cancel: bool) {
        self.actions.push_back(Action::Close {
            ring,
            cause: cause.to_string(),
            cancel,
        });
    }

    fn finish(&mut self, ring: usize, end: End) {
        self.rings[ring].state = State::Over(end);
        self.actions.push_back(Action::Release { ring });
    }

    /// The ring the caller heard ended: ringback again.
    fn leave_early(&mut self, ring: usize) {
        if self.early == Some(ring) {
            self.early = None;
            self.actions.push_back(Action::EarlyMediaOver { ring });
        }
    }

    /// Stops every ring but `keep`; rings whose turn never came just end.
    /// The dial is over, so nobody goes back to ringback.
    fn end_all(&mut self, keep: Option<usize>, cause: &str) {
        for i in 0..self.rings.len() {
            if Some(i) == keep {
                continue;
            }
            match self.rings[i].state {
                State::Waiting => self.rings[i].state = State::Over(End::Cancelled),
                State::Ringing => self.stop(i, cause, End::Cancelled, false),
                State::Over(_) => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "ringer_tests.rs"]
mod tests;
