#!/usr/bin/env bash
# Runs the benchmarks. Extra arguments go to the IVR load benchmark
# (e.g. --calls 1000 --seconds 30). Each prints one summary line last.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p hookline
cargo bench -p hookline-benches --bench plugin_instantiate
cargo bench -p hookline-benches --bench ivr_load -- "$@"
