import CGit2
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// A git bundle (version 2, as `git bundle create` writes it), made without a git binary: the
/// header line, the prerequisites (`-<id> <subject>`), the references (`<id> <refname>`), an empty
/// line, then a pack from libgit2's pack builder. `git clone FILE` and `git bundle verify FILE`
/// read it.
public enum GitBundle {
    static let signature = "# v2 git bundle\n"

    public struct Reference: Sendable, Codable, Hashable {
        public var name: String
        public var id: String
    }

    public struct Header: Sendable {
        public var prerequisites: [String]
        public var references: [Reference]
        /// Where the pack starts.
        var packOffset: Int
    }

    /// What a verified bundle holds.
    public struct Summary: Sendable, Codable {
        public var references: [Reference]
        public var prerequisites: [String]
        public var objects: Int
        public var commits: Int
    }

    static func encode(references: [(name: String, id: ObjectID)], prerequisites: [(id: ObjectID, subject: String)], pack: Data) -> Data {
        var header = signature
        for (id, subject) in prerequisites {
            let line = subject.filter { $0 != "\n" && $0 != "\r" }
            header += "-\(id.description)\(line.isEmpty ? "" : " " + line)\n"
        }
        for (name, id) in references { header += "\(id.description) \(name)\n" }
        header += "\n"
        return Data(header.utf8) + pack
    }

    /// Reads the header: the signature, prerequisite and reference lines (ids of 40 hex digits,
    /// valid reference names), the empty line. At most 64 MiB of header.
    public static func header(_ data: Data) throws -> Header {
        func bad(_ why: String) -> ProvisionError { ProvisionError(.invalidInput, "not a valid git bundle: \(why)") }
        guard data.starts(with: Data(signature.utf8)) else { throw bad("it does not start with \"# v2 git bundle\"") }
        var offset = signature.utf8.count
        var prerequisites: [String] = []
        var references: [Reference] = []
        let limit = min(data.count, 64 << 20)
        while true {
            guard let end = data[data.startIndex + offset..<data.startIndex + limit].firstIndex(of: 0x0A) else {
                throw bad("the header does not end (no empty line before the pack)")
            }
            let line = String(decoding: data[data.startIndex + offset..<end], as: UTF8.self)
            offset = end - data.startIndex + 1
            if line.isEmpty { break }
            if line.hasPrefix("-") {
                let id = String(line.dropFirst().prefix(40))
                guard ObjectID(hex: id) != nil, line.count == 41 || line.dropFirst(41).hasPrefix(" ") else {
                    throw bad("prerequisite line \"\(line.prefix(80))\" does not name an object id")
                }
                prerequisites.append(id)
                continue
            }
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, ObjectID(hex: String(parts[0])) != nil else { throw bad("reference line \"\(line.prefix(80))\" is malformed") }
            let name = String(parts[1])
            var valid: Int32 = 0
            GitRepository.initialize()
            guard name == "HEAD" || (git_reference_name_is_valid(&valid, name) == 0 && valid == 1) else {
                throw bad("\"\(name.prefix(80))\" is not a valid reference name")
            }
            references.append(Reference(name: name, id: String(parts[0])))
        }
        guard !references.isEmpty else { throw bad("it names no references") }
        return Header(prerequisites: prerequisites, references: references, packOffset: offset)
    }

