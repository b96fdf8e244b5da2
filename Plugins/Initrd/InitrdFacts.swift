import Foundation
import ProvisionPluginAPI

/// `facts.initrd`, exported by `initrd.modules` for the kernel command-line step (and recorded for
/// `provision verify`).
public struct InitrdFacts: StepFact, Equatable {
    public static let key = "initrd"

    /// The generator's name ("dracut").
    public var generator: String
    /// The modules loaded early (empty when the step removed them).
    public var modules: [String]
    /// Command-line tokens the generator needs (`rd.driver.pre=vfio-pci` for dracut).
    public var cmdline: [String]
    /// Kernels with vfio-pci built in: `vfio-pci.ids=` must go on their command line.
    public var vfioPCIBuiltin: [String]

    enum CodingKeys: String, CodingKey {
        case generator, modules, cmdline
        case vfioPCIBuiltin = "vfio_pci_builtin"
    }

    public static func read(_ host: HostView) throws -> InitrdFacts? { try host.fact(InitrdFacts.self) }
}
