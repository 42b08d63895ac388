//! A queue wait in simulated time: each scenario runs in microseconds.

use super::*;

const S: Duration = Duration::from_secs(1);

fn rules() -> WaitRules {
    WaitRules {
        announce_every: Some(30 * S),
        timeout: 600 * S,
        leave_digit: Some('0'),
        callback_digit: Some('5'),
        callable: true,
    }
}

fn announce(position: usize, late: Duration, new_position: Option<usize>) -> Step {
    Step::Announce {
        position,
        late,
        new_position,
        offer_callback: Some('5'),
    }
}

#[test]
fn a_caller_behind_others_hears_their_place_at_once_then_every_interval_after_the_last_ended() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(rules(), t0);
    assert_eq!(w.step(t0, 3, 0), announce(3, Duration::ZERO, Some(3)));
    // Still playing: nothing new is due, the caller waits.
    assert_eq!(w.step(t0 + S, 3, 0), Step::Wait(t0 + S + RECHECK));
    // The announcement took 8 s; the next is due 30 s after its end.
    w.announced(t0 + 8 * S);
    assert!(matches!(w.step(t0 + 37 * S, 3, 0), Step::Wait(_)));
    assert_eq!(
        w.step(t0 + 38 * S + 200 * Duration::from_millis(1), 3, 0),
        announce(3, Duration::from_millis(200), None)
    );
}

#[test]
fn the_place_is_marked_only_when_it_changed() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(rules(), t0);
    assert_eq!(w.step(t0, 4, 0), announce(4, Duration::ZERO, Some(4)));
    w.announced(t0);
    assert_eq!(w.step(t0 + 30 * S, 4, 0), announce(4, Duration::ZERO, None));
    w.announced(t0 + 30 * S);
    assert_eq!(
        w.step(t0 + 60 * S, 2, 0),
        announce(2, Duration::ZERO, Some(2))
    );
}

#[test]
fn a_caller_whose_turn_it_is_rings_the_department_without_an_announcement() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(rules(), t0);
    assert_eq!(w.step(t0, 2, 2), Step::Ring);
    // Nobody answered: not rung again at once, but after a moment.
    w.ring_ended(t0 + 20 * S);
    assert_eq!(w.step(t0 + 20 * S, 2, 2), Step::Wait(t0 + 20 * S + RECHECK));
    assert_eq!(w.step(t0 + 20 * S + RECHECK, 2, 2), Step::Ring);
}

#[test]
fn an_announcement_held_back_while_served_does_not_spin_the_driver() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(rules(), t0);
    assert_eq!(w.step(t0, 1, 1), Step::Ring);
    w.ring_ended(t0 + S);
    // Overdue announcement, caller still first with an agent free: the next
    // wake is a real moment later, never "now".
    match w.step(t0 + S, 1, 1) {
        Step::Wait(at) => assert!(at > t0 + S, "woke at once"),
        other => panic!("{other:?}"),
    }
    // Agents all busy again: the held-back announcement comes.
    assert!(matches!(w.step(t0 + 2 * S, 1, 0), Step::Announce { .. }));
}

#[test]
fn keys_leave_or_ask_for_a_callback_and_others_are_dropped() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(rules(), t0);
    w.step(t0, 5, 0);
    w.announced(t0 + 5 * S);
    w.key('7');
    w.key('0');
    assert_eq!(w.step(t0 + 6 * S, 5, 0), Step::Exit(QueueExit::Left));

    let mut w = QueueWait::new(rules(), t0);
    w.step(t0, 5, 0);
    w.announced(t0);
    w.key('5');
    assert_eq!(w.step(t0 + S, 5, 0), Step::Callback);

    // A caller who cannot be called back (a hidden number) hears so and waits on.
    let mut w = QueueWait::new(
        WaitRules {
            callable: false,
            ..rules()
        },
        t0,
    );
    w.step(t0, 5, 0);
    w.announced(t0);
    w.key('5');
    assert_eq!(w.step(t0 + S, 5, 0), Step::NoCallback);
    assert!(matches!(w.step(t0 + S, 5, 0), Step::Wait(_)));
}

#[test]
fn keys_are_bounded() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(rules(), t0);
    w.step(t0, 5, 0);
    w.announced(t0);
    for _ in 0..1000 {
        w.key('9');
    }
    // The leave key after the flood is beyond the bound: dropped too.
    w.key('0');
    assert!(matches!(w.step(t0 + S, 5, 0), Step::Wait(_)));
    assert!(w.keys.is_empty());
}

#[test]
fn the_wait_times_out_at_the_deadline_and_never_sleeps_past_it() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(
        WaitRules {
            announce_every: None,
            timeout: 10 * S,
            ..rules()
        },
        t0,
    );
    let mut now = t0;
    let mut wakes = 0;
    loop {
        match w.step(now, 3, 0) {
            Step::Wait(at) => {
                assert!(at <= t0 + 10 * S);
                assert!(at > now);
                now = at;
                wakes += 1;
            }
            Step::Exit(e) => {
                assert_eq!(e, QueueExit::Timeout);
                break;
            }
            other => panic!("no announcements configured: {other:?}"),
        }
    }
    assert_eq!(now, t0 + 10 * S);
    assert_eq!(wakes, 20, "one look per RECHECK");
}

#[test]
fn the_callers_turn_at_the_deadline_still_rings() {
    let t0 = Instant::now();
    let mut w = QueueWait::new(
        WaitRules {
            timeout: 10 * S,
            ..rules()
        },
        t0,
    );
    assert_eq!(w.step(t0 + 10 * S, 1, 1), Step::Ring);
    w.ring_ended(t0 + 30 * S);
    assert_eq!(w.step(t0 + 30 * S, 1, 1), Step::Exit(QueueExit::Timeout));
}
