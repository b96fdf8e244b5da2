import CGit2
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// What packing the history did.
public struct PackReport: Sendable, Codable {
    /// A full repack (everything into one pack, older packs dropped) or only the loose objects.
    public var full: Bool
    public var looseBefore: Int
    public var looseAfter: Int
    public var packsBefore: Int
    public var packsAfter: Int
    /// Objects written into the new pack.
    public var packedObjects: Int
    /// Disk use of the history directory (allocated blocks), before and after.
    public var bytesBefore: Int
    public var bytesAfter: Int
    /// Loose references (one per run tag) moved into packed-refs.
    public var looseRefsBefore: Int
    public var looseRefsAfter: Int
}

/// Packing the history, as `git gc` does, with libgit2's pack builder. Nothing is ever lost: the
/// new pack and its index are written and synced first, and a loose object (or an older pack) is
/// removed only once the new pack's index is read back and holds it. Unreachable objects (the
/// pre-state of a first run killed before its branch existed, say) are packed too, not pruned:
/// the damaged-history repair hint looks for them.
extension GitRepository {
    /// git's `gc.auto` and `gc.autoPackLimit` defaults; the history's git config may change them
    /// (`git --git-dir HISTORY config gc.auto 0` turns automatic packing off).
    static let defaultAutoThreshold = 6700
    static let defaultPackLimit = 50

    var objectsPath: String { path + "/objects" }

    /// Loose object files: `objects/XX/<38 hex digits>`.
    func looseObjects() -> [(id: ObjectID, file: String)] {
        var found: [(ObjectID, String)] = []
        let hex = Array("0123456789abcdef")
        for high in hex {
            for low in hex {
                let directory = "\(high)\(low)"
                for name in (try? FileManager.default.contentsOfDirectory(atPath: objectsPath + "/" + directory)) ?? []
                where name.count == 38 {
                    if let id = ObjectID(hex: directory + name) { found.append((id, objectsPath + "/" + directory + "/" + name)) }
                }
            }
        }
        return found
    }

    /// Packs (base paths without extension) that have both their .pack and .idx.
    func packs() -> [String] {
        let directory = objectsPath + "/pack"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("pack-") && $0.hasSuffix(".idx") }.map { directory + "/" + String($0.dropLast(4)) }
            .filter { access($0 + ".pack", F_OK) == 0 }.sorted()
    }

    /// Blocks allocated under the history directory, in bytes (what `du` says).
    func diskUsage() -> Int {
        var total = 0
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            var info = stat()
            if lstat(path + "/" + relative, &info) == 0 { total += Int(info.st_blocks) * 512 }
        }
        return total
    }

    func looseReferenceCount() -> Int {
        var count = 0
        let enumerator = FileManager.default.enumerator(atPath: path + "/refs")
        while let relative = enumerator?.nextObject() as? String {
            var info = stat()
            if lstat(path + "/refs/" + relative, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG { count += 1 }
        }
        return count
    }

    /// Whether the loose objects passed `gc.auto`, estimated as git does (the objects in
    /// `objects/17` times 256; a small threshold is counted exactly), or the packs passed
    /// `gc.autoPackLimit` (then everything is repacked into one).
    func autoPackDue() -> (due: Bool, full: Bool) {
        let threshold = configInt("gc.auto") ?? Self.defaultAutoThreshold
        guard threshold > 0 else { return (false, false) }
        let limit = configInt("gc.autoPackLimit") ?? Self.defaultPackLimit
        let loose: Bool
        if threshold < 256 * 8 {
            loose = looseObjects().count > threshold
        } else {
            let sample = (try? FileManager.default.contentsOfDirectory(atPath: objectsPath + "/17"))?.filter { $0.count == 38 }.count ?? 0
            loose = sample > (threshold + 255) / 256
        }
        let many = limit > 0 && packs().count > limit
        return (loose || many, many)
    }

    /// Packs the loose objects into one new pack (`full`: every object of the history, so the
    /// older packs can go too), then packs the references.
    func pack(full: Bool) throws -> PackReport {
        let bytesBefore = diskUsage()
        let loose = looseObjects()
        let oldPacks = packs()
        let refsBefore = looseReferenceCount()
        var report = PackReport(
            full: full, looseBefore: loose.count, looseAfter: loose.count, packsBefore: oldPacks.count, packsAfter: oldPacks.count,
            packedObjects: 0, bytesBefore: bytesBefore, bytesAfter: bytesBefore, looseRefsBefore: refsBefore, looseRefsAfter: refsBefore)
        if !loose.isEmpty || (full && oldPacks.count > 1) {
            var builder: OpaquePointer?
            guard git_packbuilder_new(&builder, handle) == 0, let builder else { throw Self.lastError("cannot start a pack") }
            defer { git_packbuilder_free(builder) }
            if full {
                // What the refs reach first (with path names, for better deltas), then whatever else is stored.
                var walk: OpaquePointer?
                guard git_revwalk_new(&walk, handle) == 0, let walk else { throw Self.lastError("cannot walk history") }
                defer { git_revwalk_free(walk) }
                for (_, id) in try references("refs/*") {
                    var oid = id.raw
                    var object: OpaquePointer?
                    guard git_object_lookup(&object, handle, &oid, GIT_OBJECT_COMMIT) == 0 else { continue }
                    git_object_free(object)
                    guard git_revwalk_push(walk, &oid) == 0 else { throw Self.lastError("cannot walk from \(id.short)") }
                }
                guard git_packbuilder_insert_walk(builder, walk) == 0 else { throw Self.lastError("cannot collect the objects to pack") }
                for id in try allObjects() {
                    var oid = id.raw
                    guard git_packbuilder_insert(builder, &oid, nil) == 0 else { throw Self.lastError("cannot pack \(id.short)") }
                }
            } else {
                for (id, _) in loose {
                    var oid = id.raw
                    guard git_packbuilder_insert(builder, &oid, nil) == 0 else { throw Self.lastError("cannot pack \(id.short)") }
                }
            }
            report.packedObjects = git_packbuilder_object_count(builder)
            // Pack and index are written under temporary names, synced, and renamed into place.
            guard git_packbuilder_write(builder, nil, 0, nil, nil) == 0, let name = git_packbuilder_name(builder) else {
                throw Self.lastError("cannot write the pack")
            }
            let base = objectsPath + "/pack/pack-" + String(cString: name)
            Self.syncFile(base + ".pack")
            Self.syncFile(base + ".idx")
            Self.syncDirectory(objectsPath + "/pack")
            // Read back through the new index alone before anything goes.
            let index = try PackIndex(index: base + ".idx")
            var directories: Set<String> = []
            for (id, file) in loose where index.contains(id) {
                if unlink(file) == 0 { directories.insert((file as NSString).deletingLastPathComponent) }
            }
            for directory in directories { rmdir(directory) }
            if full {
                for old in oldPacks where old != base && access(old + ".keep", F_OK) != 0 {
                    let objects = try PackIndex(index: old + ".idx").objects()
                    guard objects.allSatisfy(index.contains) else { continue }
                    unlink(old + ".pack")
                    unlink(old + ".idx")
                    unlink(old + ".rev")
                }
            }
            Self.syncDirectory(objectsPath + "/pack")
        }
        try packReferences()
        report.looseAfter = looseObjects().count
        report.packsAfter = packs().count
        report.looseRefsAfter = looseReferenceCount()
        report.bytesAfter = diskUsage()
        return report
    }

    static func syncFile(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        Durability.sync(fd)
        close(fd)
    }
}