    /// Checks a bundle as `git bundle verify` and `git index-pack` would: the header, then the pack
    /// indexed by libgit2 (every object inflated and hashed, the pack's SHA-1 trailer checked),
    /// then every reference found in it. Without prerequisites the bundle must be complete: every
    /// object reachable from its references is in the pack. With them, each commit's parents must
    /// lead back into the pack or to a prerequisite.
    public static func verify(_ data: Data) throws -> Summary {
        let header = try header(data)
        let pack = data.dropFirst(header.packOffset)
        guard pack.count >= 32, pack.starts(with: Data("PACK".utf8)) else {
            throw ProvisionError(.invalidInput, "not a valid git bundle: no pack after the header")
        }
        var template = Array("/tmp/provision-bundle-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ProvisionError.io("cannot make a temporary directory in", "/tmp")
        }
        let directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        GitRepository.initialize()
        var options = git_indexer_options()
        git_indexer_options_init(&options, UInt32(GIT_INDEXER_OPTIONS_VERSION))
        var indexer: OpaquePointer?
        guard git_indexer_new(&indexer, directory, 0o600, nil, &options) == 0, let indexer else {
            throw GitRepository.lastError("cannot index the bundle's pack")
        }
        defer { git_indexer_free(indexer) }
        var progress = git_indexer_progress()
        let appended = pack.withUnsafeBytes { git_indexer_append(indexer, $0.baseAddress, $0.count, &progress) }
        guard appended == 0, git_indexer_commit(indexer, &progress) == 0, let name = git_indexer_name(indexer) else {
            throw ProvisionError(.invalidInput, "not a valid git bundle: its pack is damaged (\(GitRepository.lastError("libgit2").message))")
        }
        let index = try PackIndex(index: directory + "/pack-" + String(cString: name) + ".idx")
        let prerequisites = Set(header.prerequisites.compactMap(ObjectID.init(hex:)))
        var commits = 0
        var seen: Set<ObjectID> = []
        var pending: [ObjectID] = []
        for reference in header.references {
            let id = ObjectID(hex: reference.id)!
            guard index.contains(id) || prerequisites.contains(id) else {
                throw ProvisionError(.invalidInput, "not a valid git bundle: \(reference.name) names \(id.short), which its pack lacks")
            }
            pending.append(id)
        }
        // The walk: commits to their trees and parents, trees to their entries.
        while let id = pending.popLast() {
            guard seen.insert(id).inserted, !prerequisites.contains(id) else { continue }
            guard let (type, body) = index.read(id, limit: 64 << 20) else {
                throw ProvisionError(.invalidInput, "not a valid git bundle: object \(id.short) is referenced but cannot be read from its pack")
            }
            switch type {
            case GIT_OBJECT_COMMIT:
                commits += 1
                let text = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
                for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.isEmpty { break }
                    if line.hasPrefix("tree "), let tree = ObjectID(hex: String(line.dropFirst(5))) {
                        // With prerequisites, a tree the receiver already has may be left out.
                        if index.contains(tree) {
                            pending.append(tree)
                        } else if prerequisites.isEmpty {
                            throw ProvisionError(.invalidInput, "not a valid git bundle: the tree of commit \(id.short) is not in its pack")
                        }
                    } else if line.hasPrefix("parent "), let parent = ObjectID(hex: String(line.dropFirst(7))) {
                        guard index.contains(parent) || prerequisites.contains(parent) else {
                            throw ProvisionError(
                                .invalidInput, "not a valid git bundle: commit \(id.short) has a parent (\(parent.short)) that is neither in it nor a prerequisite")
                        }
                        pending.append(parent)
                    }
                }
            case GIT_OBJECT_TREE:
                guard prerequisites.isEmpty else { continue }
                // Entries: "<mode> <name>\0<20-byte id>".
                var position = body.startIndex
                while position < body.endIndex {
                    guard let nul = body[position...].firstIndex(of: 0), nul + 21 <= body.endIndex else {
                        throw ProvisionError(.invalidInput, "not a valid git bundle: tree \(id.short) is malformed")
                    }
                    let mode = String(decoding: body[position..<nul].prefix { $0 != 0x20 }, as: UTF8.self)
                    var raw = git_oid()
                    withUnsafeMutableBytes(of: &raw.id) { target in
                        body[(nul + 1)..<(nul + 21)].withUnsafeBytes { target.copyMemory(from: $0) }
                    }
                    let child = ObjectID(raw)
                    // Submodule entries (160000) name commits of other repositories.
                    if mode != "160000" {
                        guard index.contains(child) else {
                            throw ProvisionError(.invalidInput, "not a valid git bundle: object \(child.short) is referenced but not in its pack")
                        }
                        if mode == "40000" { pending.append(child) }
                    }
                    position = nul + 21
                }
            default:
                continue
            }
        }
        return Summary(
            references: header.references, prerequisites: header.prerequisites, objects: Int(progress.total_objects), commits: commits)
    }
}
