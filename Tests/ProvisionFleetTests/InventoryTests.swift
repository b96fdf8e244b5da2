import Foundation
import ProvisionCore
@testable import ProvisionFleet
import ProvisionTestSupport
import Testing

@Suite struct InventoryTests {
    static func lab() throws -> Inventory { try Inventory.load(path: AnsibleComparisonTests.path("lab/hosts.yml")) }

    @Test func precedenceFollowsAnsible() throws {
        let inventory = try Self.lab()
        // host_vars beats everything.
        #expect(inventory.variables(of: "ws01")["level"] == .string("host_vars-ws01"))
        // group_vars/workstations (depth 1) over inline gaming vars (depth 2): files beat inline.
        #expect(inventory.variables(of: "ws02")["level"] == .string("group_vars-workstations"))
        // Among files, the deeper or higher-priority group wins: render has priority 5.
        #expect(inventory.variables(of: "node1")["level"] == .string("group_vars-render"))
        // group_vars/all over the inline all.
        #expect(inventory.variables(of: "lonely")["level"] == .string("group_vars-all"))
        // A directory's files in name order; only the first of NAME, NAME.yml… is read.
        #expect(inventory.variables(of: "ws03")["wsfile"] == .string("b"))
        #expect(inventory.variables(of: "gamera.lab")["gaming_file"] == .string("plain"))
        #expect(inventory.variables(of: "ws01")["ignored"] == nil)
        #expect(inventory.groups["render"]?.priority == 5)
        #expect(inventory.groups["gaming"]?.depth == 2)
    }

    @Test func yamlScalarsResolveAsPyYAML() throws {
        let vars = try Self.lab().variables(of: "node4")
        #expect(vars["octal"] == .int(8))
        #expect(vars["hex"] == .int(31))
        #expect(vars["exp"] == .string("1e5"))
        #expect(vars["y"] == .bool(true))
        #expect(vars["off_word"] == .bool(false))
        #expect(vars["nothing"] == .null)
        #expect(vars["m"] == .map(["k": .string("v"), "n": .int(1)]))
    }

    @Test func rangesExpand() throws {
        #expect(try HostRange.expand("node[01:03]").names == ["node01", "node02", "node03"])
        #expect(try HostRange.expand("rack[a:c]").names == ["racka", "rackb", "rackc"])
        #expect(try HostRange.expand("n[1:10:3]").names == ["n1", "n4", "n7", "n10"])
        #expect(try HostRange.expand("db[01:10:4]x-[a:b]").names == ["db01x-a", "db01x-b", "db05x-a", "db05x-b", "db09x-a", "db09x-b"])
        #expect(try HostRange.expand("web[1:2]:2222") == (["web1", "web2"], 2222))
        #expect(try HostRange.expand("[fe80::1]:22") == (["fe80::1"], 22))
        #expect(try HostRange.expand("10.0.0.[1:3]").names == ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(throws: HostRange.Failure.self) { try HostRange.expand("n[01:100]") }
        #expect(throws: HostRange.Failure.self) { try HostRange.expand("n[1:99999999]") }
        #expect(try HostRange.expand("n[1:99999]").names.count == 99_999)
    }

    @Test func fleetHostsAreTyped() throws {
        let inventory = try Self.lab()
        let node4 = try inventory.fleetHost("node4")
        #expect(node4.sshArguments == ["-o", "ProxyJump=bastion", "-o", "User=a b"])
        #expect(node4.root == "/")
        #expect(node4.recipeVariables["allow_shared_group"] == .bool(true))
        #expect(node4.recipeVariables["ansible_ssh_common_args"] == nil)
        let arguments = try node4.recipeArguments(declared: ["allow_shared_group", "domain", "l", "gpu"])
        #expect(arguments == ["allow_shared_group": "true", "domain": "win10", "l": "a b"])
        #expect(throws: ProvisionError.self) { try node4.recipeArguments(declared: ["m"]) }
        let arch = try inventory.fleetHost("ws-arch")
        #expect(arch.port == 2222)
        #expect(arch.address == "ws-arch")
        #expect(arch.recipeVariables["gpu"] == .string("0000:01:00.0"))
        #expect(arch.groups.contains("workstations") && arch.groups.contains("all"))
        #expect(try inventory.fleetHost("lonely").address == "10.0.0.50")
        #expect(try inventory.fleetHost("ws01").user == "root")
        let farm = try Inventory.load(path: AnsibleComparisonTests.path("farm/farm"))
        #expect(farm.format == .ini)
        let db1 = try farm.fleetHost("db1")
        #expect(db1.become)
        #expect(db1.sshArguments == ["-o", "ProxyJump=bastion", "-o", "User=a b"])
        #expect(try farm.fleetHost("db3").recipeVariables["gpu"] == .string("0000:0b:00.0"))
        let dbHosts = try farm.fleetHosts(limit: "db").map(\.name)
        #expect(Set(dbHosts) == ["db1", "db2", "db3", "db4", "web01"])
        #expect(dbHosts == farm.hosts(in: "all").filter { dbHosts.contains($0) })
    }

