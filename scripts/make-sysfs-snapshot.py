#!/usr/bin/env python3
"""Writes the sys/ subset of a host snapshot that device discovery reads, laid out as the kernel
lays it out (device directories under sys/devices, symlinks from sys/bus/pci/devices, driver and
iommu_group links, sys/kernel/iommu_groups, sys/class/iommu), and the CPU topology the tuning steps
read (sys/devices/system/cpu and node, the GPU's numa_node, proc/meminfo). Each family's hardware is
described below, and so are the machines of the CPU-pinning fixtures; run it from the repository
root after changing a description. Rewrites snapshots/*/sys, snapshots/*/proc/meminfo and
Tests/ProvisionTuningTests/Fixtures/machines."""
import os, shutil

# CPUs as the kernel numbers them. Each package: its NUMA node, its cores as (core_id, kind) with
# kind "P" (or "E" for a hybrid part's efficient cores, one thread each), and its L3 groups as lists
# of indices into its cores (a Zen CCD each; one per package on Intel). `numbering`: "split" is the
# usual x86 enumeration (first thread of every core of every package, then the second threads in
# the same order); "adjacent" is Alder Lake's (a P-core's two threads side by side, E-cores after).
def l3_groups(ccds, cores_per_ccd):
    """Core indices per L3 group, in order (a Zen CCD, or a Zen 2 CCX)."""
    return [[ccd * cores_per_ccd + i for i in range(cores_per_ccd)] for ccd in range(ccds)]

CPUS = {
    # Core i7-8700K: 6 cores, 12 threads, one L3.
    "i7-8700K": dict(vendor="GenuineIntel", name="Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", numbering="split", threads=2,
                     packages=[dict(node=0, cores=[(i, "P") for i in range(6)], l3=[list(range(6))])]),
    # Ryzen 9 5950X (Zen 3): 16 cores in two CCDs of 8, each CCD its own L3.
    "5950X": dict(vendor="AuthenticAMD", name="AMD Ryzen 9 5950X 16-Core Processor", numbering="split", threads=2,
                  packages=[dict(node=0, cores=[(i, "P") for i in range(16)], l3=l3_groups(2, 8))]),
    # Threadripper 3970X (Zen 2): 32 cores, each CCX of 4 cores with its own L3.
    "3970X": dict(vendor="AuthenticAMD", name="AMD Ryzen Threadripper 3970X 32-Core Processor", numbering="split", threads=2,
                  packages=[dict(node=0, cores=[(i, "P") for i in range(32)], l3=l3_groups(8, 4))]),
    # Ryzen 9 5900X (Zen 3): two CCDs of 6 enabled cores; the second CCD's core ids start at 8.
    "5900X": dict(vendor="AuthenticAMD", name="AMD Ryzen 9 5900X 12-Core Processor", numbering="split", threads=2,
                  packages=[dict(node=0, cores=[(i, "P") for i in [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]], l3=l3_groups(2, 6))]),
    # Two Xeon Gold 6130 (16 cores, 32 threads each), one NUMA node and one L3 per socket; Skylake-SP
    # core ids have gaps (the mesh tiles that are fused off).
    "2x Xeon Gold 6130": dict(vendor="GenuineIntel", name="Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", numbering="split", threads=2,
                              packages=[dict(node=node, cores=[(i, "P") for i in [0, 1, 2, 3, 4, 8, 9, 10, 11, 16, 17, 18, 19, 20, 24, 25]],
                                             l3=[list(range(16))]) for node in (0, 1)]),
    # Core i5-6600K: 4 cores, no SMT.
    "i5-6600K": dict(vendor="GenuineIntel", name="Intel(R) Core(TM) i5-6600K CPU @ 3.50GHz", numbering="split", threads=1,
                     packages=[dict(node=0, cores=[(i, "P") for i in range(4)], l3=[list(range(4))])]),
    # Core i7-12700K (Alder Lake): 8 P-cores with two threads, 4 E-cores with one, one L3.
    "i7-12700K": dict(vendor="GenuineIntel", name="12th Gen Intel(R) Core(TM) i7-12700K", numbering="adjacent", threads=2,
                      packages=[dict(node=0, cores=[(i * 4, "P") for i in range(8)] + [(32 + i, "E") for i in range(4)],
                                     l3=[list(range(12))])]),
}

