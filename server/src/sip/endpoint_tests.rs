//! The SIP endpoint against hand-made messages, in simulated time.

use super::*;
use crate::codec::Format;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn invite(call_id: &str, body: &str) -> Vec<u8> {
    format!(
        "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
         From: \"Al\" <sip:alice@127.0.0.1:5070>;tag=a1\r\nTo: <sip:100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5070>\r\n\
         Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn in_dialog(method: &str, call_id: &str, cseq: u32, to_tag: &str) -> Vec<u8> {
    format!(
        "{method} sip:hookline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{cseq}{method}\r\n\
         From: <sip:alice@127.0.0.1:5070>;tag=a1\r\nTo: <sip:100@127.0.0.1>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn peer() -> SocketAddr {
    "127.0.0.1:5070".parse().unwrap()
}

struct Drained {
    sent: Vec<String>,
    events: Vec<Event>,
}

fn drain(ep: &mut Endpoint) -> Drained {
    let mut d = Drained {
        sent: vec![],
        events: vec![],
    };
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit { data, .. } => d.sent.push(String::from_utf8(data).unwrap()),
            Output::Event(e) => d.events.push(e),
        }
    }
    d
}

fn status(msg: &str) -> &str {
    msg.split(' ').nth(1).unwrap_or("")
}

fn to_tag(msg: &str) -> String {
    let to = msg.lines().find(|l| l.starts_with("To:")).unwrap();
    message::tag_of(&to[3..]).unwrap().to_string()
}

fn new_call(ep: &mut Endpoint, now: Instant) -> Drained {
    ep.handle_datagram(now, peer(), &invite("c1", OFFER));
    drain(ep)
}

#[test]
fn invite_answer_ack_bye() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    let d = new_call(&mut ep, t0);
    assert_eq!(status(&d.sent[0]), "100");
    let Event::Incoming(inc) = &d.events[0] else {
        panic!()
    };
    assert_eq!((inc.caller.as_str(), inc.callee.as_str()), ("alice", "100"));
    assert_eq!(inc.caller_name.as_deref(), Some("Al"));
    assert_eq!(inc.offer.dtmf_pt, Some(101));
    ep.ringing("c1");
    assert!(ep.answer(t0, "c1", "v=0\r\n".into()));
    let d = drain(&mut ep);
    assert_eq!(status(&d.sent[0]), "180");
    assert_eq!(status(&d.sent[1]), "200");
    let tag = to_tag(&d.sent[1]);
    assert_eq!(tag, to_tag(&d.sent[0]), "one dialog, one tag");
    ep.handle_datagram(t0, peer(), &in_dialog("ACK", "c1", 1, &tag));
    // No retransmission once acknowledged.
    ep.handle_timeout(t0 + Duration::from_secs(2));
    assert!(drain(&mut ep).sent.is_empty());
    ep.handle_datagram(t0, peer(), &in_dialog("BYE", "c1", 2, &tag));
    let d = drain(&mut ep);
    assert_eq!(status(&d.sent[0]), "200");
    assert_eq!(
        d.events,
        vec![Event::Ended {
            call_id: "c1".into(),
            cause: EndCause::CallerBye
        }]
    );
    // A retransmitted BYE is answered again, without a second event.
    ep.handle_datagram(t0, peer(), &in_dialog("BYE", "c1", 2, &tag));
    let d = drain(&mut ep);
    assert_eq!(status(&d.sent[0]), "200");
    assert!(d.events.is_empty());
    ep.handle_timeout(t0 + Duration::from_secs(40));
    assert_eq!(ep.dialog_count(), 0);
}

