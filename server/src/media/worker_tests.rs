//! The worker through real sockets: prompts, keys, bridges.

use super::*;
use crate::codec::g711::G711;
use crate::media::prompt::{Prompt, FRAME};
use crate::rtp::packet::{self, RtpPacket};
use std::thread;
use tokio::sync::mpsc;

#[test]
fn plays_a_prompt_and_hears_a_digit_through_real_sockets() {
    let engine = MediaEngine::start(1);
    let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31000, 31100);
    let (socket, port) = pool.bind().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    engine.add_leg(LegSetup {
        id: 1,
        socket,
        remote: peer.local_addr().unwrap(),
        codec: Format::PCMU,
        dtmf_pt: Some(101),
        inband_dtmf: false,
        rtp_timeout: None,
        latch: false,
        rtcp: None,
        events: Box::new(move |e| {
            let _ = tx.send(e);
        }),
    });
    // 50 ms of audio: three packets, the last padded with silence.
    // (A ramp: every frame of it differs from the others.)
    let ramp = (0..400).map(|i| (i % 97) as i16 * 300).collect();
    let prompt = Arc::new(Prompt::from_pcm("p", ramp));
    let g = Format::PCMU.g711().unwrap();
    // What the peer must hear: the prompt's bytes, then silence.
    let mut expected = prompt.encoded(g).to_vec();
    expected.resize(3 * FRAME, g.silence());
    engine.play(1, vec![prompt], 7);
    let mut buf = [0u8; 512];
    let (mut seqs, mut heard, mut markers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let n = peer.recv(&mut buf).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.payload.len(), FRAME);
        seqs.push(p.sequence);
        markers.push(p.marker);
        heard.extend_from_slice(p.payload);
    }
    // Two frames whole in the prompt (sent straight from it), then the
    // last one padded: one stream, in order, marked at its start.
    assert_eq!(seqs[1], seqs[0].wrapping_add(1));
    assert_eq!(seqs[2], seqs[1].wrapping_add(1));
    assert_eq!(markers, [true, false, false]);
    assert!(
        heard == expected,
        "the peer heard other bytes than the prompt's"
    );
    // A digit from the peer, sent twice (redundant end packets).
    let mut pkt = [0u8; 16];
    packet::write_header(&mut pkt, true, 101, 1, 4000, 9);
    pkt[12..].copy_from_slice(&[2, 0x8a, 0, 160]);
    peer.send_to(&pkt, ("127.0.0.1", port)).unwrap();
    packet::write_header(&mut pkt, false, 101, 2, 4000, 9);
    peer.send_to(&pkt, ("127.0.0.1", port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut events = Vec::new();
    while Instant::now() < deadline && events.len() < 2 {
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        events.contains(&MediaEvent::PlayDone {
            token: 7,
            interrupted: false
        }),
        "{events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == MediaEvent::Dtmf('2'))
            .count(),
        1,
        "{events:?}"
    );
    engine.remove_leg(1);
}

/// RFC 4733 on one side, none on the other: the key becomes tones.
#[test]
fn a_key_event_becomes_tones_for_a_peer_without_rfc4733() {
    let engine = MediaEngine::start(1);
    let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31400, 31500);
    let (sock_a, port_a) = pool.bind().unwrap();
    let (sock_b, _) = pool.bind().unwrap();
    let phone_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone_b
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let a = engine.new_leg_id(None);
    let b = engine.new_leg_id(Some(a));
    for (id, socket, remote, dtmf_pt) in [
        (a, sock_a, phone_a.local_addr().unwrap(), Some(101)),
        (b, sock_b, phone_b.local_addr().unwrap(), None),
    ] {
        engine.add_leg(LegSetup {
            id,
            socket,
            remote,
            codec: Format::PCMU,
            dtmf_pt,
            inband_dtmf: false,
            rtp_timeout: None,
            latch: false,
            rtcp: None,
            events: Box::new(|_| {}),
        });
    }
    engine.bridge(a, b);
    thread::sleep(Duration::from_millis(60));
    // Phone A talks (silence) and presses 7 between its audio packets.
    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    for k in 0..20u16 {
        let mut pkt = [0u8; 12 + FRAME];
        packet::write_header(&mut pkt, false, 0, k, k as u32 * 160, 5);
        pkt[12..].fill(0xff);
        phone_a.send_to(&pkt, ("127.0.0.1", port_a)).unwrap();
        if k == 3 {
            let mut ev = [0u8; 16];
            packet::write_header(&mut ev, true, 101, 100, 480, 5);
            ev[12..].copy_from_slice(&[7, 10, 0, 160]);
            phone_a.send_to(&ev, ("127.0.0.1", port_a)).unwrap();
        }
        thread::sleep(Duration::from_millis(20));
        while let Ok(n) = phone_b.recv(&mut buf) {
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            assert_eq!(p.payload_type, 0, "no telephone-event towards B");
            let mut pcm = vec![0i16; p.payload.len()];
            G711::Ulaw(0).decode(p.payload, &mut pcm);
            heard.extend(pcm);
            if phone_b.peek(&mut buf).is_err() {
                break;
            }
        }
    }
    let mut keys = String::new();
    crate::media::dtmf_detect::DtmfDetector::default().feed(&heard, |k| keys.push(k));
    assert_eq!(keys, "7", "{} samples heard", heard.len());
    engine.remove_leg(a);
    engine.remove_leg(b);
}

