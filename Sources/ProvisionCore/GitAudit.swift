import CGit2
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// One file that differs between two trees.
struct TreeDelta {
    enum Status { case added, deleted, modified }
    var status: Status
    /// Tree path ("etc/default/grub").
    var path: String
    var oldID: ObjectID?
    var newID: ObjectID?
    var oldMode: UInt32
    var newMode: UInt32
}

/// A run of lines that one commit last set, as libgit2's blame reports it.
struct BlameHunk {
    var lines: Int
    var commit: ObjectID
    /// 1-based, in the blamed version.
    var finalStart: Int
    /// 1-based, in the version of the file at `commit`.
    var originStart: Int
    /// Tracked to the oldest commit considered (the root, or the given boundary).
    var boundary: Bool
}

private final class ObjectIDs {
    var ids: [git_oid] = []
}

/// The history's references, lookups, diffs, blame and the commit re-creation an export needs.
extension GitRepository {
    static func runTag(_ run: Int) -> String { "refs/tags/run/\(run)" }

    /// Plain `git log -p` and `git diff` on the history show the run record and metadata as one
    /// "Binary files differ" line instead of their JSON (they are read with `git show`).
    static let attributes = """
        # provision: the run record and metadata (.provision/) stay out of git log -p and git diff;
        # read them with git show COMMIT:.provision/run.json, or leave them out with -- . ':!.provision'
        .provision/** -diff

        """

    static func writeAttributes(_ gitDir: String) {
        let info = gitDir + "/info"
        mkdir(info, 0o700)
        _ = FileManager.default.createFile(atPath: info + "/attributes", contents: Data(attributes.utf8), attributes: [.posixPermissions: 0o600])
    }

    /// Adds `info/attributes` to a history made before it existed (atomically; under the root lock).
    func ensureAttributes() -> Bool {
        let target = path + "/info/attributes"
        if access(target, F_OK) == 0 { return false }
        mkdir(path + "/info", 0o700)
        let temporary = target + ".provision-tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(Self.attributes.utf8), attributes: [.posixPermissions: 0o600])
        else { return false }
        guard rename(temporary, target) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }

    // MARK: references

    func reference(_ name: String) throws -> ObjectID? {
        var oid = git_oid()
        let status = git_reference_name_to_id(&oid, handle, name)
        if status == GIT_ENOTFOUND.rawValue || status == GIT_EINVALIDSPEC.rawValue { return nil }
        guard status == 0 else { throw Self.lastError("cannot read \(name)") }
        return ObjectID(oid)
    }

    /// Points `name` at `id` (durable: libgit2 syncs refs when fsync is on).
    func setReference(_ name: String, to id: ObjectID, message: String) throws {
        var oid = id.raw
        var ref: OpaquePointer?
        guard git_reference_create(&ref, handle, name, &oid, 1, message) == 0 else { throw Self.lastError("cannot write \(name)") }
        git_reference_free(ref)
    }

    /// Every reference matching `glob` ("refs/tags/run/*") with the object it names.
    func references(_ glob: String) throws -> [(name: String, id: ObjectID)] {
        var iterator: OpaquePointer?
        guard git_reference_iterator_glob_new(&iterator, handle, glob) == 0, let iterator else {
            throw Self.lastError("cannot list \(glob)")
        }
        defer { git_reference_iterator_free(iterator) }
        var names: [String] = []
        var name: UnsafePointer<CChar>?
        while git_reference_next_name(&name, iterator) == 0, let name { names.append(String(cString: name)) }
        return try names.compactMap { name in try reference(name).map { (name, $0) } }
    }

    /// Packs every loose reference into `packed-refs` (one file instead of one per run tag).
    func packReferences() throws {
        var refdb: OpaquePointer?
        guard git_repository_refdb(&refdb, handle) == 0, let refdb else { throw Self.lastError("cannot open the reference database") }
        defer { git_refdb_free(refdb) }
        guard git_refdb_compress(refdb) == 0 else { throw Self.lastError("cannot pack references") }
    }