    @Test func typedVariablesAreChecked() throws {
        let text = """
            all:
              hosts:
                a: {ansible_port: "ssh"}
                b: {provision_root: relative/path}
                c: {ansible_host: "{{ lookup('x') }}"}
                d: {ansible_become: maybe}
            """
        let inventory = try Inventory.parse(text, format: .yaml, file: "t.yml")
        for host in ["a", "b", "c", "d"] {
            #expect(throws: ProvisionError.self) { try inventory.fleetHost(host) }
        }
    }

    /// Each bad input: the message, and the file:line it must name.
    @Test(arguments: [
        ("[web:vars]\nx=1\n", "t.ini:1", "undefined group web"),
        ("[web]\na\n[all:children]\nweb\nghost\n", "t.ini:5", "undefined group ghost"),
        ("[web]\nhost1\nhost2 novalue\n", "t.ini:3", "expected key=value"),
        ("[web:weird]\n", "t.ini:1", "unknown type"),
        ("[web ]\n", "t.ini:1", "invalid section"),
        ("[web]\nh1 a='unclosed\n", "t.ini:2", "No closing quotation"),
        ("[web]\nn[01:100]\n", "t.ini:2", "equal-length"),
        ("[a:children]\nb\n[b:children]\na\n", "t.ini:", "loop"),
    ])
    func iniErrorsNameTheLine(_ text: String, _ location: String, _ message: String) throws {
        let error = try #require(throws: ProvisionError.self) { try Inventory.parse(text, format: .ini, file: "t.ini") }
        #expect(error.description.contains(location), "\(error)")
        #expect(error.description.contains(message), "\(error)")
    }

    @Test(arguments: [
        ("all:\n  hosts: [a, b]\n", "t.yml:2:10", "must be a mapping"),
        ("all:\n  hosts:\n    a: [1]\n", "t.yml:3:8", "must be a mapping"),
        ("all:\n  vars: &v {a: 1}\n", "t.yml:2:9", "anchors"),
        ("all:\n  hosts:\n    a:\n   b: 1\n", "t.yml:4", "malformed YAML"),
        ("plugin: aws_ec2\n", "t.yml:1", "inventory plugin"),
        ("- a\n", "t.yml:1:1", "mapping of groups"),
        ("all:\n  hosts:\n    22:\n", "t.yml:3:5", "must be a string"),
        ("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n", "t.yml:5:9", "loop"),
    ])
    func yamlErrorsNameTheLine(_ text: String, _ location: String, _ message: String) throws {
        let error = try #require(throws: ProvisionError.self) { try Inventory.parse(text, format: .yaml, file: "t.yml") }
        #expect(error.description.contains(location), "\(error)")
        #expect(error.description.contains(message), "\(error)")
    }

    @Test func varsFileErrorsNameTheFile() throws {
        let directory = try TempRoot()
        try directory.write("/hosts.ini", "[web]\nw1\n")
        try directory.write("/group_vars/web.yml", "a: 1\nb: [unclosed\n")
        let error = try #require(throws: ProvisionError.self) { try Inventory.load(path: directory.real("/hosts.ini")) }
        #expect(error.description.contains("group_vars/web.yml:"), "\(error)")
        try directory.write("/group_vars/web.yml", "- not a mapping\n")
        let notMapping = try #require(throws: ProvisionError.self) { try Inventory.load(path: directory.real("/hosts.ini")) }
        #expect(notMapping.description.contains("group_vars/web.yml:1"), "\(notMapping)")
        try directory.write("/group_vars/web.yml", "$ANSIBLE_VAULT;1.1;AES256\n6162\n")
        let vault = try #require(throws: ProvisionError.self) { try Inventory.load(path: directory.real("/hosts.ini")) }
        #expect(vault.description.contains("ansible-vault"), "\(vault)")
    }

    @Test func slowRegexIsStopped() throws {
        let names = ["h1", "h2", String(repeating: "a", count: 40) + "!"].joined(separator: "\n")
        let inventory = try Inventory.parse("[x]\n\(names)\n", format: .ini, file: "t.ini")
        let (outcome, seconds) = timed { Result { try inventory.hosts(matching: "~(a|aa)+$") } }
        // Stopped by the time limit (an error), or by ICU's backtracking stack limit (no match):
        // never a hang, never a wrong host.
        switch outcome {
        case .success(let hosts): #expect(hosts.isEmpty)
        case .failure(let error): #expect("\(error)".contains("took more than"))
        }
        #expect(seconds < 10)
    }
}

