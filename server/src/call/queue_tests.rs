//! Queue order, callbacks and announcements, without calls.

use super::*;

#[test]
fn first_come_first_served_and_a_full_queue_refuses() {
    let qs = Queues::default();
    let a = qs.join("support", 2, 0).unwrap();
    let b = qs.join("support", 2, 0).unwrap();
    assert_eq!(qs.join("support", 2, 0), None);
    assert_eq!(qs.position("support", a), Some(1));
    assert_eq!(qs.position("support", b), Some(2));
    qs.leave("support", a);
    assert_eq!(qs.position("support", b), Some(1));
    assert_eq!(qs.stats()["support"].waiting, 1);
}

fn cb(id: &str, joined_ms: i64) -> PendingCallback {
    PendingCallback {
        id: id.into(),
        number: "5551234".into(),
        joined_ms,
        in_progress: false,
    }
}

/// A caller who asks for a callback keeps their place after leaving;
/// it is served when it comes up, once, and retried if nobody answered.
#[test]
fn a_callback_keeps_its_place_until_served() {
    let qs = Queues::default();
    let a = qs.join("q", 10, 0).unwrap();
    let b = qs.join("q", 10, 0).unwrap();
    qs.to_callback("q", a, cb("cb-a", 1));
    qs.leave("q", a); // the caller hung up
    assert_eq!(qs.position("q", b), Some(2), "b is still behind a's place");
    assert!(qs.is_callback("q", a));
    assert_eq!(qs.stats()["q"].callbacks_waiting, 1);
    assert!(qs.callbacks_due("q", 0).is_empty(), "no free agent");
    let due = qs.callbacks_due("q", 1);
    assert_eq!(due.len(), 1);
    assert!(qs.callbacks_due("q", 1).is_empty(), "served once at a time");
    qs.callback_retry("q", "cb-a");
    assert_eq!(qs.callbacks_due("q", 1).len(), 1);
    qs.callback_done("q", "cb-a");
    assert_eq!(qs.position("q", b), Some(1));
    assert!(qs.callbacks().is_empty());
}

/// Restored after a restart, an old place goes before later callers.
#[test]
fn a_restored_callback_goes_before_callers_who_came_later() {
    let qs = Queues::default();
    let live = qs.join("q", 10, 0).unwrap();
    let now = crate::store::now_ms();
    qs.restore("q", cb("old", now - 60_000));
    assert_eq!(qs.position("q", live), Some(2));
    assert_eq!(qs.callbacks()[0].1, 1);
    let expired = qs.callbacks_expired("q", Duration::from_secs(30), Instant::now());
    assert_eq!(expired.len(), 1, "waited a minute against a 30 s window");
    assert!(qs.callbacks_due("q", 5).is_empty(), "already being handled");
}

#[test]
fn higher_priorities_go_first_and_equal_ones_keep_their_order() {
    let qs = Queues::default();
    let a = qs.join("q", 10, 0).unwrap();
    let b = qs.join("q", 10, 0).unwrap();
    let vip = qs.join("q", 10, 10).unwrap();
    let vip2 = qs.join("q", 10, 10).unwrap();
    let mid = qs.join("q", 10, 5).unwrap();
    let order: Vec<usize> = [vip, vip2, mid, a, b]
        .iter()
        .map(|t| qs.position("q", *t).unwrap())
        .collect();
    assert_eq!(order, [1, 2, 3, 4, 5]);
    let cfg: QueueConfig = toml::from_str(
        r#"name = "q"
group = "g"
priorities = { "380501234567" = 10, "38050*" = 5, "3805*" = 1 }"#,
    )
    .unwrap();
    assert_eq!(cfg.priority_of("380501234567"), 10);
    assert_eq!(cfg.priority_of("380509999999"), 5, "the longest prefix");
    assert_eq!(cfg.priority_of("380671234567"), 0);
}

#[test]
fn only_numbers_can_be_called_back() {
    assert!(callable("+380441234567"));
    assert!(callable("201"));
    assert!(!callable("anonymous"));
    assert!(!callable(""));
    assert_eq!(
        callback_offer('*'),
        "To be called back without losing your place, press star."
    );
}

#[test]
fn estimated_wait_follows_the_measured_handle_time() {
    let qs = Queues::default();
    assert_eq!(qs.average_handle("q"), DEFAULT_HANDLE);
    qs.count("q", |s| {
        s.answered = 2;
        s.talk_ms_total = 180_000;
    });
    assert_eq!(qs.average_handle("q"), Duration::from_secs(90));
    let wait = estimated_wait(3, 2, Duration::from_secs(90));
    assert_eq!(wait, Duration::from_secs(135));
    assert_eq!(
        announcement(3, wait).join(" "),
        "You are number 3 in the queue. The estimated wait is about 3 minutes."
    );
    assert_eq!(announcement(1, Duration::from_secs(10))[3], "1 minute.");
}

/// The callback scheduler in simulated time: a kept place is served when its
/// turn comes and an agent is free, retried in its place when nobody
/// answered, never expired while it is being served, never both expired and
/// served, and given up (the customer called with an apology) once the
/// window has passed.
#[test]
fn callbacks_are_served_in_turn_retried_in_place_and_expire_once_in_simulated_time() {
    const S: Duration = Duration::from_secs(1);
    let window = 600 * S;
    let t0 = Instant::now();
    let qs = Queues::default();
    let a = qs.join_at("q", 10, 0, t0).unwrap();
    let b = qs.join_at("q", 10, 0, t0 + 10 * S).unwrap();
    let c = qs.join_at("q", 10, 0, t0 + 20 * S).unwrap();
    qs.to_callback("q", b, cb("cb-b", 0));
    qs.leave("q", b);
    assert!(qs.has_callbacks("q"));

    // b is second: one free agent serves a (a live caller), not b.
    assert_eq!(
        qs.callback_work("q", window, 1, t0 + 30 * S),
        CallbackWork::default()
    );
    // Two free agents: b's turn.
    let w = qs.callback_work("q", window, 2, t0 + 31 * S);
    assert_eq!((w.expire.len(), w.serve.len()), (0, 1));
    assert_eq!(w.serve[0].id, "cb-b");
    // Being served: neither served twice nor expired, however long it takes.
    assert_eq!(
        qs.callback_work("q", window, 2, t0 + 700 * S),
        CallbackWork::default()
    );
    // Nobody answered: b waits again in its place, ahead of c.
    qs.callback_retry("q", "cb-b");
    assert_eq!(qs.position("q", c), Some(3));
    // Its window passed meanwhile: given up first, not served.
    let w = qs.callback_work("q", window, 2, t0 + 700 * S);
    assert_eq!((w.expire.len(), w.serve.len()), (1, 0));
    qs.callback_done("q", "cb-b");
    assert!(!qs.has_callbacks("q"));
    assert_eq!(qs.position("q", a), Some(1));
    assert_eq!(qs.position("q", c), Some(2));
}