#[test]
fn lost_ack_retransmits_200_then_gives_up_with_bye() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    new_call(&mut ep, t0);
    ep.answer(t0, "c1", "v=0\r\n".into());
    drain(&mut ep);
    let mut retransmits = 0;
    let mut t = t0;
    while t < t0 + Duration::from_secs(31) {
        t += Duration::from_millis(100);
        ep.handle_timeout(t);
        retransmits += drain(&mut ep)
            .sent
            .iter()
            .filter(|m| status(m) == "200")
            .count();
    }
    // 0.5, 1.5, 3.5, 7.5, 11.5, ... 31.5: T1 doubling, capped at T2.
    assert_eq!(retransmits, 9);
    ep.handle_timeout(t0 + Duration::from_secs(33));
    let d = drain(&mut ep);
    assert!(
        d.sent[0].starts_with("BYE sip:alice@127.0.0.1:5070 SIP/2.0"),
        "{}",
        d.sent[0]
    );
    assert_eq!(
        d.events,
        vec![Event::Ended {
            call_id: "c1".into(),
            cause: EndCause::AckTimeout
        }]
    );
}

#[test]
fn retransmitted_invite_gets_last_response() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    new_call(&mut ep, t0);
    ep.ringing("c1");
    drain(&mut ep);
    ep.handle_datagram(t0, peer(), &invite("c1", OFFER));
    let d = drain(&mut ep);
    assert_eq!(d.sent.len(), 1);
    assert_eq!(status(&d.sent[0]), "180");
    assert!(d.events.is_empty(), "no second call");
}

#[test]
fn cancel_before_answer_gives_487() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    new_call(&mut ep, t0);
    ep.handle_datagram(t0, peer(), &in_dialog("CANCEL", "c1", 1, "x"));
    let d = drain(&mut ep);
    assert_eq!(status(&d.sent[0]), "200");
    assert_eq!(status(&d.sent[1]), "487");
    assert_eq!(
        d.events,
        vec![Event::Ended {
            call_id: "c1".into(),
            cause: EndCause::Cancelled
        }]
    );
    // Answering afterwards is refused.
    assert!(!ep.answer(t0, "c1", "v=0\r\n".into()));
    // 487 is retransmitted until the ACK.
    ep.handle_timeout(t0 + Duration::from_millis(600));
    assert_eq!(status(&drain(&mut ep).sent[0]), "487");
    ep.handle_datagram(t0, peer(), &in_dialog("ACK", "c1", 1, "x"));
    ep.handle_timeout(t0 + Duration::from_secs(2));
    assert!(drain(&mut ep).sent.is_empty());
}

#[test]
fn no_common_codec_is_488_and_garbage_is_400_or_dropped() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    let g729 = OFFER.replace("RTP/AVP 0 101", "RTP/AVP 18");
    ep.handle_datagram(t0, peer(), &invite("c2", &g729));
    let d = drain(&mut ep);
    assert_eq!(status(&d.sent[0]), "488");
    assert!(d.events.is_empty());
    ep.handle_datagram(t0, peer(), &invite("c3", "not sdp at all"));
    assert_eq!(status(&drain(&mut ep).sent[0]), "400");
    // Broken request line but echoable headers: 400.
    let mut broken = invite("c4", OFFER);
    broken[0..6].copy_from_slice(b"INV@TE");
    ep.handle_datagram(t0, peer(), &broken);
    let sent = drain(&mut ep).sent;
    assert!(sent.is_empty() || status(&sent[0]) == "400");
    ep.handle_datagram(t0, peer(), b"\x00\x01garbage");
    assert!(drain(&mut ep).sent.is_empty());
    assert!(ep.stats().dropped >= 1);
}

#[test]
fn info_dtmf_relay_and_plain_dtmf_become_keys() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    new_call(&mut ep, t0);
    ep.answer(t0, "c1", "v=0\r\n".into());
    drain(&mut ep);
    for (cseq, (ct, body, key)) in [
        (
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
            Some('5'),
        ),
        ("application/dtmf-relay", "Signal= 11\r\n", Some('#')),
        ("application/dtmf", "*", Some('*')),
        ("application/dtmf", "x", None),
        ("text/plain", "5", None),
    ]
    .into_iter()
    .enumerate()
    {
        // Each INFO is a new request: its own CSeq.
        let msg = String::from_utf8(in_dialog("INFO", "c1", 3 + cseq as u32, "t"))
            .unwrap()
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            );
        ep.handle_datagram(t0, peer(), msg.as_bytes());
        let d = drain(&mut ep);
        assert_eq!(status(&d.sent[0]), "200");
        let got = d.events.iter().find_map(|e| match e {
            Event::Dtmf { key, .. } => Some(*key),
            _ => None,
        });
        assert_eq!(got, key, "{ct} {body:?}");
    }
}