#[test]
fn bridge_relays_and_transcodes_between_laws() {
    let engine = MediaEngine::start(2);
    let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31200, 31300);
    let (sock_a, port_a) = pool.bind().unwrap();
    let (sock_b, _) = pool.bind().unwrap();
    let phone_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone_b
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let a = engine.new_leg_id(None);
    let b = engine.new_leg_id(Some(a));
    let setup = |id, socket, remote, codec| LegSetup {
        id,
        socket,
        remote,
        codec,
        dtmf_pt: None,
        inband_dtmf: false,
        rtp_timeout: None,
        latch: false,
        rtcp: None,
        events: Box::new(|_| {}),
    };
    engine.add_leg(setup(
        a,
        sock_a,
        phone_a.local_addr().unwrap(),
        Format::PCMU,
    ));
    engine.add_leg(setup(
        b,
        sock_b,
        "127.0.0.1:9".parse().unwrap(),
        Format::PCMU,
    ));
    // The callee answered with A-law at phone_b.
    engine.set_remote(b, phone_b.local_addr().unwrap(), Format::PCMA, None);
    engine.bridge(a, b);
    thread::sleep(Duration::from_millis(60));
    let pcm: Vec<i16> = (0..160)
        .map(|n| ((n as f64 / 5.0).sin() * 8000.0) as i16)
        .collect();
    let mut ulaw = [0u8; 160];
    G711::Ulaw(0).encode(&pcm, &mut ulaw);
    let mut pkt = [0u8; 172];
    pkt[12..].copy_from_slice(&ulaw);
    for seq in 0..3u16 {
        packet::write_header(
            &mut pkt,
            seq == 0,
            0,
            500 + seq,
            8000 + seq as u32 * 160,
            77,
        );
        phone_a.send_to(&pkt, ("127.0.0.1", port_a)).unwrap();
    }
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = phone_b.recv(&mut buf).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        got.push((p.payload_type, p.sequence, p.timestamp, p.payload.to_vec()));
    }
    assert!(got.iter().all(|g| g.0 == 8), "relayed as PCMA");
    assert_eq!(got[1].1, got[0].1.wrapping_add(1));
    assert_eq!(got[1].2.wrapping_sub(got[0].2), 160, "source timing kept");
    let mut back = [0i16; 160];
    G711::Alaw(8).decode(&got[0].3, &mut back);
    let err: f64 = pcm
        .iter()
        .zip(back)
        .map(|(x, y)| (*x as f64 - y as f64).abs())
        .sum::<f64>()
        / 160.0;
    assert!(err < 150.0, "transcoded audio differs: mean error {err}");
    engine.remove_leg(a);
    engine.remove_leg(b);
}