    /// The commit a hex prefix (4 to 40 digits) names; nil when none does.
    func commit(prefix: String) throws -> ObjectID? {
        let hex = prefix.lowercased()
        guard (4...40).contains(hex.count), hex.allSatisfy({ $0.isHexDigit }) else { return nil }
        var oid = git_oid()
        guard git_oid_fromstrn(&oid, hex, hex.utf8.count) == 0 else { return nil }
        var object: OpaquePointer?
        let status = git_object_lookup_prefix(&object, handle, &oid, hex.utf8.count, GIT_OBJECT_COMMIT)
        if status == GIT_ENOTFOUND.rawValue { return nil }
        if status == GIT_EAMBIGUOUS.rawValue {
            throw ProvisionError(.invalidInput, "commit id \(prefix) is ambiguous in the history; give more digits")
        }
        guard status == 0, let object else { return nil }
        defer { git_object_free(object) }
        return ObjectID(git_object_id(object).pointee)
    }

    /// An integer from the history's git configuration (and the global ones, as git reads them).
    func configInt(_ name: String) -> Int? {
        var config: OpaquePointer?
        guard git_repository_config_snapshot(&config, handle) == 0, let config else { return nil }
        defer { git_config_free(config) }
        var value: Int64 = 0
        guard git_config_get_int64(&value, config, name) == 0 else { return nil }
        return Int(value)
    }

    // MARK: diff and blame

    private func lookupTree(_ id: ObjectID) throws -> OpaquePointer {
        var oid = id.raw
        var tree: OpaquePointer?
        guard git_tree_lookup(&tree, handle, &oid) == 0, let tree else { throw Self.lastError("cannot read tree \(id.short)") }
        return tree
    }

