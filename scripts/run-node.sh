#!/usr/bin/env bash
# Runs a media node with the embedded defaults (SQLite and prompt cache in ./data,
# the sample IVR on every number). Extra arguments go to `hookline serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where rustup and pip --user put their tools when PATH lacks them.
export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"
scripts/setup.sh
exec cargo run --release -p hookline -- serve "$@"
