//! Ring-group strategies, failover, redirects and early media in simulated
//! time: each scenario runs in microseconds.

use std::cell::RefCell;
use std::collections::HashSet;

use super::*;
use crate::sip::sdp;

const STEP: Duration = Duration::from_secs(15);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn route(uri: &str) -> Route {
    Route::direct(uri.to_string(), "127.0.0.1:5060".parse().unwrap())
}

/// The media a callee's SDP answer at `port` negotiates (as the SIP driver
/// reports it).
fn answer_media(port: u16) -> Negotiated {
    let body = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    sdp::negotiate(body.as_bytes()).unwrap()
}

/// A group's members, one phone each, with the slots `strategy` gives them.
fn group(members: &[&str], slots: impl Fn(u32, u32) -> Slot) -> Vec<Plan> {
    let last = members.len() as u32 - 1;
    (0u32..)
        .zip(members)
        .map(|(turn, m)| Plan {
            target: 0,
            agent: true,
            label: m.to_string(),
            group: Some("sales".into()),
            slot: slots(turn, last),
            routes: [route(&format!("sip:{m}@127.0.0.1"))].into(),
        })
        .collect()
}

fn in_turn(turn: u32, last: u32) -> Slot {
    Slot {
        start: STEP * turn,
        stop: (turn < last).then(|| STEP * (turn + 1)),
    }
}

fn cascade(turn: u32, _: u32) -> Slot {
    Slot {
        start: STEP * turn,
        stop: None,
    }
}

/// A ringer driven by a simulated clock; `busy` agents are not free.
struct Sim {
    ringer: Ringer,
    now: Duration,
    busy: RefCell<HashSet<String>>,
    /// Every action with the time it was asked for.
    log: Vec<(Duration, Action)>,
}

impl Sim {
    fn new(plans: Vec<Plan>, timeout: Duration) -> Sim {
        let mut sim = Sim {
            ringer: Ringer::new(plans, timeout, true),
            now: Duration::ZERO,
            busy: RefCell::default(),
            log: Vec::new(),
        };
        sim.tick();
        sim
    }

    fn tick(&mut self) {
        let busy = self.busy.borrow().clone();
        self.ringer
            .handle_timeout(self.now, &|a: &str| !busy.contains(a));
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(a) = self.ringer.poll_action() {
            self.log.push((self.now, a));
        }
    }

    /// Advances to `t`, firing every timer due on the way.
    fn run_to(&mut self, t: Duration) {
        while let Some(due) = self.ringer.poll_timeout().filter(|&d| d <= t) {
            self.now = due.max(self.now);
            self.tick();
        }
        self.now = t;
    }

    fn sip(&mut self, ring: usize, event: UacEvent) {
        let busy = self.busy.borrow().clone();
        self.ringer
            .handle(self.now, Input::Sip { ring, event }, &|a: &str| {
                !busy.contains(a)
            });
        self.drain();
    }

    fn answer(&mut self, ring: usize) {
        self.sip(
            ring,
            UacEvent::Answered {
                media: Ok(answer_media(4000 + ring as u16)),
            },
        );
    }

    /// Who was invited, when, in order.
    fn invites(&self) -> Vec<(u64, usize)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Invite { ring, .. } => Some((t.as_secs(), *ring)),
                _ => None,
            })
            .collect()
    }

    /// Rings closed, when and why.
    fn closes(&self) -> Vec<(u64, usize, String)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Close { ring, cause, .. } => Some((t.as_secs(), *ring, cause.clone())),
                _ => None,
            })
            .collect()
    }

    fn released(&self) -> Vec<usize> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Release { ring } => Some(*ring),
                _ => None,
            })
            .collect()
    }

    fn answered(&self) -> Option<(usize, u64)> {
        match self.ringer.outcome()? {
            Outcome::Answered { ring, after, .. } => Some((*ring, after.as_secs())),
            _ => None,
        }
    }

    fn missed(&self) -> Option<DialStatus> {
        match self.ringer.outcome()? {
            Outcome::Missed(s) => Some(*s),
            _ => None,
        }
    }
}

#[test]
fn in_turn_rings_one_agent_at_a_time_and_the_answer_ends_the_dial() {
    let mut sim = Sim::new(group(&["a", "b", "c"], in_turn), secs(60));
    assert_eq!(sim.invites(), [(0, 0)]);
    sim.run_to(secs(20));
    assert_eq!(sim.invites(), [(0, 0), (15, 1)]);
    assert_eq!(sim.closes(), [(15, 0, "next-agent".to_string())]);
    assert_eq!(
        sim.released(),
        [0],
        "a passed-over agent is freed at once, not when the dial ends"
    );
    sim.answer(1);
    assert_eq!(sim.answered(), Some((1, 20)));
    sim.run_to(secs(60));
    assert_eq!(sim.invites().len(), 2, "c never rang");
    assert_eq!(sim.ringer.poll_timeout(), None);
}

