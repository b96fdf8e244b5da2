#!/usr/bin/env python3
"""Writes modules.alias (and modules.builtin.modinfo alias entries where a kernel builds a driver in) for every
kernel of every host snapshot: the `alias pci:...` lines of the modules that kernel's modules.dep
lists, taken from a real Debian 12 kernel's modules.alias (the debootstrapped test root), plus
NVIDIA's proprietary module, which Debian does not ship (its two aliases, as nvidia.ko declares
them). Also makes sure each modules.dep lists the drivers the snapshot's card functions need
(snd_hda_intel for HDMI audio, xhci_pci and i2c_designware_pci / i2c_nvidia_gpu for USB-C).
Run from the repository root after scripts/make-test-roots.sh: scripts/make-module-aliases.py [ROOTS]"""
import glob, os, sys

roots = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PROVISION_TEST_ROOTS", "/var/cache/provision-tests")
source = sorted(glob.glob(os.path.join(roots, "bookworm-initramfs-tools/lib/modules/*/modules.alias")))[-1]
aliases = {}
with open(source) as f:
    for line in f:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias" and parts[1].startswith("pci:"):
            aliases.setdefault(parts[2].replace("-", "_"), []).append(line)
aliases["nvidia"] = ["alias pci:v000010DEd*sv*sd*bc03sc00i00* nvidia\n", "alias pci:v000010DEd*sv*sd*bc03sc02i00* nvidia\n"]

# Drivers every distribution kernel ships for a card's extra functions.
EXTRA = ["kernel/sound/pci/hda/snd-hda-intel", "kernel/drivers/usb/host/xhci-pci",
         "kernel/drivers/i2c/busses/i2c-designware-pci", "kernel/drivers/i2c/busses/i2c-nvidia-gpu"]

def name(path):
    return os.path.basename(path).split(".")[0].replace("-", "_")

for kernel in sorted(glob.glob("snapshots/*/lib/modules/*")):
    dep_path = os.path.join(kernel, "modules.dep")
    lines = open(dep_path).read().splitlines()
    suffix = lines[0].split(":")[0][lines[0].split(":")[0].index(".ko"):] if lines else ".ko"
    present = {name(l.split(":")[0]) for l in lines}
    for extra in EXTRA:
        if name(extra) not in present:
            lines.append(extra + suffix + ":")
            present.add(name(extra))
    with open(dep_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    builtin = set()
    builtin_path = os.path.join(kernel, "modules.builtin")
    if os.path.exists(builtin_path):
        builtin = {name(l) for l in open(builtin_path).read().split()}
    with open(os.path.join(kernel, "modules.alias"), "w") as f:
        f.write("# Aliases extracted from modules\n")
        for module in sorted(present):
            f.writelines(aliases.get(module, []))
    # Built-in drivers' aliases live in modules.builtin.modinfo (NUL-separated module.key=value).
    wanted = [(m, l.split()[1]) for m in sorted(builtin) for l in aliases.get(m, [])]
    modinfo = os.path.join(kernel, "modules.builtin.modinfo")
    if wanted:
        with open(modinfo, "wb") as f:
            f.write(b"".join(("%s.alias=%s" % (m, p)).encode() + b"\0" for m, p in wanted))
    elif os.path.exists(modinfo):
        os.remove(modinfo)
    print(kernel, len(present), "modules", sum(len(aliases.get(m, [])) for m in present), "aliases")
