//! Arbitrary datagrams as RTCP compound packets: report parsing never panics.
#![no_main]

use hookline::rtp::rtcp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ssrc = data.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
    if let Some(r) = rtcp::report_for(data, ssrc) {
        assert!(r.cumulative_lost <= 0xff_ffff);
    }
});
