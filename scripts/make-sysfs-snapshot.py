#!/usr/bin/env python3
"""Writes the sys/ subset of a host snapshot that device discovery reads, laid out as the kernel
lays it out (device directories under sys/devices, symlinks from sys/bus/pci/devices, driver and
iommu_group links, sys/kernel/iommu_groups, sys/class/iommu). Each family's hardware is described
below; run it from the repository root after changing a description. Rewrites snapshots/*/sys."""
import os, shutil

# (address, parent bridge address or None, vendor, device, class, subsystem, driver, group, extra)
FAMILIES = {
    # NVIDIA GTX 1080 + HDMI audio alone in their group; the Intel iGPU drives the host (boot VGA).
    "arch": dict(iommu=["dmar0", "dmar1"], devices=[
        ("0000:00:00.0", None, "8086", "3ec2", "0x060000", "1462:7b45", "skl_uncore", 0, {}),
        ("0000:00:01.0", None, "8086", "1901", "0x060400", "1462:7b45", "pcieport", 1, {}),
        ("0000:00:02.0", None, "8086", "3e92", "0x030000", "1462:7b45", "i915", 2, {"boot_vga": "1"}),
        ("0000:00:14.0", None, "8086", "a36d", "0x0c0330", "1462:7b45", "xhci_hcd", 3, {}),
        ("0000:00:1f.3", None, "8086", "a348", "0x040300", "1462:7b45", "snd_hda_intel", 4, {}),
        ("0000:01:00.0", "0000:00:01.0", "10de", "1b80", "0x030000", "1462:3362", "nvidia", 10, {"boot_vga": "0", "rom": ""}),
        ("0000:01:00.1", "0000:00:01.0", "10de", "10f0", "0x040300", "1462:3362", "snd_hda_intel", 10, {}),
    ]),
    # AMD RX 6800 with audio, USB-C and UCSI functions; an NVIDIA GT 710 drives the host.
    "fedora": dict(iommu=["ivhd0"], devices=[
        ("0000:00:00.0", None, "1022", "1480", "0x060000", "1022:1480", None, 0, {}),
        ("0000:00:01.1", None, "1022", "1483", "0x060400", "0000:0000", "pcieport", 2, {}),
        ("0000:00:03.1", None, "1022", "1483", "0x060400", "0000:0000", "pcieport", 4, {}),
        ("0000:0b:00.0", "0000:00:01.1", "10de", "128b", "0x030000", "1458:36c7", "nouveau", 20, {"boot_vga": "1", "rom": ""}),
        ("0000:0b:00.1", "0000:00:01.1", "10de", "0e0f", "0x040300", "1458:36c7", "snd_hda_intel", 20, {}),
        ("0000:0c:00.0", "0000:00:03.1", "1002", "73bf", "0x030000", "1002:0e3a", "amdgpu", 21, {"boot_vga": "0", "rom": ""}),
        ("0000:0c:00.1", "0000:00:03.1", "1002", "ab28", "0x040300", "1002:ab28", "snd_hda_intel", 21, {}),
        ("0000:0c:00.2", "0000:00:03.1", "1002", "73a6", "0x0c0330", "1002:0408", "xhci_hcd", 21, {}),
        ("0000:0c:00.3", "0000:00:03.1", "1002", "73a4", "0x0c8000", "1002:0408", "i2c-designware-pci", 21, {}),
    ]),
    # A GTX 1050 Ti behind the chipset, sharing its group with an ASMedia USB controller.
    "debian": dict(iommu=["dmar0", "dmar1"], devices=[
        ("0000:00:00.0", None, "8086", "3e30", "0x060000", "1043:8694", None, 0, {}),
        ("0000:00:02.0", None, "8086", "3e98", "0x030000", "1043:8694", "i915", 1, {"boot_vga": "1"}),
        ("0000:00:1c.0", None, "8086", "a338", "0x060400", "1043:8694", "pcieport", 7, {}),
        ("0000:00:1c.4", None, "8086", "a33c", "0x060400", "1043:8694", "pcieport", 7, {}),
        ("0000:01:00.0", "0000:00:1c.0", "10de", "1c82", "0x030000", "1043:8613", "nouveau", 7, {"boot_vga": "0"}),
        ("0000:01:00.1", "0000:00:1c.0", "10de", "0fb9", "0x040300", "1043:8613", "snd_hda_intel", 7, {}),
        ("0000:02:00.0", "0000:00:1c.4", "1b21", "2142", "0x0c0330", "1043:8756", "xhci_hcd", 7, {}),
    ]),
    # Two identical RTX 3070 cards; the first drives the host. IOMMU still off.
    "ubuntu": dict(iommu=[], devices=[
        ("0000:00:00.0", None, "8086", "9b43", "0x060000", "1458:5000", None, None, {}),
        ("0000:00:01.0", None, "8086", "1901", "0x060400", "1458:5000", "pcieport", None, {}),
        ("0000:00:1b.0", None, "8086", "a340", "0x060400", "1458:5000", "pcieport", None, {}),
        ("0000:01:00.0", "0000:00:01.0", "10de", "2484", "0x030000", "1458:404c", "nvidia", None, {"boot_vga": "1", "rom": ""}),
        ("0000:01:00.1", "0000:00:01.0", "10de", "228b", "0x040300", "1458:404c", "snd_hda_intel", None, {}),
        ("0000:02:00.0", "0000:00:1b.0", "10de", "2484", "0x030000", "1458:404c", "nvidia", None, {"boot_vga": "0", "rom": ""}),
        ("0000:02:00.1", "0000:00:1b.0", "10de", "228b", "0x040300", "1458:404c", "snd_hda_intel", None, {}),
    ]),
    # RTX 3060 in a group with its root port only; the Ryzen APU's Radeon drives the host.
    "popos": dict(iommu=["ivhd0"], devices=[
        ("0000:00:00.0", None, "1022", "1630", "0x060000", "1022:1630", None, 0, {}),
        ("0000:00:01.1", None, "1022", "1633", "0x060400", "1022:1453", "pcieport", 1, {}),
        ("0000:00:08.1", None, "1022", "1635", "0x060400", "1022:1635", "pcieport", 6, {}),
        ("0000:01:00.0", "0000:00:01.1", "10de", "2503", "0x030000", "3842:3657", "nvidia", 1, {"boot_vga": "0", "rom": ""}),
        ("0000:01:00.1", "0000:00:01.1", "10de", "228e", "0x040300", "3842:3657", "snd_hda_intel", 1, {}),
        ("0000:07:00.0", "0000:00:08.1", "1002", "1638", "0x030000", "1462:7c95", "amdgpu", 6, {"boot_vga": "1"}),
        ("0000:07:00.1", "0000:00:08.1", "1002", "1637", "0x040300", "1462:7c95", "snd_hda_intel", 6, {}),
    ]),
}