#[test]
fn a_source_sending_too_many_requests_gets_503_then_silence() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap()).with_source_limit(5);
    let stranger: SocketAddr = "192.0.2.9:5060".parse().unwrap();
    let options = |i: u32| {
        format!(
            "OPTIONS sip:n@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-o{i}\r\n\
             From: <sip:x@192.0.2.9>;tag=f{i}\r\nTo: <sip:n@127.0.0.1>\r\nCall-ID: o{i}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut codes = Vec::new();
    for i in 0..12 {
        ep.handle_datagram(t0, stranger, options(i).as_bytes());
        let d = drain(&mut ep);
        codes.push(
            d.sent
                .first()
                .map(|m| status(m).to_string())
                .unwrap_or_default(),
        );
    }
    assert_eq!(codes[..5], ["200"; 5]);
    assert_eq!(codes[5..10], ["503"; 5]);
    assert!(codes[10..].iter().all(String::is_empty), "{codes:?}");
    // Loopback (a local proxy) is not limited.
    for i in 100..120 {
        ep.handle_datagram(t0, peer(), options(i).as_bytes());
        assert_eq!(status(&drain(&mut ep).sent[0]), "200");
    }
    // A second later the stranger is served again.
    ep.handle_datagram(
        t0 + Duration::from_secs(1),
        stranger,
        options(50).as_bytes(),
    );
    assert_eq!(status(&drain(&mut ep).sent[0]), "200");
}

#[test]
fn a_retransmitted_info_is_answered_again_but_delivers_its_key_once() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    new_call(&mut ep, t0);
    ep.answer(t0, "c1", "v=0\r\n".into());
    drain(&mut ep);
    let info = |cseq: u32, key: &str| {
        String::from_utf8(in_dialog("INFO", "c1", cseq, "t"))
            .unwrap()
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: application/dtmf\r\nContent-Length: {}\r\n\r\n{key}",
                    key.len()
                ),
            )
    };
    let mut keys = Vec::new();
    // "2", "0", "1" with the "0" sent three times (its 200 lost twice).
    for (cseq, key) in [(3, "2"), (4, "0"), (4, "0"), (4, "0"), (5, "1")] {
        ep.handle_datagram(t0, peer(), info(cseq, key).as_bytes());
        let d = drain(&mut ep);
        assert_eq!(status(&d.sent[0]), "200", "every copy is answered");
        keys.extend(d.events.iter().filter_map(|e| match e {
            Event::Dtmf { key, .. } => Some(*key),
            _ => None,
        }));
    }
    assert_eq!(keys.iter().collect::<String>(), "201");
}

#[test]
fn reinvite_with_another_codec_gets_a_new_answer() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    new_call(&mut ep, t0);
    let ours = "v=0\r\no=hookline 1 1 IN IP4 127.0.0.1\r\ns=hookline\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    ep.answer(t0, "c1", ours.into());
    let tag = to_tag(&drain(&mut ep).sent[0]);
    ep.handle_datagram(t0, peer(), &in_dialog("ACK", "c1", 1, &tag));
    let pcma = OFFER.replace("RTP/AVP 0 101", "RTP/AVP 8 101");
    let reinvite = String::from_utf8(invite("c1", &pcma))
        .unwrap()
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
    ep.handle_datagram(t0, peer(), reinvite.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(status(&d.sent[0]), "200");
    assert!(
        d.sent[0].contains("m=audio 20000 RTP/AVP 8 101\r\n"),
        "{}",
        d.sent[0]
    );
    assert!(
        matches!(
            d.events[0],
            Event::Reinvite {
                codec: Format::PCMA,
                hold: false,
                ..
            }
        ),
        "{:?}",
        d.events
    );
}

