#!/usr/bin/env bash
# Installs a Vulkan driver that Dawn (the `webgpu` package) accepts, so the WebGPU backend's
# tests run on a machine without a GPU: Mesa's lavapipe (Vulkan on the CPU), version 25 or
# newer. On Debian 12 that is mesa-vulkan-drivers from bookworm-backports (bookworm's own 22.3
# lacks a feature Dawn requires). Does nothing when a new enough driver is installed; skips,
# saying why, where apt is not available or not allowed. Exits 0 in every case but a failed
# install; prints "webgpu-driver: ready" when the driver is there.
set -euo pipefail

say() { echo "webgpu-driver: $*"; }
mesa_major() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/'; }

if [ "$(uname -s)" != "Linux" ]; then
  say "not Linux: Dawn uses the platform's own GPU API (Metal, D3D12); nothing to install"
  exit 0
fi
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  say "skipped: apt is not available here; install Mesa 25+ Vulkan drivers (lavapipe) by hand to run the WebGPU tests"
  exit 0
fi
major="$(mesa_major || true)"
if [ -n "$major" ] && [ "$major" -ge 25 ]; then
  say "ready (mesa-vulkan-drivers $major.x already installed)"
  exit 0
fi
. "$(dirname "$0")/apt-root.sh"
apt_root "mesa-vulkan-drivers"
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
release=()
if [ "$codename" = "bookworm" ]; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
  release=(-t bookworm-backports)
fi
say "installing mesa-vulkan-drivers ${release[*]:-} ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${release[@]}" mesa-vulkan-drivers >/dev/null
major="$(mesa_major || true)"
if [ -n "$major" ] && [ "$major" -ge 25 ]; then
  say "ready (mesa-vulkan-drivers $major.x)"
else
  say "installed mesa-vulkan-drivers ${major:-?}.x, older than Dawn needs (25); the WebGPU tests will skip"
fi
