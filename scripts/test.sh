#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests, and end-to-end tests
# against real peers (SIPp, baresip) and a real node process.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where setup puts tools (cargo install, pip install --user) when PATH lacks them.
export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"
# Compiled dependencies outlive a clone: a fresh checkout's `target` points at a
# build directory kept outside it (crates.io dependencies are reused; this
# repository's crates rebuild as their paths and sources say).
if [ ! -e target ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  cache="${HOOKLINE_TARGET_CACHE:-$HOME/.cache/hookline/target}"
  mkdir -p "$cache"
  ln -s "$cache" target
fi
# Incremental state grows with every build (gigabytes per crate version) and
# buys little for a clone built once: off, so the shared cache stays bounded.
export CARGO_INCREMENTAL=0
scripts/setup.sh --test

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 -p hookline-sdk -p hookline-ivr -p hookline-hostile \
  -p hookline-voicemail -p hookline-survey -p hookline-crm-router -p hookline-conference \
  -p hookline-test-api-0-1-0 -p hookline-test-greedy \
  -p hookline-plugin-template -- -D warnings
# The end-to-end tests run the node binaries (debug for tests, release for the load smoke test).
cargo build -p hookline
cargo build --release -p hookline
# The plugin template's own tests (hookline_sdk::testing) run scripts through
# this checkout's node binary, as an author's run through the installed one.
export HOOKLINE="${CARGO_TARGET_DIR:-$PWD/target}/debug/hookline"
cargo test --workspace -- --skip twenty_kills_lose_nothing_that_was_promised
# The chaos test on its own, printing its seed, every kill and what held.
cargo test -p hookline-tests --test chaos -- --nocapture