#[test]
fn contact_names_the_address_facing_each_peer() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("0.0.0.0:5060".parse().unwrap())
        .with_local_ip_for(|_| "192.0.2.7".parse().unwrap());
    new_call(&mut ep, t0);
    ep.answer(t0, "c1", "v=0\r\n".into());
    let ok = drain(&mut ep).sent.remove(0);
    assert!(
        ok.contains("Contact: <sip:hookline@192.0.2.7:5060>"),
        "{ok}"
    );
}

#[test]
fn options_and_local_hangup() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    ep.handle_datagram(t0, peer(), &in_dialog("OPTIONS", "o1", 1, "x"));
    assert_eq!(status(&drain(&mut ep).sent[0]), "200");
    new_call(&mut ep, t0);
    ep.answer(t0, "c1", "v=0\r\n".into());
    let tag = to_tag(&drain(&mut ep).sent[0]);
    ep.handle_datagram(t0, peer(), &in_dialog("ACK", "c1", 1, &tag));
    ep.hangup(t0, "c1");
    let bye = drain(&mut ep).sent.remove(0);
    assert!(
        bye.contains(&format!("From: <sip:100@127.0.0.1>;tag={tag}\r\n")),
        "{bye}"
    );
    assert!(
        bye.contains("To: \"Al\" <sip:alice@127.0.0.1:5070>;tag=a1\r\n"),
        "{bye}"
    );
    // Unanswered BYE is retransmitted.
    ep.handle_timeout(t0 + Duration::from_millis(600));
    assert!(drain(&mut ep).sent[0].starts_with("BYE "));
    let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:100@127.0.0.1>;tag=t\r\nTo: <sip:alice@127.0.0.1:5070>;tag=a1\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    ep.handle_datagram(t0, peer(), ok.as_bytes());
    ep.handle_timeout(t0 + Duration::from_secs(5));
    assert!(drain(&mut ep).sent.is_empty());
}

/// The driver sleeps until `poll_timeout`, not on a fixed tick: woken only
/// then, a lost ACK's 200 is resent exactly at T1 doubling (capped at T2),
/// the call is given up with a BYE at 64·T1, and an endpoint with nothing
/// pending asks for no wake at all.
#[test]
fn woken_only_at_poll_timeout_the_endpoint_resends_on_time_and_idles_without_timers() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    assert_eq!(ep.poll_timeout(), None, "nothing pending: no wake");
    new_call(&mut ep, t0);
    assert_eq!(ep.poll_timeout(), None, "ringing needs no timer");
    ep.answer(t0, "c1", "v=0\r\n".into());
    drain(&mut ep);
    let mut resent_at = Vec::new();
    let mut bye_at = None;
    let mut wakes = 0;
    while let Some(at) = ep.poll_timeout() {
        // 32 s of 200s, 32 s of BYEs, then 32 s remembering the dialog.
        assert!(
            at > t0 && at <= t0 + Duration::from_secs(96),
            "{:?}",
            at - t0
        );
        wakes += 1;
        ep.handle_timeout(at);
        for m in drain(&mut ep).sent {
            if status(&m) == "200" {
                resent_at.push((at - t0).as_millis() as u64);
            } else if m.starts_with("BYE ") && bye_at.is_none() {
                bye_at = Some((at - t0).as_millis() as u64);
            }
        }
        if wakes > 100 {
            panic!("woken {wakes} times");
        }
    }
    assert_eq!(
        resent_at,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(bye_at, Some(32_000));
    // The BYE went unanswered, and the dialog was forgotten: no timer is left.
    assert_eq!(ep.poll_timeout(), None);
    assert!(wakes < 40, "{wakes} wakes");

    // An answered call whose ACK came runs no timer.
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    let d = new_call(&mut ep, t0);
    drop(d);
    ep.answer(t0, "c1", "v=0\r\n".into());
    let tag = to_tag(&drain(&mut ep).sent[0]);
    assert!(
        ep.poll_timeout().is_some(),
        "the 200 is resent until the ACK"
    );
    ep.handle_datagram(t0, peer(), &in_dialog("ACK", "c1", 1, &tag));
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(ep.poll_timeout(), None);
}
