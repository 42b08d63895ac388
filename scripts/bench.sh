#!/usr/bin/env bash
# Runs the benchmarks. Extra arguments go to the IVR load benchmark
# (e.g. --calls 1000 --seconds 30). Each prints one summary line last.
# Setup with --bench also installs rtpengine for relay_side_by_side.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
cargo build --release -p hookline
cargo bench -p hookline-benches --bench plugin_instantiate
cargo bench -p hookline-benches --bench ivr_load -- "$@"
