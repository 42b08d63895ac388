//! Arbitrary bytes as a prompt upload (`PUT /api/prompts/{lang}/{id}`): the
//! decoder refuses or decodes within its bounds, never panics or asks for
//! more memory than the header checks allow.
#![no_main]

use hookline::media::prompt::{Prompt, MAX_PROMPT_SECONDS, RATE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Prompt::decode("fuzz", std::io::Cursor::new(data)) {
        assert!(p.pcm.len() <= (MAX_PROMPT_SECONDS * RATE) as usize + RATE as usize);
    }
});