#[test]
fn an_agent_who_took_another_call_is_passed_over_at_their_turn() {
    let mut sim = Sim::new(group(&["a", "b", "c"], in_turn), secs(60));
    // b takes a direct call while a rings.
    sim.run_to(secs(5));
    sim.busy.borrow_mut().insert("b".into());
    sim.run_to(secs(16));
    assert_eq!(
        sim.invites(),
        [(0, 0), (15, 2)],
        "b is not rung; c's turn comes at once"
    );
    assert!(sim
        .log
        .iter()
        .any(|(t, a)| *t == secs(15) && *a == Action::Skipped { ring: 1 }));
    // c rings until the dial's time is up (the last turn has no end).
    sim.run_to(secs(60));
    assert_eq!(
        sim.missed(),
        Some(DialStatus::NoAnswer),
        "a and c rang unanswered"
    );
    assert_eq!(sim.closes().last(), Some(&(60, 2, "no-answer".to_string())));
}

#[test]
fn an_agent_free_again_by_their_turn_is_rung() {
    let mut sim = Sim::new(group(&["a", "b"], in_turn), secs(60));
    sim.busy.borrow_mut().insert("b".into());
    sim.run_to(secs(10));
    sim.busy.borrow_mut().remove("b");
    sim.run_to(secs(16));
    assert_eq!(sim.invites(), [(0, 0), (15, 1)]);
}

#[test]
fn a_turn_that_fails_early_hands_over_at_once() {
    let mut sim = Sim::new(group(&["a", "b", "c"], in_turn), secs(60));
    sim.run_to(secs(3));
    sim.sip(0, UacEvent::Failed { code: 486 });
    assert_eq!(sim.invites(), [(0, 0), (3, 1)]);
    assert_eq!(sim.closes(), [(3, 0, "sip-486".to_string())]);
    // b's turn is a full step from when it began.
    sim.run_to(secs(18));
    assert_eq!(sim.invites(), [(0, 0), (3, 1), (18, 2)]);
}

#[test]
fn cascade_adds_an_agent_each_step_and_keeps_the_earlier_ones_ringing() {
    let mut sim = Sim::new(group(&["a", "b", "c"], cascade), secs(60));
    sim.run_to(secs(31));
    assert_eq!(sim.invites(), [(0, 0), (15, 1), (30, 2)]);
    assert!(sim.closes().is_empty());
    sim.answer(0);
    assert_eq!(sim.answered(), Some((0, 31)));
    assert_eq!(
        sim.closes(),
        [
            (31, 1, "answered-elsewhere".to_string()),
            (31, 2, "answered-elsewhere".to_string())
        ]
    );
    assert_eq!(sim.released(), [1, 2], "the winner stays held");
}

#[test]
fn ring_all_ends_with_no_answer_when_time_is_up() {
    let mut sim = Sim::new(group(&["a", "b"], |_, _| AT_ONCE), secs(30));
    assert_eq!(sim.invites(), [(0, 0), (0, 1)]);
    sim.run_to(secs(30));
    assert_eq!(sim.missed(), Some(DialStatus::NoAnswer));
    assert_eq!(
        sim.closes(),
        [
            (30, 0, "no-answer".to_string()),
            (30, 1, "no-answer".to_string())
        ]
    );
    assert_eq!(sim.released(), [0, 1]);
}

#[test]
fn nobody_free_is_busy_without_ringing_anyone() {
    let plans = group(&["a", "b"], in_turn);
    let mut ringer = Ringer::new(plans, secs(30), true);
    ringer.handle_timeout(Duration::ZERO, &|_| false);
    assert_eq!(ringer.outcome(), Some(&Outcome::Missed(DialStatus::Busy)));
    let actions: Vec<_> = std::iter::from_fn(|| ringer.poll_action()).collect();
    assert_eq!(
        actions,
        [Action::Skipped { ring: 0 }, Action::Skipped { ring: 1 }]
    );
}

#[test]
fn an_agents_second_phone_rings_beside_the_first() {
    // One agent, two phones: the first phone holds the agent, which must not
    // make the agent look busy to their own second phone.
    let mut plans = group(&["a", "a"], |_, _| AT_ONCE);
    plans[1].routes = [route("sip:a@127.0.0.2")].into();
    let mut ringer = Ringer::new(plans, secs(30), true);
    let held = RefCell::new(false);
    ringer.handle_timeout(Duration::ZERO, &|_| !*held.borrow());
    *held.borrow_mut() = true;
    let invites = std::iter::from_fn(|| ringer.poll_action())
        .filter(|a| matches!(a, Action::Invite { .. }))
        .count();
    assert_eq!(invites, 2);
}

