//! Arbitrary datagrams into the SIP endpoint: never a panic; every reply is SIP.
#![no_main]

use std::time::{Duration, Instant};

use hookline::sip::endpoint::{Endpoint, Output};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ep = Endpoint::new("127.0.0.1:5060".parse().unwrap());
    let peer = "127.0.0.1:5070".parse().unwrap();
    let t0 = Instant::now();
    // The same bytes twice (a retransmission), then time passes.
    ep.handle_datagram(t0, peer, data);
    ep.handle_datagram(t0, peer, data);
    ep.handle_timeout(t0 + Duration::from_secs(40));
    while let Some(out) = ep.poll_output() {
        if let Output::Transmit { data, .. } = out {
            assert!(data.starts_with(b"SIP/2.0 ") || data.starts_with(b"BYE "));
        }
    }
});
