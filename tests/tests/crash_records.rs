//! A node killed with calls up (SIGKILL: the OOM killer, a host reboot)
//! leaves no call record open: at the next start each is closed with cause
//! `node-restart` at the last moment the node was known alive.

use std::time::{Duration, Instant};

use hookline_tests::{path_of, NodeSpec, SipUa, TestNode};

#[test]
fn records_of_calls_up_at_a_sigkill_are_closed_as_node_restart() {
    let mut node = TestNode::start(NodeSpec::default()).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    // Two callers in the IVR, answered and listening to the menu.
    ua.call("crash-1", "100", 9).unwrap();
    ua.call("crash-2", "100", 9).unwrap();
    for id in ["crash-1", "crash-2"] {
        node.wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == id && c["answered_at"].is_string() && c["ended_at"].is_null()
        })
        .unwrap();
    }
    // Long enough for a heartbeat after the answers.
    std::thread::sleep(Duration::from_secs(3));
    let killed = Instant::now();
    let killed_at = jiff::Timestamp::now();
    node.crash_and_restart().unwrap();
    println!("restarted {:?} after the kill", killed.elapsed());
    for id in ["crash-1", "crash-2"] {
        let call = node
            .wait_for_call(Duration::from_secs(10), |c| c["id"] == id)
            .unwrap();
        assert_eq!(call["hangup_cause"], "node-restart", "{call:#}");
        let answered: jiff::Timestamp = call["answered_at"].as_str().unwrap().parse().unwrap();
        let ended: jiff::Timestamp = call["ended_at"]
            .as_str()
            .unwrap_or_else(|| panic!("still open: {call:#}"))
            .parse()
            .unwrap();
        assert!(ended >= answered, "{call:#}");
        // At the last heartbeat (every 2 s; a loaded machine may delay one), not at the restart.
        let lag = killed_at.duration_since(ended).as_secs_f64();
        assert!(
            (0.0..=4.0).contains(&lag),
            "ended {lag} s before the kill: {call:#}"
        );
        println!(
            "{id}: {:?} ended {lag:.2} s before the kill",
            path_of(&call)
        );
    }
    // Nothing is left open, and the node serves calls again.
    assert!(node
        .calls()
        .unwrap()
        .iter()
        .all(|c| c["ended_at"].is_string()));
    let tag = ua.call("after", "100", 9).unwrap();
    ua.request("BYE", "after", &tag, 2, "", "").unwrap();
    node.wait_for_call(Duration::from_secs(10), |c| {
        c["id"] == "after" && c["hangup_cause"] == "caller-bye"
    })
    .unwrap();
}