#[test]
fn a_failed_carrier_fails_over_to_the_next_trunk_but_a_busy_callee_does_not() {
    let plan = |label: &str| Plan {
        target: 0,
        agent: false,
        label: label.into(),
        group: None,
        slot: AT_ONCE,
        routes: [route("sip:1@10.0.0.1"), route("sip:1@10.0.0.2")].into(),
    };
    let mut sim = Sim::new(vec![plan("1")], secs(30));
    sim.sip(0, UacEvent::Failed { code: 503 });
    assert_eq!(sim.invites(), [(0, 0), (0, 0)]);
    match &sim.log.last().unwrap().1 {
        Action::Invite { route, .. } => assert_eq!(route.label(), "1"),
        other => panic!("{other:?}"),
    }
    assert!(sim.released().is_empty(), "the leg is reused");
    sim.sip(0, UacEvent::Failed { code: 503 });
    assert_eq!(sim.missed(), Some(DialStatus::Failed));

    let mut sim = Sim::new(vec![plan("2")], secs(30));
    sim.sip(0, UacEvent::Failed { code: 486 });
    assert_eq!(
        sim.invites().len(),
        1,
        "486 is the callee's answer, not the carrier's"
    );
    assert_eq!(sim.missed(), Some(DialStatus::Busy));
}

#[test]
fn redirects_are_followed_three_times() {
    let plan = Plan {
        target: 0,
        agent: false,
        label: "x".into(),
        group: None,
        slot: AT_ONCE,
        routes: [route("sip:x@127.0.0.1")].into(),
    };
    let mut sim = Sim::new(vec![plan], secs(30));
    for n in 0..4 {
        sim.sip(
            0,
            UacEvent::Redirected {
                contact: format!("sip:y{n}@127.0.0.1:50{n}0"),
            },
        );
    }
    assert_eq!(
        sim.invites().len(),
        4,
        "the first INVITE and three redirects"
    );
    assert_eq!(sim.missed(), Some(DialStatus::Failed));
    assert!(sim.closes().iter().all(|c| c.2 == "redirected"));
}

#[test]
fn early_media_is_heard_until_its_ring_ends_then_ringback() {
    let mut sim = Sim::new(group(&["a", "b"], |_, _| AT_ONCE), secs(30));
    let progress = |port| UacEvent::Progress {
        code: 183,
        media: Some(answer_media(port)),
    };
    sim.sip(0, progress(5000));
    sim.sip(1, progress(5002));
    let early: Vec<_> = sim
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::EarlyMedia { .. } | Action::EarlyMediaOver { .. }))
        .collect();
    assert_eq!(early.len(), 1, "one callee's media at a time: {early:?}");
    sim.sip(0, UacEvent::Failed { code: 480 });
    assert!(sim
        .log
        .iter()
        .any(|(_, a)| *a == Action::EarlyMediaOver { ring: 0 }));
    // b's next 183 may now be heard.
    sim.sip(1, progress(5002));
    assert!(matches!(
        sim.log.last().unwrap().1,
        Action::EarlyMedia { ring: 1, .. }
    ));
    // Answered: no ringback after, the dial is over.
    sim.answer(1);
    assert!(!matches!(
        sim.log.last().unwrap().1,
        Action::EarlyMediaOver { .. }
    ));
}

#[test]
fn the_caller_leaving_cancels_every_ring_and_late_responses_are_ignored() {
    let mut sim = Sim::new(group(&["a", "b", "c"], cascade), secs(60));
    sim.run_to(secs(16));
    let busy = sim.busy.borrow().clone();
    sim.ringer
        .handle(sim.now, Input::CallerGone, &|a: &str| !busy.contains(a));
    sim.drain();
    assert_eq!(sim.ringer.outcome(), Some(&Outcome::CallerGone));
    assert_eq!(
        sim.closes(),
        [
            (16, 0, "caller-hangup".to_string()),
            (16, 1, "caller-hangup".to_string())
        ]
    );
    let before = sim.log.len();
    sim.sip(0, UacEvent::Failed { code: 487 });
    sim.answer(1);
    sim.run_to(secs(60));
    assert_eq!(sim.log.len(), before, "nothing happens after the end");
    assert_eq!(sim.invites().len(), 2, "c never rang");
}

#[test]
fn no_media_port_passes_the_turn() {
    let mut sim = Sim::new(group(&["a", "b"], in_turn), secs(60));
    let busy = sim.busy.borrow().clone();
    sim.ringer
        .handle(Duration::ZERO, Input::NoMedia { ring: 0 }, &|a: &str| {
            !busy.contains(a)
        });
    sim.drain();
    assert_eq!(sim.invites(), [(0, 0), (0, 1)]);
}

#[test]
fn a_bad_sdp_answer_ends_that_ring_only() {
    let mut sim = Sim::new(group(&["a", "b"], |_, _| AT_ONCE), secs(30));
    sim.sip(
        0,
        UacEvent::Answered {
            media: sdp::negotiate(b"nonsense"),
        },
    );
    assert_eq!(sim.closes(), [(0, 0, "bad-sdp-answer".to_string())]);
    assert_eq!(sim.ringer.outcome(), None);
    sim.answer(1);
    assert_eq!(sim.answered(), Some((1, 0)));
}
