//! The plugin host and the call session without a network: a node built
//! from a small config (no SIP peer, no media peer), plugins run on parked
//! sessions whose SIP commands the test reads. What each guest behaviour
//! comes to (the outcome the call record and the fallback are decided on),
//! and what each verb asks of the SIP side, or refuses.
//!
//! Needs the hostile test plugin built (`scripts/setup.sh` builds it).

use std::sync::Arc;
use std::time::Duration;

use hookline::call::error::Error as CallError;
use hookline::call::session::CallEvent;
use hookline::call::{parked_session, Node, SipCommand};
use hookline::plugin::{CallInfo, Outcome};
use hookline::sip::endpoint::EndCause;

mod common;
use common::node;

fn info(mode: &str) -> CallInfo {
    CallInfo {
        config: format!("\"{mode}\""),
        ..hookline::plugin::bench_info()
    }
}

/// Runs the hostile plugin in `mode` on a live (parked) call; the caller
/// hangs up after `hangup_after` if given.
async fn outcome(node: &Arc<Node>, mode: &str, hangup_after: Option<Duration>) -> Outcome {
    let plugin = node.plugins.get("hostile").unwrap();
    // `events` lives until the run ends: the call stays up unless hung up.
    let (session, events, _sip) = parked_session(node, "hostile");
    let caller = async {
        if let Some(after) = hangup_after {
            tokio::time::sleep(after).await;
            let _ = events.send(CallEvent::Ended(EndCause::CallerBye));
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        (outcome, _) = node.plugins.run(&plugin, session, info(mode)) => outcome,
        _ = caller => unreachable!("the caller's side never ends on its own"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_guest_behaviour_maps_to_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;
    // Returns ok after host calls: done.
    assert!(matches!(
        outcome(&node, "ping:100", None).await,
        Outcome::Done
    ));
    // Returns an error: failed, with the plugin's own reason.
    match outcome(&node, "no-such-mode", None).await {
        Outcome::Failed(r) => assert!(r.contains("unknown mode"), "{r}"),
        o => panic!("{o:?}"),
    }
    // Panics, loops past its CPU budget, grows past its memory limit,
    // recurses past its stack: each a trap, and only that call's.
    for mode in ["trap", "loop", "memory", "recurse"] {
        match outcome(&node, mode, None).await {
            Outcome::Trapped(t) => assert!(!t.is_empty(), "{mode}: an empty trap"),
            o => panic!("{mode}: {o:?}"),
        }
    }
    // Parked in a verb when the caller hangs up: the verb returns hung-up
    // at once, and this plugin passes the error on as its own.
    let parked = outcome(&node, "park", Some(Duration::from_millis(200))).await;
    assert!(
        matches!(&parked, Outcome::Failed(r) if r.contains("HungUp")),
        "{parked:?}"
    );
    // And the host is whole: a well-behaved call still runs.
    assert!(matches!(
        outcome(&node, "ping:1", None).await,
        Outcome::Done
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbs_ask_the_sip_side_for_the_right_thing_or_refuse_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;

    // reject: only final error statuses; then a SIP Reject and the call ends.
    let (mut s, _events, mut sip) = parked_session(&node, "hostile");
    assert!(matches!(s.reject(200), Err(CallError::InvalidArgument(_))));
    assert!(matches!(s.reject(99), Err(CallError::InvalidArgument(_))));
    s.reject(486).unwrap();
    match sip.try_recv() {
        Ok(SipCommand::Reject { code, .. }) => assert_eq!(code, 486),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.ended.as_deref(), Some("rejected-486"));
    assert!(s.path.contains(&"reject:486".to_string()), "{:?}", s.path);
    // A call that has ended refuses further verbs.
    assert!(matches!(s.set_language("en"), Err(CallError::HungUp)));

    // set-language: BCP 47-shaped tags only, kept lower-case and recorded.
    let (mut s, _events, _sip) = parked_session(&node, "hostile");
    for bad in ["", "x", "en us", "../../etc", &"a".repeat(17)] {
        assert!(
            matches!(s.set_language(bad), Err(CallError::InvalidArgument(_))),
            "{bad:?}"
        );
    }
    s.set_language("PT-br").unwrap();
    assert!(
        s.path.contains(&"language:pt-br".to_string()),
        "{:?}",
        s.path
    );

    // wait-event: a key that came in is returned; none within the time is a
    // timeout; a hang-up is hung-up.
    let (mut s, events, _sip) = parked_session(&node, "hostile");
    events
        .send(CallEvent::Media(hookline::media::worker::MediaEvent::Dtmf(
            '7',
        )))
        .unwrap();
    let ev = s.wait_event(1000).await.unwrap();
    assert_eq!(format!("{ev:?}"), "CallEvent::Digit(\"7\")");
    let started = std::time::Instant::now();
    let ev = s.wait_event(100).await.unwrap();
    assert_eq!(format!("{ev:?}"), "CallEvent::Timeout");
    assert!(started.elapsed() >= Duration::from_millis(100));
    events.send(CallEvent::Ended(EndCause::CallerBye)).unwrap();
    assert!(matches!(s.wait_event(5000).await, Err(CallError::HungUp)));

    // send-dtmf: keys only, 1 to 64.
    let (mut s, _events, _sip) = parked_session(&node, "hostile");
    assert!(matches!(
        s.send_dtmf("").await,
        Err(CallError::InvalidArgument(_))
    ));
    assert!(matches!(
        s.send_dtmf("12x").await,
        Err(CallError::InvalidArgument(_))
    ));
    assert!(matches!(
        s.send_dtmf(&"1".repeat(65)).await,
        Err(CallError::InvalidArgument(_))
    ));
}
