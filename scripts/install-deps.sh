#!/usr/bin/env bash
# Debian packages the build and the tests need. Idempotent; run as root (or via sudo).
set -euo pipefail
packages=(
  pkg-config libgit2-dev libarchive-dev libxml2-dev   # C libraries provision links
  git patch diffutils busybox-static                  # real consumers the tests judge with
  strace                                              # SafetyTests: kill at every write, durability order
  bubblewrap                                          # the sandbox external plugins plan in
  ipxe-qemu seabios python3 zip                       # real option ROMs; a loopback HTTP server; archives
  libvirt-daemon libvirt-daemon-driver-qemu           # a real libvirtd judges the domain XML ...
  qemu-system-x86 ovmf                                # ... with a real QEMU and UEFI firmware behind it
  libvirt-clients libxml2-utils virtinst              # virsh, virt-xml-validate (needs xmllint), virt-install
  augeas-tools                                        # libvirt's own augeas lens reads qemu.conf back
  qemu-utils fdisk e2fsprogs debootstrap              # the boot-cycle VM: qcow2 overlays, its disk image (no loop devices)
  openssh-server openssh-client iproute2 util-linux   # the fleet tests: sshd in network namespaces (never started as a service)
  python3-venv                                        # ansible-core from PyPI, for the inventory and module tests
)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's own /etc/libvirt/qemu.conf and AppArmor abstraction, for the tests that edit them: the
# package is downloaded, never installed (its postinst would set up services on this machine).
debs="${PROVISION_TEST_ROOTS:-/var/cache/provision-tests}/debs"
# Likewise AppArmor's parser and base profiles, which judge the Looking Glass rule provision adds to
# libvirt's local abstraction (run from the unpacked package, never loaded into a kernel).
for package in libvirt-daemon-system apparmor; do
  if ! ls "$debs"/${package}_*.deb >/dev/null 2>&1; then
    $SUDO mkdir -p "$debs"
    (cd "$debs" && $SUDO apt-get download -qq $package 2>/dev/null)
  fi
done
