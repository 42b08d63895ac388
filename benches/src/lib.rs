//! Benchmark support: a light SIP/RTP load generator and process measurements.

pub mod bridged;
pub mod loadgen;
pub mod proc_stats;

/// A numeric command-line option of a benchmark (`--calls 200`), or its default.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