/// Word splitting and Python literals held to Python itself (python3 is on every machine the tests
/// run on: Debian's, not Ansible's).
@Suite struct PythonParityTests {
    static func python(_ script: String, _ inputs: [String]) throws -> [String] {
        let file = try TempRoot()
        let data = try JSONSerialization.data(withJSONObject: inputs)
        try file.write("/inputs.json", String(decoding: data, as: UTF8.self))
        let result = try Spawn.run(["/usr/bin/python3", "-c", script, file.real("/inputs.json")])
        guard result.status == 0 else { throw ProvisionError(.io, "python3 failed: \(result.output)") }
        return result.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func shellWordsSplitAsShlex() throws {
        let inputs = [
            "-o ProxyJump=bastion -o 'User=a b'", "a\"b c\"d", "x\\ y z", "\"in \\\"dq\\\" \\n\"", "'it''s'", "a#b c", "h1 k=v # c",
            "  spaced   out  ", "'' \"\"", "tab\there", "\"a\\\\b\"", "e=\"[1, 2]\"",
        ]
        let script = """
            import json, shlex, sys
            for s in json.load(open(sys.argv[1])):
                print(json.dumps([shlex.split(s, comments=False), shlex.split(s, comments=True)]))
            """
        let expected = try Self.python(script, inputs)
        for (input, line) in zip(inputs, expected) {
            let ours = [try ShellWords.split(input), try ShellWords.split(input, comments: true)]
            let theirs = try JSONDecoder().decode([[String]].self, from: Data(line.utf8))
            #expect(ours == theirs, "\(input)")
        }
        #expect(throws: ShellWords.Unbalanced.self) { try ShellWords.split("'open") }
    }

    @Test func literalsEvaluateAsLiteralEval() throws {
        let inputs = [
            "True", "False", "None", "22", "010", "00", "0x1F", "0o17", "0b101", "1_000", "-5", "+3", "1.5", "2.", ".5", "1e3", "1.5e-2",
            "'text'", "\"dq\"", "'a' 'b'", "'''tri'''", "r'\\d'", "'\\x41\\n'", "u'x'", "[1, 'a', None]", "(1, 2)", "(1,)", "()",
            "{'a': 1, 'b': [True]}", "{1: 'x'}", "{}", "[]", "yes", "plain words", "", "5 # comment", "v # comment", "[1, [2, [3]]]",
            "{'a', 'a'}", "0000:0b:00.0", "10.0.0.1", "-", "'unclosed", "[1,", "1_", "0x", "-'a'", "1.2.3",
        ]
        let script = """
            import ast, json, sys
            for s in json.load(open(sys.argv[1])):
                try:
                    v = ast.literal_eval(s.lstrip(' \\t'))
                    if isinstance(v, (tuple, set)): v = list(v)
                    if isinstance(v, bytes): v = v.decode()
                except Exception:
                    v = s
                print(json.dumps(v, default=list))
            """
        let expected = try Self.python(script, inputs)
        for (input, line) in zip(inputs, expected) {
            let theirs = try JSONDecoder().decode(InventoryValue.self, from: Data(line.utf8))
            #expect(PythonLiteral.value(of: input).wholeFloatsAsInts == theirs.wholeFloatsAsInts, "\(input): ours \(PythonLiteral.value(of: input).jsonText), python's \(line)")
        }
        #expect(expected.count == inputs.count)
    }
}

extension InventoryValue {
    /// JSON cannot tell 2.0 from 2 once decoded: compare numbers by value.
    var wholeFloatsAsInts: InventoryValue {
        switch self {
        case .float(let value) where value == value.rounded() && abs(value) < 1e15: return .int(Int(value))
        case .list(let items): return .list(items.map(\.wholeFloatsAsInts))
        case .map(let entries): return .map(entries.mapValues(\.wholeFloatsAsInts))
        default: return self
        }
    }
}

@Suite struct InventoryScaleTests {
    /// Ranges of many hosts, in both formats: read, resolved and limited in bounded time.
    @Test func twentyThousandHostsStayFast() throws {
        let yaml = "all:\n  children:\n    farm:\n      hosts:\n        node[00001:20000]:\n      vars: {gpu: auto}\n    odd:\n      hosts:\n        node[00001:20000:2]:\n"
        let ini = "[farm]\nnode[00001:20000]\n[odd]\nnode[00001:20000:2]\n[farm:vars]\ngpu=auto\n"
        for (text, format) in [(yaml, Inventory.Format.yaml), (ini, .ini)] {
            let (hosts, seconds) = try timed {
                let inventory = try Inventory.parse(text, format: format, file: "big")
                return try inventory.fleetHosts(limit: "farm:!odd")
            }
            #expect(hosts.count == 10_000)
            #expect(hosts.first?.recipeVariables["gpu"] == .string("auto"))
            #expect(seconds < 20, "\(format): \(seconds) s")
        }
    }
}
