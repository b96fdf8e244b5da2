import Foundation
import ProvisionCore
import ProvisionEdit
import Testing

/// The text-preserving XML editor: libxml2 as the judge of what is XML, byte-exact splices.
@Suite struct XMLTextTests {
    @Test func malformedXMLNamesTheFirstFaultyLine() throws {
        let text = "<domain>\n  <devices>\n    <disk type='file'>\n  </devices>\n</domain>\n"
        #expect {
            try XMLText(text, file: "/etc/libvirt/qemu/vm.xml")
        } throws: { error in
            let description = "\(error)"
            return description.hasPrefix("/etc/libvirt/qemu/vm.xml:4:") && description.contains("mismatch")
        }
    }

    @Test func doctypeAndEntitiesAreRefusedNotExpanded() throws {
        let secret = try TempDirectory()
        try "top secret\n".write(toFile: secret.path + "/secret", atomically: true, encoding: .utf8)
        let text = "<?xml version='1.0'?>\n<!DOCTYPE d [<!ENTITY x SYSTEM 'file://\(secret.path)/secret'>]>\n<d>&x;</d>\n"
        #expect {
            try XMLText(text, file: "d.xml")
        } throws: { "\($0)".contains("d.xml:2:1: a DOCTYPE") }
    }

    @Test func editsKeepEveryUntouchedByte() throws {
        let text = """
            <!-- header -->
            <domain type='kvm'>
              <name>vm &amp; co</name>
              <cpu mode='host-passthrough'/>
              <devices>
                <video/>
                <graphics type="spice"></graphics>
              </devices>
            </domain>

            """
        var doc = try XMLText(text, file: "vm.xml")
        #expect(doc.root.child("name")?.text == "vm & co")
        try doc.insert(XMLFragment("feature", [("policy", "disable"), ("name", "a'b")]), into: doc.root.child("cpu")!, after: nil)
        try doc.remove(doc.root.child("devices")!.child("video")!)
        try doc.setAttribute(doc.root.child("devices")!.child("graphics")!, "type", "vnc")
        try doc.insert(XMLFragment("listen", [("type", "none")]), into: doc.root.child("devices")!.child("graphics")!, after: nil)
        #expect(
            doc.text == """
                <!-- header -->
                <domain type='kvm'>
                  <name>vm &amp; co</name>
                  <cpu mode='host-passthrough'>
                    <feature policy='disable' name='a&apos;b'/>
                  </cpu>
                  <devices>
                    <graphics type="vnc">
                      <listen type='none'/>
                    </graphics>
                  </devices>
                </domain>

                """)
    }

    @Test func insertFollowsTheWritersOrder() throws {
        var doc = try XMLText("<features>\n\t<acpi/>\n\t<vmport state='off'/>\n</features>\n", file: "f.xml")
        try doc.insert(XMLFragment("kvm", [], [XMLFragment("hidden", [("state", "on")])]), into: doc.root, order: ["acpi", "kvm", "vmport"])
        #expect(doc.text == "<features>\n\t<acpi/>\n\t<kvm>\n\t\t<hidden state='on'/>\n\t</kvm>\n\t<vmport state='off'/>\n</features>\n")
    }
}

/// A directory removed when the test ends.
final class TempDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "provision-xml-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
