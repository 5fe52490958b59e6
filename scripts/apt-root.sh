# Sourced by the setup scripts (setup-webgpu-linux.sh, setup-cross.sh), which define say():
# apt_root WHAT sets SUDO for apt-get (empty as root, `sudo` where it needs no password), or says
# why WHAT is not installed and exits 0.
apt_root() {
  SUDO=
  [ "$(id -u)" = "0" ] && return 0
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=sudo
    return 0
  fi
  say "skipped: installing $1 needs root (run this script as root or with sudo)"
  exit 0
}
