#!/usr/bin/env bash
# The test machine, defined once for scripts/make-vm-image.sh and the boot-cycle test
# (Tests/IntegrationTests/BootCycleTests.swift): execs QEMU, so the caller's child pid is QEMU's.
#
#   scripts/vm/boot.sh DISK PAYLOAD CONSOLE_LOG STAGE_LOG [QEMU ARGS...]
#
# q35 with an emulated Intel IOMMU (first among the devices, interrupt remapping on), software
# emulation only (-accel tcg: /dev/kvm is never relied on), and:
#   00:01.0  the host's boot VGA: QXL VGA (1b36:0100, driver qxl; QEMU wants it as the first display)
#   00:04.0  DISK, virtio-blk (/dev/vda), the boot disk
#   00:05.0  PAYLOAD, a read-only virtio-blk disk with serial "payload" (/dev/disk/by-id/virtio-payload)
#   00:06.0  the "card": a standard VGA (1234:1111, class 0300, driver bochs), multifunction ...
#   00:06.1  ... and its audio function, ICH9 HDA (8086:293e, class 0403, driver snd_hda_intel) with a codec
# ttyS0 (the kernel console) goes to CONSOLE_LOG, ttyS1 (the stage script's own port) to STAGE_LOG.
# -no-reboot: a guest that reboots (a panic, say) makes QEMU exit instead of looping.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 DISK PAYLOAD CONSOLE_LOG STAGE_LOG [QEMU ARGS...]" >&2; exit 2; }
disk=$1 payload=$2 console=$3 stage=$4
shift 4
format=raw
case "$disk" in *.qcow2) format=qcow2 ;; esac
exec qemu-system-x86_64 \
  -accel tcg -M q35,kernel-irqchip=split -cpu qemu64,vendor=GenuineIntel,+ssse3,+sse4.1,+sse4.2,+popcnt \
  -m 2048 -smp 2 -nodefaults -display none -monitor none -no-reboot \
  -device intel-iommu,intremap=on,caching-mode=on \
  -device qxl-vga,addr=0x1 \
  -drive "file=$disk,if=none,id=root,format=$format,cache=writeback" \
  -device virtio-blk-pci,drive=root,addr=0x4,bootindex=1 \
  -drive "file=$payload,if=none,id=payload,format=raw,readonly=on" \
  -device virtio-blk-pci,drive=payload,serial=payload,addr=0x5 \
  -device VGA,multifunction=on,addr=0x6.0x0 \
  -device ich9-intel-hda,addr=0x6.0x1 -audiodev none,id=snd0 -device hda-duplex,audiodev=snd0 \
  -serial "file:$console" -serial "file:$stage" \
  "$@"
