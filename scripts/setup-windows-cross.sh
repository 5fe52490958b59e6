#!/usr/bin/env bash
# Installs what the Windows x64 build and its tests need on Debian: MinGW-w64 (posix threads)
# to cross-compile the engine, and Wine to run it (scripts/test-windows.mjs). About 170 MB from
# the Debian archive. Does nothing when both are there; skips, saying why, where apt is not
# available or not allowed. Exits 0 in every case but a failed install; prints
# "windows-cross: ready" when both are there.
set -euo pipefail

say() { echo "windows-cross: $*"; }
have() { command -v x86_64-w64-mingw32-g++-posix >/dev/null && { [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null || command -v wine >/dev/null; }; }

if have; then
  say "ready (MinGW-w64 and Wine already installed)"
  exit 0
fi
if [ "$(uname -s)" != "Linux" ] || ! command -v apt-get >/dev/null; then
  say "skipped: install MinGW-w64 (posix threads) and Wine by hand to build and test the Windows engine"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    say "skipped: installing MinGW-w64 and Wine needs root (run this script as root or with sudo)"
    exit 0
  fi
else
  SUDO=
fi
say "installing g++-mingw-w64-x86-64-posix wine64 ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends g++-mingw-w64-x86-64-posix wine64 >/dev/null
if have; then
  say "ready"
else
  say "the install finished but MinGW-w64 or Wine is still missing; the Windows tests will skip"
fi
