use hookline_tests::{NodeSpec, RtpSink, SipUa, TestNode};
use std::time::Duration;
#[test]
fn probe() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    ua.call("p1", "500", sink.port).unwrap();
    std::thread::sleep(Duration::from_secs(15));
    let p = sink.finish();
    let t0 = p[0].at;
    let mut last = t0;
    for x in &p {
        let g = x.at - last;
        if g > Duration::from_millis(100) {
            eprintln!("gap {:?} at {:?}", g, last - t0);
        }
        last = x.at;
    }
    eprintln!("packets {} span {:?}", p.len(), last - t0);
    let calls = node.calls().unwrap();
    eprintln!("{:#}", calls[0]["path"]);
}
