#!/bin/sh
# One stage of the boot cycle per boot, run inside the VM by provision-payload.service from the
# payload disk (Tests/IntegrationTests/BootCycleTests.swift puts it there with the provision binary,
# its Swift libraries, the recipes and payload/config). The stage counter lives on the guest's own
# disk (/var/lib/provision-test/stage); results go to ttyS1, one line each:
#   PROVISION-STAGE n BEGIN | END          PROVISION-JSON name: {...}   (a --json document)
#   PROVISION-EXIT name status             PROVISION-STDERR name: line
#   PROVISION-CMDLINE ...  PROVISION-DRIVER address driver  PROVISION-UPTIME s  PROVISION-MARK what
# then the machine powers off (QEMU exits). Stages:
#   1 devices; apply the recipe on / (handlers: update-initramfs -u -k all or dracut
#     --regenerate-all --force, and update-grub)
#   2 (rebooted) verify: everything passes; rollback
#   3 (rebooted) verify: the expected failures; history; git fsck; 4: apply again, which the test cuts off
#     (QEMU killed) while the initramfs handler (update-initramfs or dracut) runs
#   5 (rebooted after the power cut) apply: recovers the interrupted run, then applies
#   6 (rebooted) verify: everything passes; git fsck --strict of the history; history
P=/payload
state=/var/lib/provision-test
export PATH=$P/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root
stty -F /dev/ttyS1 raw -echo 115200 2>/dev/null
exec 3>/dev/ttyS1
VARS=""
MODULES=dep
. $P/config
recipe=$P/recipes/vfio-passthrough.yaml
mkdir -p $state

say() { printf '%s\n' "$*" >&3; }
# A command's --json document on one line, then its stderr lines and exit status.
json() {
  name=$1
  shift
  "$@" >/tmp/stage.out 2>/tmp/stage.err
  rc=$?
  printf 'PROVISION-JSON %s: %s\n' "$name" "$(tr -d '\n' </tmp/stage.out)" >&3
  awk -v p="PROVISION-STDERR $name: " '{ print p $0 }' /tmp/stage.err >&3
  say "PROVISION-EXIT $name $rc"
}
# A command's output, line by line, then its exit status.
text() {
  name=$1
  shift
  "$@" >/tmp/stage.out 2>&1
  rc=$?
  # awk ends every line, the last one too (a JSON file has no final newline).
  awk -v p="PROVISION-OUT $name: " '{ print p $0 }' /tmp/stage.out >&3
  say "PROVISION-EXIT $name $rc"
}
# What the booted machine shows: the command line, the card's drivers, the modules loaded.
info() {
  say "PROVISION-UPTIME $(cut -d' ' -f1 /proc/uptime)"
  say "PROVISION-CMDLINE $(cat /proc/cmdline)"
  for device in /sys/bus/pci/devices/0000:00:06.*; do
    driver=none
    [ -e "$device/driver" ] && driver=$(basename "$(readlink "$device/driver")")
    say "PROVISION-DRIVER ${device##*/} $driver"
  done
  say "PROVISION-MODULES $(cut -d' ' -f1 /proc/modules | grep -E '^(vfio|bochs|qxl|snd_hda_intel|drm)' | sort | tr '\n' ' ')"
  say "PROVISION-INITRAMFS $(ls -l /boot/initrd.img-* | tr -s ' ' | cut -d' ' -f5,9 | tr '\n' ' ')"
  # Who bound the card's functions, and when (the kernel's log, not only the console's quiet part).
  dmesg | grep -iE 'vfio|bochs|snd_hda|0000:00:06' | sed 's/^/PROVISION-DMESG /' >&3
  # What the image holds that decides the race: the vfio modules, the card's drivers, modprobe.d.
  lister=lsinitramfs
  command -v lsinitramfs >/dev/null || lister=lsinitrd
  for image in /boot/initrd.img-*; do
    $lister "$image" 2>/dev/null | grep -E '/(vfio[^/]*|bochs|snd-hda-intel|qxl)\.ko|etc/modprobe.d/' \
      | sed "s|^|PROVISION-IMAGE ${image##*/} |" >&3
  done
}
finish() {
  echo "$1" >$state/stage
  sync
  say "PROVISION-STAGE $stage END"
  systemctl --no-block poweroff
  exit 0
}

stage=$(cat $state/stage 2>/dev/null || echo 1)
say "PROVISION-STAGE $stage BEGIN"
info
case $stage in
1)
  text version provision --version
  json devices provision devices --json
  # The guest the recipe edits, as virt-install would have left it (the Debian snapshot's).
  cp -a $P/dress/etc/libvirt /etc/
  # MODULES=most (Debian's default): every driver the generator would take for any machine.
  if [ "$MODULES" != dep ] && [ -f /etc/initramfs-tools/initramfs.conf ]; then
    sed -i "s/^MODULES=.*/MODULES=$MODULES/" /etc/initramfs-tools/initramfs.conf
    say "PROVISION-MARK initramfs-tools MODULES=$MODULES"
  elif [ "$MODULES" != dep ]; then
    echo 'hostonly="no"' >/etc/dracut.conf.d/10-provision-vm.conf
    say "PROVISION-MARK dracut hostonly=no"
  fi
  json apply provision apply $recipe $VARS --json
  text modprobe-conf cat /etc/modprobe.d/vfio.conf
  finish 2
  ;;
2)
  json verify provision verify --json
  json rollback provision rollback --json
  finish 3
  ;;
3)
  json verify provision verify --json
  json history provision history --json
  text fsck-before-cut git --git-dir /var/lib/provision/history.git fsck --strict
  echo 5 >$state/stage
  sync
  say "PROVISION-STAGE 3 END"
  stage=4
  say "PROVISION-STAGE 4 BEGIN"
  # Tell the test when the initramfs is being rebuilt: it then cuts the power.
  (
    while ! pgrep -f 'update-initramfs -u|dracut --regenerate-all' >/dev/null; do sleep 0.2; done
    say "PROVISION-MARK handler initramfs running"
  ) &
  json apply-cut provision apply $recipe $VARS --json
  say "PROVISION-MARK apply was not interrupted"
  finish 5
  ;;
5)
  # What the cut left: the run's journal beside the history, the files it wrote, the old images.
  text state ls -la /var/lib/provision/history.git /boot
  text journal cat /var/lib/provision/history.git/provision-journal.json
  json apply-recover provision apply $recipe $VARS --json
  finish 6
  ;;
6)
  json verify provision verify --json
  text fsck git --git-dir /var/lib/provision/history.git fsck --strict
  json history provision history --json
  finish done
  ;;
*)
  say "PROVISION-MARK nothing left to do"
  finish "$stage"
  ;;
esac
