#!/usr/bin/env bash
# Installs what the engines for other platforms and their tests need on Debian
# (scripts/build-native-cross.mjs, scripts/test-cross.mjs): MinGW-w64 (posix threads) and Wine
# for Windows x64, the aarch64 cross compiler and QEMU's user mode for Linux on Arm, and
# Emscripten for the WebAssembly engine (scripts/build-native-wasm.mjs); about 360 MB from the
# Debian archive. Does nothing when all are there; skips, saying why, where apt
# is not available or not allowed. Exits 0 in every case but a failed install; prints
# "cross: ready" when all are there.
set -euo pipefail

say() { echo "cross: $*"; }
have() {
  command -v x86_64-w64-mingw32-g++-posix >/dev/null && { [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null || command -v wine >/dev/null; } &&
    command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null && command -v emcc >/dev/null
}
PACKAGES=(g++-mingw-w64-x86-64-posix wine64 g++-aarch64-linux-gnu qemu-user emscripten)

if have; then
  say "ready (cross compilers, Wine, QEMU and Emscripten already installed)"
  exit 0
fi
if [ "$(uname -s)" != "Linux" ] || ! command -v apt-get >/dev/null; then
  say "skipped: install ${PACKAGES[*]} by hand to build and test the engines for Windows, Arm and WebAssembly"
  exit 0
fi
. "$(dirname "$0")/apt-root.sh"
apt_root "${PACKAGES[*]}"
say "installing ${PACKAGES[*]} ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
if have; then
  say "ready"
else
  say "the install finished but a tool is still missing; the cross tests will skip what it needs"
fi
