//! Call forwarding per extension: unconditional, outside working hours, when
//! unreachable (not registered), busy, or unanswered after N seconds, and a
//! reserve number as the last step so no call is lost. Sans-IO: the planner
//! is given the extension's state and the time, and says whom to ring next.

pub use crate::config::Forwarding;

/// Why a call went where it went (for the call record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Extension,
    Always,
    OffHours,
    Unreachable,
    Busy,
    NoAnswer,
    Reserve,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Extension => "extension",
            Reason::Always => "always",
            Reason::OffHours => "off-hours",
            Reason::Unreachable => "unreachable",
            Reason::Busy => "busy",
            Reason::NoAnswer => "no-answer",
            Reason::Reserve => "reserve",
        }
    }
}

/// One step: whom to ring, for how long at most (`None`: the dial's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub target: String,
    pub ring_s: Option<u32>,
    pub reason: Reason,
}

/// How a step's ringing ended, when nobody connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    NoAnswer,
    Busy,
    /// Nothing could ring (not registered, errors).
    Failed,
}

/// What the extension is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionState {
    pub registered: bool,
    pub busy: bool,
    pub now_s: i64,
}

impl Forwarding {
    /// The first step for a call to extension `user`.
    pub fn first(&self, user: &str, state: ExtensionState) -> Step {
        let step = |target: &str, reason| Step {
            target: target.to_string(),
            ring_s: None,
            reason,
        };
        let closed = self.hours.as_ref().is_some_and(|h| !h.is_open(state.now_s));
        if let (true, Some(t)) = (closed, &self.off_hours) {
            return step(t, Reason::OffHours);
        }
        if let Some(t) = &self.always {
            return step(t, Reason::Always);
        }
        if !state.registered {
            if let Some(t) = self.unreachable.as_ref().or(self.reserve.as_ref()) {
                let reason = if self.unreachable.is_some() {
                    Reason::Unreachable
                } else {
                    Reason::Reserve
                };
                return step(t, reason);
            }
        }
        if state.busy {
            if let Some(t) = &self.busy {
                return step(t, Reason::Busy);
            }
        }
        Step {
            target: user.to_string(),
            ring_s: self.no_answer.as_ref().map(|_| self.no_answer_s),
            reason: Reason::Extension,
        }
    }

    /// The step after `last` rang without connecting; `None` when nothing is left.
    pub fn next(&self, last: &Step, missed: Missed) -> Option<Step> {
        let forward = match (last.reason, missed) {
            (Reason::Extension, Missed::NoAnswer) => {
                self.no_answer.as_ref().map(|t| (t, Reason::NoAnswer))
            }
            (Reason::Extension, Missed::Busy) => self.busy.as_ref().map(|t| (t, Reason::Busy)),
            (Reason::Extension, Missed::Failed) => {
                self.unreachable.as_ref().map(|t| (t, Reason::Unreachable))
            }
            _ => None,
        };
        let (target, reason) = match forward {
            Some(f) => f,
            None if last.reason == Reason::Reserve => return None,
            None => (self.reserve.as_ref()?, Reason::Reserve),
        };
        Some(Step {
            target: target.clone(),
            ring_s: None,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Schedule;

    fn rules() -> Forwarding {
        Forwarding {
            busy: Some("203".into()),
            no_answer: Some("204".into()),
            no_answer_s: 10,
            unreachable: Some("tel:5551234".into()),
            reserve: Some("tel:5559999".into()),
            ..Forwarding::default()
        }
    }

    const UP: ExtensionState = ExtensionState {
        registered: true,
        busy: false,
        now_s: 0,
    };

    #[test]
    fn rings_the_extension_then_forwards_by_why_it_missed_then_the_reserve() {
        let r = rules();
        let first = r.first("201", UP);
        assert_eq!((first.target.as_str(), first.ring_s), ("201", Some(10)));
        let na = r.next(&first, Missed::NoAnswer).unwrap();
        assert_eq!((na.target.as_str(), na.reason), ("204", Reason::NoAnswer));
        let busy = r.next(&first, Missed::Busy).unwrap();
        assert_eq!(busy.target, "203");
        let reserve = r.next(&na, Missed::NoAnswer).unwrap();
        assert_eq!(
            (reserve.target.as_str(), reserve.reason),
            ("tel:5559999", Reason::Reserve)
        );
        assert_eq!(r.next(&reserve, Missed::Failed), None);
    }

    #[test]
    fn unreachable_busy_always_and_off_hours_skip_the_extension() {
        let r = rules();
        let down = ExtensionState {
            registered: false,
            ..UP
        };
        assert_eq!(r.first("201", down).reason, Reason::Unreachable);
        let busy = ExtensionState { busy: true, ..UP };
        assert_eq!(r.first("201", busy).target, "203");
        let always = Forwarding {
            always: Some("202".into()),
            ..rules()
        };
        assert_eq!(always.first("201", UP).reason, Reason::Always);
        // Closed on Sundays: 2026-11-22 12:00 UTC is a Sunday.
        let office = Forwarding {
            hours: Some(Schedule {
                timezone: "UTC".into(),
                days: vec!["mon-fri".into()],
                hours: vec!["09:00-18:00".into()],
                holidays: vec![],
            }),
            off_hours: Some("tel:5550000".into()),
            ..rules()
        };
        let sunday = ExtensionState {
            now_s: 1_795_348_800,
            ..UP
        };
        assert_eq!(office.first("201", sunday).reason, Reason::OffHours);
        let monday = ExtensionState {
            now_s: 1_795_348_800 + 86_400,
            ..UP
        };
        assert_eq!(office.first("201", monday).reason, Reason::Extension);
        // No rules for a case: the extension rings; without a reserve, nothing after.
        let none = Forwarding::default();
        let s = none.first("201", down);
        assert_eq!((s.target.as_str(), s.ring_s), ("201", None));
        assert_eq!(none.next(&s, Missed::Failed), None);
    }
}
