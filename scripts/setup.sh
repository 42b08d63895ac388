#!/usr/bin/env bash
# Installs what Hookline needs, idempotently: Debian packages, the wasm32-wasip2
# Rust target, and the sample plugins. `--test` adds the real peers the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(espeak-ng)
if [ "${1:-}" = "--test" ]; then
  # Real peers, and the C plugin toolchain (clang for wasm32-wasi).
  packages+=(sip-tester baresip-core sox clang lld wasi-libc libclang-rt-14-dev-wasm32)
  # Python runs the CRM stand-in (http.server) and componentize-py.
  command -v python3 >/dev/null || packages+=(python3 python3-pip)
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
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

if [ "${1:-}" = "--test" ]; then
  # Plugin SDK toolchains the tests build the C and Python samples with.
  if ! wit-bindgen --version 2>/dev/null | grep -q "0.46.0"; then
    cargo install --locked wit-bindgen-cli@0.46.0
  fi
  if ! componentize-py --version 2>/dev/null | grep -q "0.25.1"; then
    # A Debian-managed Python refuses system-wide installs (PEP 668): then per user.
    python3 -m pip install --quiet componentize-py==0.25.1 ||
      python3 -m pip install --quiet --user --break-system-packages componentize-py==0.25.1
    command -v pyenv >/dev/null && pyenv rehash
    export PATH="$HOME/.local/bin:$PATH"
    if ! componentize-py --version 2>/dev/null | grep -q "0.25.1"; then
      echo "setup: componentize-py 0.25.1 installed but not on PATH (add ~/.local/bin)" >&2
      exit 1
    fi
  fi
fi

# The sample plugins are WebAssembly components.
cargo build --release --target wasm32-wasip2 -p hookline-ivr -p hookline-voicemail \
  -p hookline-survey -p hookline-crm-router
if [ "${1:-}" = "--test" ]; then
  # Test plugins: hostile ones, and one built against the frozen 0.1.0 WIT.
  cargo build --release --target wasm32-wasip2 -p hookline-hostile -p hookline-test-api-0-1-0
fi
