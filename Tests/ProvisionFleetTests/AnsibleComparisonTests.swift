import Foundation
import ProvisionCore
import ProvisionFleet
import ProvisionTestSupport
import Testing

/// The inventories under Inventories/ read by provision and by the real ansible-core: the same
/// hosts, groups, variables (every precedence rule and value type the files exercise) and the
/// same hosts for every pattern.
@Suite(.enabled(if: Ansible.available, Comment(rawValue: Ansible.missing)))
struct AnsibleComparisonTests {
    static let fixtures = ["lab/hosts.yml", "farm/farm"]

    static func path(_ relative: String) -> String { Package.path("Tests/ProvisionFleetTests/Inventories/\(relative)") }

    @Test(arguments: fixtures)
    func hostsGroupsAndVariablesMatchAnsibleInventory(_ fixture: String) throws {
        let inventory = try Inventory.load(path: Self.path(fixture))
        let listed = try Ansible.run("ansible-inventory", ["-i", Self.path(fixture), "--list"])
        #expect(listed.status == 0, "\(listed)")
        let document = try JSONDecoder().decode([String: InventoryValue].self, from: Data(listed.stdout.utf8))
        guard case .map(let meta)? = document["_meta"], case .map(let hostvars)? = meta["hostvars"] else {
            Issue.record("no _meta.hostvars in \(listed.stdout)")
            return
        }
        var ansibleHosts: Set<String> = []
        for (name, entry) in document where name != "_meta" {
            guard case .map(let group) = entry else { continue }
            func names(_ key: String) -> Set<String> {
                guard case .list(let items)? = group[key] else { return [] }
                return Set(items.map(\.scalarText))
            }
            let hosts = names("hosts"), children = names("children")
            ansibleHosts.formUnion(hosts)
            let ours = try #require(inventory.groups[name], "ansible has group \(name)")
            // ansible-inventory lists no hosts under all.
            if name != "all" { #expect(Set(ours.hosts) == hosts, "hosts of \(name)") }
            // ansible-inventory leaves out children that have nothing to show.
            #expect(children.isSubset(of: Set(ours.children)), "children of \(name)")
        }
        #expect(ansibleHosts == Set(inventory.hostNames))
        #expect(inventory.hostNames.count > 10)
        for host in inventory.hostNames {
            guard case .map(let expected)? = hostvars[host] ?? .map([:]) else { continue }
            let ours = inventory.variables(of: host)
            #expect(InventoryValue.map(ours).wholeFloatsAsInts == InventoryValue.map(expected).wholeFloatsAsInts, "variables of \(host): ours \(InventoryValue.map(ours).jsonText), ansible's \(InventoryValue.map(expected).jsonText)")
        }
    }

    static let patterns: [String: [String]] = [
        "lab/hosts.yml": [
            "all", "workstations", "gaming", "ws*", "~ws0[12]", "workstations:!gaming", "workstations:&render", "render,debian",
            "ws01", "node*:&debian", "!gaming", "&render", "workstations[0]", "workstations[1:2]", "workstations[-1]",
            "workstations[2:]", "gamer?.lab", "ungrouped", "empty", "nonexistent", "lonely:ws-arch", "*.lab", "[wn]*", "[!w]*",
            "all:!ws*:&render", "~(node|gamer)", "ws-arch", "ws-arch:2222", "render:debian:!node4", "&debian:render",
        ],
        "farm/farm": [
            "all", "db", "web:db", "web:&replicas", "db:!db3", "~db[0-9]", "www-?", "s*", "replicas[1]", "standalone,db1",
            "ungrouped", "*", "stride", "web[0:1]:&replicas",
        ],
    ]

    static let limits: [String: [String]] = [
        "lab/hosts.yml": ["gaming:render", "@\(path("lab-limit.txt"))", "!gaming", "ws*:&render", "~node"],
        "farm/farm": ["db:!replicas", "web,standalone", "&db"],
    ]

    @Test(arguments: fixtures)
    func patternsSelectWhatAnsibleSelects(_ fixture: String) throws {
        let inventory = try Inventory.load(path: Self.path(fixture))
        let cases = Self.patterns[fixture]!.map { (pattern: $0, limit: false) } + Self.limits[fixture]!.map { (pattern: $0, limit: true) }
        let results = Parallel.map(cases, workers: 2) { entry -> String? in
            do {
                let ours = try entry.limit ? inventory.hosts(limit: entry.pattern) : inventory.hosts(matching: entry.pattern)
                let theirs = try entry.limit
                    ? Ansible.listHosts(inventory: Self.path(fixture), pattern: "all", limit: entry.pattern)
                    : Ansible.listHosts(inventory: Self.path(fixture), pattern: entry.pattern)
                guard Set(ours) == Set(theirs), ours.count == theirs.count else {
                    return "\(entry.limit ? "--limit " : "")\(entry.pattern): ours \(ours), ansible's \(theirs)"
                }
                return nil
            } catch {
                return "\(entry.pattern): \(error)"
            }
        }
        for case let mismatch? in results { Issue.record(Comment(rawValue: mismatch)) }
        #expect(results.count == cases.count)
    }
}
