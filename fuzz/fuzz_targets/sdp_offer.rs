//! Arbitrary SDP offers: negotiate returns a result, and an accepted offer's answer re-parses.
#![no_main]

use hookline::sip::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(neg) = sdp::negotiate(data) {
        let answer = sdp::answer("127.0.0.1:20000".parse().unwrap(), &neg, 1);
        assert!(sdp::negotiate(answer.as_bytes()).is_ok());
    }
});
