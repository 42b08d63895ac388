//! A hostile plugin for the sandbox tests. Its route config is one word, the
//! misbehaviour: `loop` (burn CPU forever), `trap` (panic), `memory` (allocate
//! until the sandbox refuses). It answers first so the caller is connected
//! when it goes wrong.

use hookline_sdk::{media, CallInfo, Manifest, Plugin};

struct Hostile;

impl Plugin for Hostile {
    fn manifest() -> Manifest {
        hookline_sdk::manifest("hostile", env!("CARGO_PKG_VERSION"))
    }

    fn handle_call(info: CallInfo) -> Result<(), String> {
        media::answer().map_err(|e| e.to_string())?;
        match info.config.trim_matches(|c| c == '"' || c == ' ') {
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "trap" => panic!("hostile plugin traps on purpose"),
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

hookline_sdk::export!(Hostile);
