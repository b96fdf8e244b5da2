#!/usr/bin/env bash
# Debian packages the build and the tests need. Idempotent; run as root (or via sudo).
set -euo pipefail
packages=(
  pkg-config libgit2-dev libarchive-dev libxml2-dev   # C libraries provision links
  git patch diffutils busybox-static                  # real consumers the tests judge with
  ipxe-qemu seabios python3 zip                       # real option ROMs; a loopback HTTP server; archives
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
