/// The order in which libvirt writes the children of the elements the domain step touches. A new
/// element goes where libvirt itself would put it, so that libvirt re-writing the file on `virsh
/// define` moves nothing.
enum LibvirtOrder {
    static let domain = [
        "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory", "currentMemory", "blkiotune",
        "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads", "iothreadids", "defaultiothread", "cputune", "numatune",
        "resource", "sysinfo", "bootloader", "bootloader_args", "os", "idmap", "throttlegroups", "features", "cpu", "clock",
        "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices", "seclabel", "keywrap",
        "launchSecurity",
    ]

    static let features = [
        "acpi", "apic", "pae", "hap", "viridian", "privnet", "hyperv", "kvm", "xen", "pvspinlock", "capabilities", "pmu",
        "vmport", "gic", "smm", "ioapic", "hpt", "vmcoreinfo", "htm", "nested-hv", "msrs", "ccf-assist", "cfpc", "sbbc",
        "ibs", "tcg", "async-teardown",
    ]

    static let hyperv = [
        "relaxed", "vapic", "spinlocks", "vpindex", "runtime", "synic", "stimer", "reset", "vendor_id", "frequencies",
        "reenlightenment", "tlbflush", "ipi", "evmcs", "avic",
    ]

    static let kvm = ["hidden", "hint-dedicated", "poll-control", "pv-ipi", "dirty-ring"]

    static let cpu = ["model", "vendor", "topology", "cache", "maxphysaddr", "feature", "numa"]

    static let devices = [
        "emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard", "serial", "parallel", "console",
        "channel", "input", "tpm", "graphics", "sound", "audio", "video", "hostdev", "redirdev", "redirfilter", "hub",
        "watchdog", "memballoon", "rng", "panic", "shmem", "memory", "iommu", "vsock", "crypto",
    ]

    /// libvirt's virDomainDeviceInfoFormat: a hostdev's `<rom>` sits after its source, boot and
    /// alias, before its guest address.
    static let hostdev = ["driver", "source", "origstates", "boot", "alias", "master", "rom", "acpi", "address"]
}
