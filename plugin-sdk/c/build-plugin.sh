#!/usr/bin/env bash
# Builds a Hookline plugin written in C into a WebAssembly component.
#   plugin-sdk/c/build-plugin.sh OUT.wasm SOURCE.c [MORE.c ...]
# Needs (Debian): clang lld wasi-libc libclang-rt-14-dev-wasm32, and
# `cargo install --locked wit-bindgen-cli@0.46.0`; scripts/setup.sh installs them.
# The bindings are generated from plugin-sdk/wit on every build, so a plugin
# always matches the WIT it is built against.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"; shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

wit-bindgen c "$here/../wit" --world call-plugin --out-dir "$work" >/dev/null 2>&1
sysroot=/usr/share/wasi-sysroot
[ -d "$sysroot" ] || sysroot=/usr
cflags=(--target=wasm32-wasi -O2 -Wall -Werror -Wno-unused-function
  -isystem /usr/include/wasm32-wasi -I "$work" -I "$here")
objs=()
for src in "$work/call_plugin.c" "$@"; do
  obj="$work/$(basename "${src%.c}").o"
  # The generated bindings are not ours to lint.
  if [ "$src" = "$work/call_plugin.c" ]; then
    clang --target=wasm32-wasi -O2 -isystem /usr/include/wasm32-wasi -I "$work" -c "$src" -o "$obj"
  else
    clang "${cflags[@]}" -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done

# wasm-component-ld comes with the Rust toolchain (wasm32-wasip2 target).
component_ld="$(find "$(rustc --print sysroot)" -name wasm-component-ld -type f | head -n1)"
builtins="$(find /usr/lib/llvm-*/lib/clang -name libclang_rt.builtins-wasm32.a | head -n1)"
"$component_ld" --wasm-ld-path "$(command -v wasm-ld)" --wasi-adapter reactor \
  --no-entry --export=_initialize -o "$out" \
  /usr/lib/wasm32-wasi/crt1-reactor.o "${objs[@]}" "$work/call_plugin_component_type.o" \
  -L /usr/lib/wasm32-wasi -lc "$builtins"
echo "built $out"