    /// The files that differ between two trees (nil: the empty tree), limited to git pathspecs.
    func diffTrees(_ old: ObjectID?, _ new: ObjectID?, paths: [String]) throws -> [TreeDelta] {
        let oldTree = try old.map(lookupTree)
        defer { if let oldTree { git_tree_free(oldTree) } }
        let newTree = try new.map(lookupTree)
        defer { if let newTree { git_tree_free(newTree) } }
        var options = git_diff_options()
        git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION))
        var strings: [UnsafeMutablePointer<CChar>?] = paths.map { strdup($0) }
        defer { strings.forEach { free($0) } }
        var diff: OpaquePointer?
        let status = strings.withUnsafeMutableBufferPointer { buffer -> Int32 in
            options.pathspec = git_strarray(strings: buffer.baseAddress, count: buffer.count)
            return git_diff_tree_to_tree(&diff, handle, oldTree, newTree, &options)
        }
        guard status == 0, let diff else { throw Self.lastError("cannot compare trees") }
        defer { git_diff_free(diff) }
        var deltas: [TreeDelta] = []
        for index in 0..<git_diff_num_deltas(diff) {
            guard let delta = git_diff_get_delta(diff, index)?.pointee else { continue }
            let kind: TreeDelta.Status
            switch delta.status {
            case GIT_DELTA_ADDED: kind = .added
            case GIT_DELTA_DELETED: kind = .deleted
            default: kind = .modified
            }
            let oldID = ObjectID(delta.old_file.id), newID = ObjectID(delta.new_file.id)
            deltas.append(
                TreeDelta(
                    status: kind, path: String(cString: delta.new_file.path ?? delta.old_file.path),
                    oldID: kind == .added ? nil : oldID, newID: kind == .deleted ? nil : newID,
                    oldMode: UInt32(delta.old_file.mode), newMode: UInt32(delta.new_file.mode)))
        }
        return deltas
    }

    /// Whether tree path `path` matches any of the git pathspecs (none: everything does).
    static func pathspecMatches(_ specs: [String], _ path: String) -> Bool {
        guard !specs.isEmpty else { return true }
        initialize()
        var strings: [UnsafeMutablePointer<CChar>?] = specs.map { strdup($0) }
        defer { strings.forEach { free($0) } }
        return strings.withUnsafeMutableBufferPointer { buffer -> Bool in
            var array = git_strarray(strings: buffer.baseAddress, count: buffer.count)
            var spec: OpaquePointer?
            guard git_pathspec_new(&spec, &array) == 0, let spec else { return false }
            defer { git_pathspec_free(spec) }
            return git_pathspec_matches_path(spec, 0, path) == 1
        }
    }

    /// libgit2's blame of tree path `path` at `newest`, following first parents, stopping at
    /// `oldest` when given (lines older than it are reported as its, with `boundary`).
    func blame(path: String, newest: ObjectID, oldest: ObjectID?) throws -> [BlameHunk] {
        var options = git_blame_options()
        git_blame_options_init(&options, UInt32(GIT_BLAME_OPTIONS_VERSION))
        options.flags = GIT_BLAME_FIRST_PARENT.rawValue
        options.newest_commit = newest.raw
        if let oldest { options.oldest_commit = oldest.raw }
        var blame: OpaquePointer?
        guard git_blame_file(&blame, handle, path, &options) == 0, let blame else { throw Self.lastError("cannot blame \(path)") }
        defer { git_blame_free(blame) }
        var hunks: [BlameHunk] = []
        for index in 0..<git_blame_get_hunk_count(blame) {
            guard let hunk = git_blame_get_hunk_byindex(blame, index)?.pointee else { continue }
            hunks.append(
                BlameHunk(
                    lines: Int(hunk.lines_in_hunk), commit: ObjectID(hunk.final_commit_id), finalStart: Int(hunk.final_start_line_number),
                    originStart: Int(hunk.orig_start_line_number), boundary: hunk.boundary != 0))
        }
        return hunks
    }

    // MARK: a scratch copy for exports

    /// A second handle on the same history whose new objects stay in memory (libgit2's mempack
    /// backend, consulted first): what an export rewrites never reaches the history's disk.
    static func scratch(_ path: String) throws -> GitRepository {
        initialize()
        var repo: OpaquePointer?
        guard git_repository_open_bare(&repo, path) == 0, let repo else { throw lastError("cannot open history at \(path)") }
        let scratch = GitRepository(wrapping: repo, path: path)
        var odb: OpaquePointer?
        guard git_repository_odb(&odb, repo) == 0, let odb else { throw lastError("cannot open the object database") }
        defer { git_odb_free(odb) }
        var backend: OpaquePointer?
        guard git_mempack_new(&backend) == 0, let backend, git_odb_add_backend(odb, backend, 1000) == 0 else {
            throw lastError("cannot make an in-memory object store")
        }
        return scratch
    }

    /// `id` made again on `tree` and `parent`, with its author, committer, encoding and message
    /// byte for byte (so an unchanged commit gets its own id back). No reference moves.
    func recreateCommit(_ id: ObjectID, tree: ObjectID, parent: ObjectID?) throws -> ObjectID {
        var oid = id.raw
        var commit: OpaquePointer?
        guard git_commit_lookup(&commit, handle, &oid) == 0, let commit else { throw Self.lastError("cannot read commit \(id.short)") }
        defer { git_commit_free(commit) }
        let treeObject = try lookupTree(tree)
        defer { git_tree_free(treeObject) }
        var parentObject: OpaquePointer?
        if let parent {
            var parentOID = parent.raw
            guard git_commit_lookup(&parentObject, handle, &parentOID) == 0 else { throw Self.lastError("cannot read commit \(parent.short)") }
        }
        defer { if let parentObject { git_commit_free(parentObject) } }
        var parents: [OpaquePointer?] = parentObject.map { [$0] } ?? []
        var out = git_oid()
        let status = parents.withUnsafeMutableBufferPointer { buffer in
            git_commit_create(
                &out, handle, nil, git_commit_author(commit), git_commit_committer(commit), git_commit_message_encoding(commit),
                git_commit_message_raw(commit), treeObject, buffer.count, buffer.baseAddress)
        }
        guard status == 0 else { throw Self.lastError("cannot re-create commit \(id.short)") }
        return ObjectID(out)
    }

    /// A pack (git's format, version 2, with its SHA-1 trailer) of the commits reachable from
    /// `tips` but not from `hidden`, with their trees and blobs.
    func packData(tips: [ObjectID], hidden: [ObjectID]) throws -> Data {
        var walk: OpaquePointer?
        guard git_revwalk_new(&walk, handle) == 0, let walk else { throw Self.lastError("cannot walk history") }
        defer { git_revwalk_free(walk) }
        for tip in tips {
            var oid = tip.raw
            guard git_revwalk_push(walk, &oid) == 0 else { throw Self.lastError("cannot walk from \(tip.short)") }
        }
        for id in hidden {
            var oid = id.raw
            guard git_revwalk_hide(walk, &oid) == 0 else { throw Self.lastError("cannot walk to \(id.short)") }
        }
        var builder: OpaquePointer?
        guard git_packbuilder_new(&builder, handle) == 0, let builder else { throw Self.lastError("cannot start a pack") }
        defer { git_packbuilder_free(builder) }
        guard git_packbuilder_insert_walk(builder, walk) == 0 else { throw Self.lastError("cannot collect the objects to pack") }
        var buffer = git_buf()
        guard git_packbuilder_write_buf(&buffer, builder) == 0 else { throw Self.lastError("cannot write the pack") }
        defer { git_buf_dispose(&buffer) }
        guard let pointer = buffer.ptr else { return Data() }
        return Data(bytes: pointer, count: buffer.size)
    }

    /// Every object id in the object database (loose and packed).
    func allObjects() throws -> [ObjectID] {
        var odb: OpaquePointer?
        guard git_repository_odb(&odb, handle) == 0, let odb else { throw Self.lastError("cannot open the object database") }
        defer { git_odb_free(odb) }
        return try Self.objects(in: odb)
    }

    static func objects(in odb: OpaquePointer) throws -> [ObjectID] {
        let found = ObjectIDs()
        let callback: git_odb_foreach_cb = { oid, payload in
            guard let oid, let payload else { return 0 }
            Unmanaged<ObjectIDs>.fromOpaque(payload).takeUnretainedValue().ids.append(oid.pointee)
            return 0
        }
        guard git_odb_foreach(odb, callback, Unmanaged.passUnretained(found).toOpaque()) == 0 else {
            throw lastError("cannot list the objects")
        }
        return found.ids.map(ObjectID.init)
    }
}

