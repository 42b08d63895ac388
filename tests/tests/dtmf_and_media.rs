//! Every DTMF form reaches the plugin (RFC 4733 is covered in sipp_ivr), and the
//! media edge cases: symmetric RTP latching and dead-media timeout.

use std::net::UdpSocket;
use std::time::Duration;

use hookline_tests::{
    dtmf_tone, path_of, sipp, sipp_with_args, Baresip, NodeSpec, RtpSink, SipUa, TestNode,
};

#[test]
fn sip_info_dtmf_relay_reaches_the_ivr() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let sink = RtpSink::bind().unwrap();
    sipp(
        &node,
        "uac_ivr_info.xml",
        "100",
        &[("rtp_sink", sink.port.to_string())],
    )
    .unwrap();
    drop(sink.finish());
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "info" && c["hangup_cause"].is_string()
        })
        .unwrap();
    let path = path_of(&call);
    assert!(path.contains(&"digits:2".to_string()), "{path:?}");
    assert!(path.contains(&"branch:support".to_string()), "{path:?}");
}

#[test]
fn the_same_call_over_tcp_with_info_dtmf_and_a_bye_back_on_the_connection() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let sink = RtpSink::bind().unwrap();
    // -t t1: one TCP connection; the node's BYE must come back over it for SIPp to pass.
    sipp_with_args(
        &node,
        "uac_ivr_info.xml",
        "100",
        &[("rtp_sink", sink.port.to_string())],
        &["-t", "t1"],
    )
    .unwrap();
    let packets = sink.finish();
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["caller"] == "info" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    let path = path_of(&call);
    assert!(path.contains(&"branch:support".to_string()), "{path:?}");
    assert_eq!(call["hangup_cause"], "plugin-hangup");
    assert!(
        packets.len() > 100,
        "media still flows over UDP: {} packets",
        packets.len()
    );
}

#[test]
fn inband_tones_from_baresip_reach_the_ivr() {
    // baresip offers telephone-event; the node is told to listen to the audio instead.
    let node = TestNode::start(NodeSpec {
        node_section: Some("dtmf = \"inband\""),
        ..NodeSpec::default()
    })
    .unwrap();
    let mut mic = vec![0i16; 8000 * 2];
    mic.extend(dtmf_tone('2', 200));
    mic.extend(vec![0i16; 8000 * 20]);
    let phone = Baresip::start_with_mic(&format!("sip:100@{}", node.sip), &mic).unwrap();
    let call = node
        .wait_for_call(Duration::from_secs(30), |c| {
            c["caller"] == "bs" && c["hangup_cause"].is_string()
        })
        .unwrap_or_else(|e| panic!("{e}\nbaresip log:\n{}", phone.log()));
    let path = path_of(&call);
    assert!(path.contains(&"digits:2".to_string()), "{path:?}");
    assert!(path.contains(&"branch:support".to_string()), "{path:?}");
}

#[test]
fn symmetric_rtp_latches_to_where_the_callers_media_comes_from() {
    let node = TestNode::start(NodeSpec::default()).unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    // The SDP names an address the phone is not at (its address inside a NAT;
    // 127.0.0.2 keeps the test on loopback), unlike its signalling's 127.0.0.1.
    ua.invite_with_media_ip("nat", "100", "127.0.0.2", 9)
        .unwrap();
    let ok = ua
        .expect("nat", "SIP/2.0 200", Duration::from_secs(10))
        .unwrap();
    let tag = hookline_tests::to_tag(&ok);
    ua.request("ACK", "nat", &tag, 1, "", "").unwrap();
    let body = ok.split("\r\n\r\n").nth(1).unwrap();
    let port: u16 = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The phone's media really comes from here.
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut pkt = [0xffu8; 172];
    let mut got = 0;
    for i in 0..50u16 {
        pkt[..12].copy_from_slice(&[0x80, 0, (i >> 8) as u8, i as u8, 0, 0, 0, 0, 1, 2, 3, 4]);
        phone.send_to(&pkt, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 512];
        while phone.recv(&mut buf).is_ok() {
            got += 1;
        }
    }
    ua.request("BYE", "nat", &tag, 2, "", "").unwrap();
    assert!(
        got > 20,
        "node did not latch: the phone received {got} packets"
    );
}

#[test]
fn a_call_without_media_is_hung_up_after_the_rtp_timeout() {
    let node = TestNode::start(NodeSpec {
        node_section: Some("rtp_timeout_s = 2"),
        ..NodeSpec::default()
    })
    .unwrap();
    let ua = SipUa::new(node.sip).unwrap();
    let sink = RtpSink::bind().unwrap();
    ua.call("dead", "100", sink.port).unwrap();
    // The caller sends nothing; the node gives up and says BYE.
    let bye = ua.expect("dead", "BYE ", Duration::from_secs(10)).unwrap();
    assert!(bye.contains("CSeq: 1 BYE"), "{bye}");
    let call = node
        .wait_for_call(Duration::from_secs(10), |c| {
            c["id"] == "dead" && c["hangup_cause"].is_string()
        })
        .unwrap();
    assert_eq!(call["hangup_cause"], "rtp-timeout");
}
