import Foundation
import ProvisionPluginAPI

/// `facts.input`, exported by `libvirt.qemu-conf`: the keyboards and mice it let through the
/// cgroup ACL, which `libvirt.domain` relays to the guest.
public struct InputFacts: StepFact, Equatable {
    public static let key = "input"

    public var keyboards: [String]
    public var mice: [String]

    public static func read(_ host: HostView) throws -> InputFacts? { try host.fact(InputFacts.self) }
}