# The machines of the CPU-pinning fixtures: a CPU, the RAM, and the guest GPU with its NUMA node.
MACHINES = {
    "intel-6c12t": dict(cpu="i7-8700K", memory_gib=32, gpu=("0000:01:00.0", "pci0000:00/0000:00:01.0", -1)),
    "zen3-16c-2ccd": dict(cpu="5950X", memory_gib=64, gpu=("0000:0b:00.0", "pci0000:00/0000:00:03.1", 0)),
    "xeon-2s-gpu-node1": dict(cpu="2x Xeon Gold 6130", memory_gib=192, gpu=("0000:af:00.0", "pci0000:ae/0000:ae:00.0", 1)),
    "intel-4c-nosmt": dict(cpu="i5-6600K", memory_gib=16, gpu=("0000:01:00.0", "pci0000:00/0000:00:01.0", -1)),
    "zen2-threadripper-3970x": dict(cpu="3970X", memory_gib=128, gpu=("0000:21:00.0", "pci0000:20/0000:20:03.1", 0)),
    "intel-hybrid-12700k": dict(cpu="i7-12700K", memory_gib=32, gpu=("0000:01:00.0", "pci0000:00/0000:00:01.0", -1)),
}

# (address, parent bridge address or None, vendor, device, class, subsystem, driver, group, extra)
FAMILIES = {
    # NVIDIA GTX 1080 + HDMI audio alone in their group; the Intel iGPU drives the host (boot VGA).
    "arch": dict(cpu="i7-8700K", memory_gib=32, iommu=["dmar0", "dmar1"], devices=[
        ("0000:00:00.0", None, "8086", "3ec2", "0x060000", "1462:7b45", "skl_uncore", 0, {}),
        ("0000:00:01.0", None, "8086", "1901", "0x060400", "1462:7b45", "pcieport", 1, {}),
        ("0000:00:02.0", None, "8086", "3e92", "0x030000", "1462:7b45", "i915", 2, {"boot_vga": "1"}),
        ("0000:00:14.0", None, "8086", "a36d", "0x0c0330", "1462:7b45", "xhci_hcd", 3, {}),
        ("0000:00:1f.3", None, "8086", "a348", "0x040300", "1462:7b45", "snd_hda_intel", 4, {}),
        ("0000:01:00.0", "0000:00:01.0", "10de", "1b80", "0x030000", "1462:3362", "nvidia", 10, {"boot_vga": "0", "rom": ""}),
        ("0000:01:00.1", "0000:00:01.0", "10de", "10f0", "0x040300", "1462:3362", "snd_hda_intel", 10, {}),
    ]),
    # AMD RX 6800 with audio, USB-C and UCSI functions; an NVIDIA GT 710 drives the host.
    "fedora": dict(cpu="5900X", memory_gib=32, iommu=["ivhd0"], devices=[
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
    "debian": dict(cpu="i7-8700K", memory_gib=32, iommu=["dmar0", "dmar1"], devices=[
        ("0000:00:00.0", None, "8086", "3e30", "0x060000", "1043:8694", None, 0, {}),
        ("0000:00:02.0", None, "8086", "3e98", "0x030000", "1043:8694", "i915", 1, {"boot_vga": "1"}),
        ("0000:00:1c.0", None, "8086", "a338", "0x060400", "1043:8694", "pcieport", 7, {}),
        ("0000:00:1c.4", None, "8086", "a33c", "0x060400", "1043:8694", "pcieport", 7, {}),
        ("0000:01:00.0", "0000:00:1c.0", "10de", "1c82", "0x030000", "1043:8613", "nouveau", 7, {"boot_vga": "0"}),
        ("0000:01:00.1", "0000:00:1c.0", "10de", "0fb9", "0x040300", "1043:8613", "snd_hda_intel", 7, {}),
        ("0000:02:00.0", "0000:00:1c.4", "1b21", "2142", "0x0c0330", "1043:8756", "xhci_hcd", 7, {}),
    ]),
    # Two identical RTX 3070 cards; the first drives the host. IOMMU still off.
    "ubuntu": dict(cpu="i7-8700K", memory_gib=32, iommu=[], devices=[
        ("0000:00:00.0", None, "8086", "9b43", "0x060000", "1458:5000", None, None, {}),
        ("0000:00:01.0", None, "8086", "1901", "0x060400", "1458:5000", "pcieport", None, {}),
        ("0000:00:1b.0", None, "8086", "a340", "0x060400", "1458:5000", "pcieport", None, {}),
        ("0000:01:00.0", "0000:00:01.0", "10de", "2484", "0x030000", "1458:404c", "nvidia", None, {"boot_vga": "1", "rom": ""}),
        ("0000:01:00.1", "0000:00:01.0", "10de", "228b", "0x040300", "1458:404c", "snd_hda_intel", None, {}),
        ("0000:02:00.0", "0000:00:1b.0", "10de", "2484", "0x030000", "1458:404c", "nvidia", None, {"boot_vga": "0", "rom": ""}),
        ("0000:02:00.1", "0000:00:1b.0", "10de", "228b", "0x040300", "1458:404c", "snd_hda_intel", None, {}),
    ]),
    # RTX 3060 in a group with its root port only; the Ryzen APU's Radeon drives the host.
    "popos": dict(cpu="5900X", memory_gib=32, iommu=["ivhd0"], devices=[
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

def cpulist(numbers):
    """The kernel's list format (bitmap_print_list): ascending, runs of two or more as a-b."""
    numbers, runs = sorted(numbers), []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in runs)

def cpu_layout(spec):
    """{cpu number: (package index, core index, thread index)} in the kernel's numbering."""
    def threads(kind):
        return spec["threads"] if kind == "P" else 1
    order = []
    if spec["numbering"] == "split":
        for thread in range(spec["threads"]):
            for p, package in enumerate(spec["packages"]):
                order += [(p, c, thread) for c, (_, kind) in enumerate(package["cores"]) if thread < threads(kind)]
    else:
        for p, package in enumerate(spec["packages"]):
            for c, (_, kind) in enumerate(package["cores"]):
                order += [(p, c, thread) for thread in range(threads(kind))]
    return dict(enumerate(order))

def write_cpus(root, spec, memory_gib):
    """sys/devices/system/cpu and node as the kernel lays them out, and proc/meminfo."""
    layout = cpu_layout(spec)
    cores = {}
    for n, (p, c, _) in layout.items():
        cores.setdefault((p, c), []).append(n)
    base = os.path.join(root, "sys/devices/system/cpu")
    for name in ("online", "possible", "present"):
        write(os.path.join(base, name), cpulist(layout) + "\n")
    for n, (p, c, _) in layout.items():
        package = spec["packages"][p]
        core_id, kind = package["cores"][c]
        siblings = cores[(p, c)]
        group = next(g for g, members in enumerate(package["l3"]) if c in members)
        l3 = [m for member in package["l3"][group] for m in cores[(p, member)]]
        efficient = [i for i, (_, k) in enumerate(package["cores"]) if k == "E"]
        # E-cores share an L2 per cluster of four.
        l2 = siblings if kind == "P" else [m for i in efficient if efficient.index(i) // 4 == efficient.index(c) // 4 for m in cores[(p, i)]]
        package_cpus = [m for m, (q, _, _) in layout.items() if q == p]
        cpu = os.path.join(base, "cpu%d" % n)
        for name, value in [("physical_package_id", p), ("die_id", 0), ("core_id", core_id),
                            ("thread_siblings_list", cpulist(siblings)), ("core_cpus_list", cpulist(siblings)),
                            ("core_siblings_list", cpulist(package_cpus)), ("package_cpus_list", cpulist(package_cpus))]:
            write(os.path.join(cpu, "topology", name), "%s\n" % value)
        for index, (level, kind_name, shared) in enumerate([(1, "Data", siblings), (1, "Instruction", siblings), (2, "Unified", l2),
                                                           (3, "Unified", l3)]):
            for name, value in [("level", level), ("type", kind_name), ("shared_cpu_list", cpulist(shared))]:
                write(os.path.join(cpu, "cache/index%d" % index, name), "%s\n" % value)
    nodes = sorted({package["node"] for package in spec["packages"]})
    node_base = os.path.join(root, "sys/devices/system/node")
    for name in ("online", "possible", "has_cpu", "has_normal_memory"):
        write(os.path.join(node_base, name), cpulist(nodes) + "\n")
    for node in nodes:
        members = [n for n, (p, _, _) in layout.items() if spec["packages"][p]["node"] == node]
        write(os.path.join(node_base, "node%d" % node, "cpulist"), cpulist(members) + "\n")
    kinds = {kind: [n for n, (p, c, _) in layout.items() if spec["packages"][p]["cores"][c][1] == kind] for kind in ("P", "E")}
    if kinds["E"]:
        # Hybrid Intel parts: the perf PMU of each core type lists its CPUs.
        write(os.path.join(root, "sys/devices/cpu_core/cpus"), cpulist(kinds["P"]) + "\n")
        write(os.path.join(root, "sys/devices/cpu_atom/cpus"), cpulist(kinds["E"]) + "\n")
    total = memory_gib * 1024 * 1024 * 975 // 1000  # what firmware and the kernel keep is not in MemTotal
    write(os.path.join(root, "proc/meminfo"), "".join("%-16s%8d kB\n" % (key + ":", value) if key not in ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp") else "%-16s%8d\n" % (key + ":", value) for key, value in [
        ("MemTotal", total), ("MemFree", total * 8 // 10), ("MemAvailable", total * 9 // 10), ("Buffers", 204800),
        ("Cached", total // 10), ("SwapCached", 0), ("Active", total // 20), ("Inactive", total // 20),
        ("SwapTotal", 0), ("SwapFree", 0), ("AnonHugePages", 0), ("HugePages_Total", 0), ("HugePages_Free", 0),
        ("HugePages_Rsvd", 0), ("HugePages_Surp", 0), ("Hugepagesize", 2048), ("Hugetlb", 0)]))

def write_pci(sys_root, rel, address, values):
    base = os.path.join(sys_root, rel)
    for name, value in values:
        write(os.path.join(base, name), value + "\n" if value else "")
    if not os.path.lexists(os.path.join(sys_root, "bus/pci/devices", address)):
        link(os.path.join(sys_root, "bus/pci/devices", address), "../../../" + rel)

for family, spec in FAMILIES.items():
    sys_root = os.path.join("snapshots", family, "sys")
    shutil.rmtree(sys_root, ignore_errors=True)
    cpu = CPUS[spec["cpu"]]
    # Single-node Intel desktops report no node for their devices (-1); AMD's firmware says node 0.
    numa_node = "0" if cpu["vendor"] == "AuthenticAMD" else "-1"
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
                            ("modalias", modalias), ("numa_node", numa_node)] + list(extra.items()):
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
    write_cpus(os.path.join("snapshots", family), cpu, spec["memory_gib"])
    print(family, len(spec["devices"]), "functions,", spec["cpu"])

machines_root = "Tests/ProvisionTuningTests/Fixtures/machines"
shutil.rmtree(machines_root, ignore_errors=True)
for machine, spec in MACHINES.items():
    root = os.path.join(machines_root, machine)
    cpu = CPUS[spec["cpu"]]
    write_cpus(root, cpu, spec["memory_gib"])
    address, parents, node = spec["gpu"]
    # A GeForce RTX 3070 and its audio function, with the node the firmware gives their slot.
    for function, device, klass in [("0", "2484", "0x030000"), ("1", "228b", "0x040300")]:
        function_address = address[:-1] + function
        write_pci(os.path.join(root, "sys"), "devices/%s/%s" % (parents, function_address), function_address,
                  [("vendor", "0x10de"), ("device", "0x" + device), ("class", klass), ("numa_node", str(node))])
    layout = cpu_layout(cpu)
    write(os.path.join(root, "proc/cpuinfo"), "".join(
        "processor\t: %d\nvendor_id\t: %s\nmodel name\t: %s\nphysical id\t: %d\ncore id\t\t: %d\n\n" % (
            n, cpu["vendor"], cpu["name"], p, cpu["packages"][p]["cores"][c][0]) for n, (p, c, _) in layout.items()))
    print(machine, len(layout), "CPUs,", spec["cpu"])
