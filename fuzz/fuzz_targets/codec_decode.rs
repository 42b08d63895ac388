//! Arbitrary RTP payloads through every codec's decoder (as a leg decodes what
//! a peer sends): a sample count within bounds, never a panic.
#![no_main]

use hookline::codec::{CodecOptions, Format, FrameCoder, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let formats = [
        Format::PCMU,
        Format::G722 { pt: 9 },
        Format::Opus {
            pt: 111,
            fec: true,
            dtx: false,
        },
        Format::L16 { pt: 97, rate: 16000 },
    ];
    for format in formats {
        let mut coder = FrameCoder::new(format, CodecOptions::default()).expect("coder");
        let mut pcm = [0i16; 1280];
        // The input as a sequence of length-prefixed payloads.
        let mut rest = data;
        while let Some((&len, tail)) = rest.split_first() {
            let n = (len as usize).min(tail.len());
            let (payload, tail) = tail.split_at(n);
            rest = tail;
            let got = coder.decode(payload, &mut pcm);
            assert!(got <= pcm.len().max(MAX_FRAME));
        }
    }
});
