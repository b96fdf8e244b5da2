#!/usr/bin/env bash
# Builds the Debian 12 disk image the boot-cycle test (Tests/IntegrationTests/BootCycleTests.swift)
# boots in QEMU, once, outside git, in $PROVISION_TEST_VM/GENERATOR (default
# $PROVISION_TEST_ROOTS/vm, i.e. /var/cache/provision-tests/vm/initramfs-tools):
#   base.raw     a partitioned disk (MBR, one ext4 partition at 1 MiB labelled vmroot) holding a
#                debootstrapped Debian 12 (minbase + kernel, systemd, udev, the initramfs generator,
#                GRUB for BIOS, git, pciutils and the C libraries provision links), booting through
#                its own GRUB on a serial console; tests boot qcow2 overlays of it
#   .complete    the content hash of this script and scripts/vm/*: a change rebuilds the image
#
#   scripts/make-vm-image.sh [initramfs-tools|dracut]
#
# initramfs-tools (the default) builds lean images (MODULES=dep), dracut host-only ones
# (hostonly=yes): only what this machine needs to mount its root, so that the rebuilds in the guest
# take minutes, not tens of minutes, under software emulation.
# No loop devices and nothing of this machine's own /etc or /boot: the partition table is written
# into the file by sfdisk, the file system populated by mkfs.ext4 -d at the partition's offset, and
# GRUB installed by the guest itself on a first boot (QEMU -kernel/-initrd, scripts/vm/firstboot.sh).
# Re-running reuses what is already built.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=${1:-initramfs-tools}
case "$generator" in initramfs-tools | dracut) ;; *) echo "usage: $0 [initramfs-tools|dracut]" >&2; exit 2 ;; esac
cache=${PROVISION_TEST_VM:-${PROVISION_TEST_ROOTS:-/var/cache/provision-tests}/vm}/$generator
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
hash=$( (cat scripts/make-vm-image.sh scripts/vm/boot.sh scripts/vm/firstboot.sh scripts/vm/payload-runner \
  scripts/vm/provision-payload.service; echo "$generator") | sha256sum | cut -c1-16)
if [ "$(cat "$cache/.complete" 2>/dev/null)" = "$hash" ] && [ -f "$cache/base.raw" ]; then
  exit 0
fi
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$cache"
rm -f "$cache/.complete"
work="$cache/build"
rm -rf "$work"
mkdir -p "$work"
log="$cache/build.log"
: >"$log"
started=$(date +%s)
echo "make-vm-image: $generator: debootstrap (log: $log)" >&2

rootfs="$work/rootfs"
packages=linux-image-amd64,systemd-sysv,udev,kmod,initramfs-tools,zstd,grub-pc-bin,grub2-common,grub-common,e2fsprogs
packages+=,pciutils,procps,git,libgit2-1.5,libarchive13,libxml2,libcurl4
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >>"$log" 2>&1 \
  || { tail -20 "$log" >&2; exit 1; }

# The system: hostname, the root file system by label, root without a password on the serial console.
echo provision-vm >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tprovision-vm\n' >"$rootfs/etc/hosts"
printf 'LABEL=vmroot\t/\text4\terrors=remount-ro\t0\t1\n' >"$rootfs/etc/fstab"
chroot "$rootfs" passwd -d root >>"$log" 2>&1
mkdir -p "$rootfs/etc/systemd/system/serial-getty@ttyS0.service.d"
printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %%I $TERM\n' \
  >"$rootfs/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"
# Nothing that would wake up during a test: apt's and e2scrub's timers.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
if [ "$generator" = dracut ]; then
  # dracut replaces initramfs-tools (which debootstrap picks for the kernel), through apt in the
  # root; generic images while there (host-only detection would look at this machine).
  echo "make-vm-image: dracut instead of initramfs-tools (apt-get in the root)" >&2
  mkdir -p "$rootfs/etc/dracut.conf.d"
  echo 'hostonly="no"' >"$rootfs/etc/dracut.conf.d/10-provision-vm.conf"
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  mount -t proc proc "$rootfs/proc"
  chroot "$rootfs" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dracut" >>"$log" 2>&1 \
    || { umount "$rootfs/proc"; tail -20 "$log" >&2; exit 1; }
  umount "$rootfs/proc"
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  [ ! -e "$rootfs/usr/sbin/update-initramfs" ] || { echo "make-vm-image: initramfs-tools is still installed" >&2; exit 1; }
  # The lean image: only what this machine needs to mount its root (the first boot rebuilds it).
  printf '# Written by scripts/make-vm-image.sh: images for this machine only.\nhostonly="yes"\n' \
    >"$rootfs/etc/dracut.conf.d/10-provision-vm.conf"