def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)

def link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)

for family, spec in FAMILIES.items():
    sys_root = os.path.join("snapshots", family, "sys")
    shutil.rmtree(sys_root, ignore_errors=True)
    paths = {}
    for address, parent, *_ in spec["devices"]:
        paths[address] = (paths[parent] + "/" if parent else "devices/pci0000:00/") + address
    for address, parent, vendor, device, klass, subsystem, driver, group, extra in spec["devices"]:
        rel = paths[address]
        base = os.path.join(sys_root, rel)
        sub_vendor, sub_device = subsystem.split(":")
        code = int(klass, 16)
        # As drivers/pci/pci-driver.c prints it: what modprobe matches against modules.alias.
        modalias = "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X" % (
            int(vendor, 16), int(device, 16), int(sub_vendor, 16), int(sub_device, 16), code >> 16, (code >> 8) & 0xff, code & 0xff)
        for name, value in [("vendor", "0x" + vendor), ("device", "0x" + device), ("class", klass),
                            ("subsystem_vendor", "0x" + sub_vendor), ("subsystem_device", "0x" + sub_device),
                            ("modalias", modalias)] + list(extra.items()):
            write(os.path.join(base, name), value + "\n" if value else "")
        up = "../" * rel.count("/")
        if driver:
            write(os.path.join(sys_root, "bus/pci/drivers", driver, "bind"), "")
            link(os.path.join(base, "driver"), up + "../bus/pci/drivers/" + driver)
        if group is not None:
            link(os.path.join(base, "iommu_group"), up + "../kernel/iommu_groups/%d" % group)
            link(os.path.join(sys_root, "kernel/iommu_groups/%d/devices" % group, address), "../../../../" + rel)
        link(os.path.join(sys_root, "bus/pci/devices", address), "../../../" + rel)
    for unit in spec["iommu"]:
        write(os.path.join(sys_root, "devices/virtual/iommu", unit, "uevent"), "")
        link(os.path.join(sys_root, "class/iommu", unit), "../../devices/virtual/iommu/" + unit)
    print(family, len(spec["devices"]), "functions")
