//! Benchmark support: a light SIP/RTP load generator and process measurements.

pub mod loadgen;
pub mod proc_stats;
