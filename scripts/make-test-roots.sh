#!/usr/bin/env bash
# Builds the Debian 12 roots the integration tests run real generators in, once, outside git:
#   $PROVISION_TEST_ROOTS/bookworm-initramfs-tools   linux-image-amd64 + initramfs-tools
#   $PROVISION_TEST_ROOTS/bookworm-dracut            linux-image-amd64 + dracut + systemd-sysv (kernel-install)
#   $PROVISION_TEST_ROOTS/bookworm-grub              linux-image-amd64 + initramfs-tools + grub-common
# Tests copy them and never change these originals. Re-running reuses what is already built.
set -euo pipefail
roots=${PROVISION_TEST_ROOTS:-/var/cache/provision-tests}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$roots"
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

build() {
  local name=$1 include=$2 dir="$roots/$1"
  [ -f "$dir/.complete" ] && return 0
  rm -rf "$dir" "$dir.tmp"
  echo "make-test-roots: debootstrap $name ($include)" >&2
  debootstrap --variant=minbase --include="$include" bookworm "$dir.tmp" "$mirror" >"$roots/$name.log" 2>&1 \
    || { tail -20 "$roots/$name.log" >&2; exit 1; }
  # Keep the copies small: documentation and caches are not what the tests look at.
  rm -rf "$dir.tmp"/usr/share/doc/* "$dir.tmp"/usr/share/man/* "$dir.tmp"/usr/share/locale/* "$dir.tmp"/var/cache/apt/archives/*.deb
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
}

# The other roots are copies of that one with packages swapped in by apt inside them (dracut
# conflicts with initramfs-tools, which debootstrap picks for the kernel's dependency).
derive() {
  local name=$1 packages=$2 dir="$roots/$1"
  [ -f "$dir/.complete" ] && return 0
  rm -rf "$dir" "$dir.tmp"
  echo "make-test-roots: $name (apt-get install $packages in a copy)" >&2
  cp -a "$roots/bookworm-initramfs-tools" "$dir.tmp"
  rm -f "$dir.tmp/.complete"
  printf '#!/bin/sh\nexit 101\n' > "$dir.tmp/usr/sbin/policy-rc.d"; chmod +x "$dir.tmp/usr/sbin/policy-rc.d"
  mount -t proc proc "$dir.tmp/proc"
  chroot "$dir.tmp" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages" \
    >"$roots/$name.log" 2>&1 || { umount "$dir.tmp/proc"; tail -20 "$roots/$name.log" >&2; exit 1; }
  umount "$dir.tmp/proc"
  rm -f "$dir.tmp/usr/sbin/policy-rc.d"
  rm -rf "$dir.tmp"/usr/share/doc/* "$dir.tmp"/usr/share/man/* "$dir.tmp"/var/cache/apt/archives/*.deb "$dir.tmp"/var/lib/apt/lists/*_Packages
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
}

build bookworm-initramfs-tools linux-image-amd64,initramfs-tools,kmod,zstd
derive bookworm-dracut "dracut systemd-sysv"
derive bookworm-grub "grub-common"
echo "make-test-roots: ready in $roots" >&2