/// The objects of one pack, looked up through its index alone.
final class PackIndex {
    private let odb: OpaquePointer

    init(index: String) throws {
        GitRepository.initialize()
        var odb: OpaquePointer?
        var backend: OpaquePointer?
        guard git_odb_new(&odb) == 0, let odb else { throw GitRepository.lastError("cannot open \(index)") }
        guard git_odb_backend_one_pack(&backend, index) == 0, let backend, git_odb_add_backend(odb, backend, 1) == 0 else {
            git_odb_free(odb)
            throw GitRepository.lastError("cannot open \(index)")
        }
        self.odb = odb
    }

    deinit { git_odb_free(odb) }

    func contains(_ id: ObjectID) -> Bool {
        var oid = id.raw
        return git_odb_exists(odb, &oid) == 1
    }

    func objects() throws -> [ObjectID] { try GitRepository.objects(in: odb) }

    /// The type of an object, reading its header only.
    func type(_ id: ObjectID) -> git_object_t? {
        var oid = id.raw
        var size = 0
        var type = GIT_OBJECT_INVALID
        return git_odb_read_header(&size, &type, odb, &oid) == 0 ? type : nil
    }

    /// An object's raw content (bounded), nil when absent.
    func read(_ id: ObjectID, limit: Int) -> (type: git_object_t, data: Data)? {
        var oid = id.raw
        var size = 0
        var type = GIT_OBJECT_INVALID
        guard git_odb_read_header(&size, &type, odb, &oid) == 0, size <= limit else { return nil }
        var object: OpaquePointer?
        guard git_odb_read(&object, odb, &oid) == 0, let object else { return nil }
        defer { git_odb_object_free(object) }
        let count = git_odb_object_size(object)
        guard count > 0, let bytes = git_odb_object_data(object) else { return (git_odb_object_type(object), Data()) }
        return (git_odb_object_type(object), Data(bytes: bytes, count: count))
    }
}
