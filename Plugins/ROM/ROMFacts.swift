import Foundation
import ProvisionPluginAPI

/// `facts.rom`, exported by `rom.fetch` for `libvirt.domain` (the hostdev's `<rom file=…>`).
public struct ROMFacts: StepFact, Equatable {
    public static let key = "rom"

    /// Where the verified ROM is installed in the root.
    public var path: String
    public var sha256: String
    /// Whether it carries an EFI image (UEFI guests need one).
    public var efi: Bool

    public static func read(_ host: HostView) throws -> ROMFacts? { try host.fact(ROMFacts.self) }
}
