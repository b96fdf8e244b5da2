#!/bin/sh
# The image's first boot (scripts/make-vm-image.sh), booted with QEMU's -kernel/-initrd: the guest
# installs GRUB on its own disk and regenerates its lean initramfs (MODULES=dep, or dracut's
# hostonly=yes) and grub.cfg, so
# from then on the disk boots through GRUB by itself. Markers and output go to ttyS1.
exec 3>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 115200 2>/dev/null
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
say() { printf '%s\n' "$*" >&3; }
say "FIRSTBOOT BEGIN $(uname -r)"
say "cmdline: $(cat /proc/cmdline)"
ok=no
start=$(date +%s)
if command -v update-initramfs >/dev/null; then rebuild="update-initramfs -u -k all"; else rebuild="dracut --regenerate-all --force"; fi
if grub-install --target=i386-pc /dev/vda >&3 2>&1 && $rebuild >&3 2>&1 && update-grub >&3 2>&1; then ok=yes; fi
say "FIRSTBOOT took $(( $(date +%s) - start ))s (grub-install, $rebuild, update-grub)"
lspci -nnk >&3 2>&1
for group in /sys/kernel/iommu_groups/*; do say "iommu group ${group##*/}: $(ls "$group/devices" | tr '\n' ' ')"; done
say "initramfs: $(ls -l /boot/initrd.img-* | tr -s ' ' | cut -d' ' -f5,9 | tr '\n' ' ')"
say "grub.cfg: $(grep -c '^menuentry\|^[[:space:]]*menuentry' /boot/grub/grub.cfg) entries; $(grep -m1 'linux[[:space:]]*/boot/vmlinuz' /boot/grub/grub.cfg | sed 's/^[[:space:]]*//')"
sync
say "FIRSTBOOT END ok=$ok"
systemctl --no-block poweroff