else
  # The lean initramfs: only what this machine needs to mount its root (the first boot rebuilds it).
  sed -i 's/^MODULES=.*/MODULES=dep/' "$rootfs/etc/initramfs-tools/initramfs.conf"
  grep -q '^MODULES=dep$' "$rootfs/etc/initramfs-tools/initramfs.conf"
fi
# GRUB on the serial console, one second's menu; grub-pc (whose postinst asks for devices) is not
# installed, so this file is ours.
mkdir -p "$rootfs/etc/default/grub.d"
cat >"$rootfs/etc/default/grub" <<'GRUB'
# Written by scripts/make-vm-image.sh (Debian's defaults, on the serial console).
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB
# The stage runner: each boot runs the payload disk's stage.sh, when one is attached.
install -m 0755 scripts/vm/payload-runner "$rootfs/usr/local/sbin/provision-payload"
install -m 0644 scripts/vm/provision-payload.service "$rootfs/etc/systemd/system/provision-payload.service"
mkdir -p "$rootfs/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/provision-payload.service "$rootfs/etc/systemd/system/multi-user.target.wants/provision-payload.service"
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/lib/apt/lists/*_Packages

kernel=$(cd "$rootfs/boot" && ls vmlinuz-* | sort -V | tail -1)
release=${kernel#vmlinuz-}
cp "$rootfs/boot/$kernel" "$work/vmlinuz"
cp "$rootfs/boot/initrd.img-$release" "$work/initrd.img"

# The disk: 3 GiB sparse, an MBR with one bootable Linux partition from 1 MiB to the end, the root
# file system written into it at that offset.
echo "make-vm-image: $generator: disk image" >&2
disk="$work/base.raw"
truncate -s 3G "$disk"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --no-reread --no-tell-kernel "$disk" >>"$log" 2>&1
sectors=$(sfdisk --dump "$disk" | sed -n 's/.*start= *2048, size= *\([0-9]*\).*/\1/p')
[ -n "$sectors" ] || { echo "make-vm-image: no partition in $disk" >&2; exit 1; }
mkfs.ext4 -q -F -L vmroot -E offset=1048576 -d "$rootfs" "$disk" "$((sectors / 2))k" >>"$log" 2>&1 \
  || { tail -20 "$log" >&2; exit 1; }

# First boot: the guest installs GRUB on /dev/vda, rebuilds its initramfs and grub.cfg, powers off.
echo "make-vm-image: $generator: first boot (GRUB installed by the guest; QEMU -accel tcg, a few minutes)" >&2
mkdir -p "$work/payload"
install -m 0755 scripts/vm/firstboot.sh "$work/payload/stage.sh"
mkfs.ext4 -q -F -L payload -d "$work/payload" "$work/payload.img" 8M >>"$log" 2>&1
timeout 1200 scripts/vm/boot.sh "$disk" "$work/payload.img" "$cache/firstboot-console.log" "$cache/firstboot.log" \
  -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -append "root=LABEL=vmroot ro console=ttyS0,115200 panic=-1" \
  >>"$log" 2>&1 || { echo "make-vm-image: first boot failed or timed out; see $cache/firstboot-console.log" >&2; exit 1; }
grep -q '^FIRSTBOOT END ok=yes' "$cache/firstboot.log" \
  || { tail -40 "$cache/firstboot.log" "$cache/firstboot-console.log" >&2; exit 1; }

mv "$disk" "$cache/base.raw"
rm -rf "$work"
echo "$hash" >"$cache/.complete"
echo "make-vm-image: $generator: ready in $cache ($(( $(date +%s) - started ))s)" >&2