#[test]
fn a_leg_bridged_to_itself_is_refused_and_the_worker_goes_on() {
    let engine = MediaEngine::start(1);
    let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31300, 31400);
    let (sock_a, port_a) = pool.bind().unwrap();
    let (sock_b, _) = pool.bind().unwrap();
    let phone_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone_b
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let setup = |id, socket, remote: SocketAddr| LegSetup {
        id,
        socket,
        remote,
        codec: Format::PCMU,
        dtmf_pt: None,
        inband_dtmf: false,
        rtp_timeout: None,
        latch: false,
        rtcp: None,
        events: Box::new(|_| {}),
    };
    let a = engine.new_leg_id(None);
    let b = engine.new_leg_id(Some(a));
    engine.add_leg(setup(a, sock_a, phone_a.local_addr().unwrap()));
    engine.add_leg(setup(b, sock_b, phone_b.local_addr().unwrap()));
    // 0x55 is not μ-law silence (0xff), which the legs may send meanwhile.
    let mut pkt = [0x55u8; 172];
    let mut send = |seq: u16| {
        packet::write_header(&mut pkt, seq == 0, 0, seq, seq as u32 * 160, 5);
        phone_a.send_to(&pkt, ("127.0.0.1", port_a)).unwrap();
    };
    // A packet reaching a leg bridged to itself would be relayed into
    // its own leg: the worker refuses the bridge instead.
    engine.bridge(a, a);
    thread::sleep(Duration::from_millis(60));
    send(0);
    thread::sleep(Duration::from_millis(60));
    // The same worker still relays a real bridge.
    engine.bridge(a, b);
    thread::sleep(Duration::from_millis(60));
    let mut buf = [0u8; 512];
    let mut relayed = false;
    for seq in 1..20u16 {
        send(seq);
        for _ in 0..10 {
            let Ok(n) = phone_b.recv(&mut buf) else { break };
            relayed |= RtpPacket::parse(&buf[..n])
                .is_ok_and(|p| !p.payload.is_empty() && p.payload.iter().all(|&x| x == 0x55));
        }
        if relayed {
            break;
        }
    }
    assert!(relayed, "the worker stopped relaying after a self-bridge");
    engine.remove_leg(a);
    engine.remove_leg(b);
}

/// A burst over more bridged legs than one send batch (`RELAY_BATCH`) of a
/// wake-up: every packet reaches its own leg's peer, none is lost or sent
/// to another call's peer when the relays go out in pieces.
#[test]
fn a_burst_over_many_bridges_reaches_every_peer() {
    const PAIRS: usize = 40;
    let engine = MediaEngine::start(1);
    let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31800, 32200);
    let setup = |id, socket, remote: SocketAddr| LegSetup {
        id,
        socket,
        remote,
        codec: Format::PCMU,
        dtmf_pt: None,
        inband_dtmf: false,
        rtp_timeout: None,
        latch: false,
        rtcp: None,
        events: Box::new(|_| {}),
    };
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        let (sock_a, port_a) = pool.bind().unwrap();
        let (sock_b, _) = pool.bind().unwrap();
        let phone_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        phone_b
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let a = engine.new_leg_id(None);
        let b = engine.new_leg_id(Some(a));
        engine.add_leg(setup(a, sock_a, phone_a.local_addr().unwrap()));
        engine.add_leg(setup(b, sock_b, phone_b.local_addr().unwrap()));
        engine.bridge(a, b);
        pairs.push((a, b, port_a, phone_a, phone_b));
    }
    thread::sleep(Duration::from_millis(100));
    // Each call's packet carries its own byte (0x10.., never μ-law silence).
    let mut pkt = [0u8; 172];
    for (i, (.., port_a, phone_a, _)) in pairs.iter().enumerate() {
        packet::write_header(&mut pkt, true, 0, 1, 160, 9);
        pkt[12..].fill(0x10 + i as u8);
        phone_a.send_to(&pkt, ("127.0.0.1", *port_a)).unwrap();
    }
    let mut buf = [0u8; 512];
    let mut missing = Vec::new();
    for (i, (.., phone_b)) in pairs.iter().enumerate() {
        let mut heard = None;
        while let Ok(n) = phone_b.recv(&mut buf) {
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            // Keep-alive silence (0xff) may come between; a relayed packet
            // is all one byte in the callers' range.
            if let Some(&x) = p
                .payload
                .first()
                .filter(|&&x| (0x10..0x10 + PAIRS as u8).contains(&x))
            {
                heard = Some(x);
                break;
            }
        }
        if heard != Some(0x10 + i as u8) {
            missing.push((i, heard));
        }
    }
    assert!(
        missing.is_empty(),
        "calls whose peer did not get their packet: {missing:?}"
    );
    for (a, b, ..) in pairs {
        engine.remove_leg(a);
        engine.remove_leg(b);
    }
}
