//! Arbitrary datagrams through the RTP receive path: parse, reorder, RFC 4733.
#![no_main]

use hookline::rtp::dtmf::DtmfReceiver;
use hookline::rtp::packet::RtpPacket;
use hookline::rtp::reorder::ReorderBuffer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reorder = ReorderBuffer::new(3);
    let mut dtmf = DtmfReceiver::default();
    // Treat the input as a sequence of length-prefixed datagrams.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (dgram, tail) = tail.split_at(n);
        rest = tail;
        if let Ok(pkt) = RtpPacket::parse(dgram) {
            assert!(pkt.payload.len() <= dgram.len());
            reorder.push(&pkt, |r| {
                let _ = dtmf.on_payload(r.timestamp, r.payload);
            });
        }
    }
    let s = reorder.stats();
    assert!(s.received >= s.duplicate);
});
