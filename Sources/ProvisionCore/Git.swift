import CGit2
import Foundation

/// A git object id, value-typed so it can cross into run records and JSON.
struct ObjectID: Hashable, Sendable, CustomStringConvertible {
    var raw: git_oid

    init(_ raw: git_oid) { self.raw = raw }

    init?(hex: String) {
        var oid = git_oid()
        guard hex.count == 40, git_oid_fromstr(&oid, hex) == 0 else { return nil }
        raw = oid
    }

    var description: String {
        var buffer = [CChar](repeating: 0, count: 41)
        var copy = raw
        git_oid_tostr(&buffer, 41, &copy)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var short: String { String(description.prefix(10)) }

    static func == (lhs: ObjectID, rhs: ObjectID) -> Bool {
        var l = lhs.raw, r = rhs.raw
        return git_oid_cmp(&l, &r) == 0
    }

    func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: raw.id) { hasher.combine(bytes: $0) }
    }
}

struct GitCommitInfo {
    var id: ObjectID
    var tree: ObjectID
    var parent: ObjectID?
    var message: String
    var time: Date
}

/// One libgit2 repository handle. libgit2 objects are not thread-safe, so a handle belongs to
/// one task at a time; the engine opens one per command.
final class GitRepository {
    private let handle: OpaquePointer
    let path: String
    static let branch = "refs/heads/main"

    private static let initialized: Bool = {
        git_libgit2_init()
        return true
    }()

    private init(handle: OpaquePointer, path: String) {
        self.handle = handle
        self.path = path
    }

    deinit { git_repository_free(handle) }

    static func lastError(_ what: String) -> ProvisionError {
        let detail = git_error_last().map { String(cString: $0.pointee.message) } ?? "unknown libgit2 error"
        return ProvisionError(.history, "\(what): \(detail)")
    }

    /// Opens the bare repository at `path`, or returns nil when there is none yet.
    static func open(_ path: String) throws -> GitRepository? {
        _ = initialized
        guard FileManager.default.fileExists(atPath: path + "/HEAD") else { return nil }
        var repo: OpaquePointer?
        guard git_repository_open_bare(&repo, path) == 0, let repo else {
            throw lastError("cannot open history at \(path)")
        }
        return GitRepository(handle: repo, path: path)
    }

    /// Creates a bare repository (mode 0700, HEAD on main) unless one exists.
    static func openOrCreate(_ path: String) throws -> GitRepository {
        if let existing = try open(path) { return existing }
        var options = git_repository_init_options()
        git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION))
        options.flags = GIT_REPOSITORY_INIT_BARE.rawValue | GIT_REPOSITORY_INIT_MKPATH.rawValue
            | GIT_REPOSITORY_INIT_NO_REINIT.rawValue
        var repo: OpaquePointer?
        let status = "main".withCString { head -> Int32 in
            options.initial_head = head
            return git_repository_init_ext(&repo, path, &options)
        }
        guard status == 0, let repo else { throw lastError("cannot create history at \(path)") }
        chmod(path, 0o700)
        return GitRepository(handle: repo, path: path)
    }

    func tip() throws -> ObjectID? {
        var oid = git_oid()
        let status = git_reference_name_to_id(&oid, handle, Self.branch)
        if status == GIT_ENOTFOUND.rawValue { return nil }
        guard status == 0 else { throw Self.lastError("cannot read \(Self.branch)") }
        return ObjectID(oid)
    }

    func commit(_ id: ObjectID) throws -> GitCommitInfo {
        var oid = id.raw
        var commit: OpaquePointer?
        guard git_commit_lookup(&commit, handle, &oid) == 0, let commit else {
            throw Self.lastError("cannot read commit \(id.short)")
        }
        defer { git_commit_free(commit) }
        let parent = git_commit_parentcount(commit) > 0 ? git_commit_parent_id(commit, 0).map { ObjectID($0.pointee) } : nil
        return GitCommitInfo(
            id: id,
            tree: ObjectID(git_commit_tree_id(commit).pointee),
            parent: parent,
            message: String(cString: git_commit_message(commit)),
            time: Date(timeIntervalSince1970: TimeInterval(git_commit_time(commit))))
    }

    /// The blob id and git file mode at `path` inside a tree, or nil when absent.
    func entry(tree: ObjectID, path: String) throws -> (id: ObjectID, mode: UInt32)? {
        var treeOID = tree.raw
        var treeObject: OpaquePointer?
        guard git_tree_lookup(&treeObject, handle, &treeOID) == 0, let treeObject else {
            throw Self.lastError("cannot read tree \(tree.short)")
        }
        defer { git_tree_free(treeObject) }
        var entry: OpaquePointer?
        let status = git_tree_entry_bypath(&entry, treeObject, path)
        if status == GIT_ENOTFOUND.rawValue { return nil }
        guard status == 0, let entry else { throw Self.lastError("cannot read \(path) in history") }
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return nil }
        return (ObjectID(git_tree_entry_id(entry).pointee), git_tree_entry_filemode(entry).rawValue)
    }

    func blob(_ id: ObjectID) throws -> Data {
        var oid = id.raw
        var blob: OpaquePointer?
        guard git_blob_lookup(&blob, handle, &oid) == 0, let blob else {
            throw Self.lastError("cannot read blob \(id.short)")
        }
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let bytes = git_blob_rawcontent(blob) else { return Data() }
        return Data(bytes: bytes, count: size)
    }

    func blob(tree: ObjectID, path: String) throws -> Data? {
        guard let entry = try entry(tree: tree, path: path) else { return nil }
        return try blob(entry.id)
    }

    func writeBlob(_ data: Data) throws -> ObjectID {
        var oid = git_oid()
        let status = data.withUnsafeBytes { git_blob_create_from_buffer(&oid, handle, $0.baseAddress, $0.count) }
        guard status == 0 else { throw Self.lastError("cannot store a file in history") }
        return ObjectID(oid)
    }

    /// The id `data` would have as a blob, without storing it: cheap drift checks.
    static func hashBlob(_ data: Data) -> ObjectID {
        _ = initialized
        var oid = git_oid()
        _ = data.withUnsafeBytes { git_odb_hash(&oid, $0.baseAddress, $0.count, GIT_OBJECT_BLOB) }
        return ObjectID(oid)
    }

    enum TreeChange {
        case upsert(path: String, blob: ObjectID, executable: Bool)
        case remove(path: String)
    }

    /// A new tree: `base` with the given files put or removed (nested trees handled by libgit2).
    func updateTree(base: ObjectID?, changes: [TreeChange]) throws -> ObjectID {
        var baseTree: OpaquePointer?
        if let base {
            var oid = base.raw
            guard git_tree_lookup(&baseTree, handle, &oid) == 0 else { throw Self.lastError("cannot read tree") }
        } else {
            var builder: OpaquePointer?
            var empty = git_oid()
            guard git_treebuilder_new(&builder, handle, nil) == 0 else { throw Self.lastError("cannot build tree") }
            defer { git_treebuilder_free(builder) }
            guard git_treebuilder_write(&empty, builder) == 0, git_tree_lookup(&baseTree, handle, &empty) == 0 else {
                throw Self.lastError("cannot build tree")
            }
        }
        defer { git_tree_free(baseTree) }
        var applicable: [TreeChange] = []
        for change in changes {
            if case .remove(let path) = change, try base.flatMap({ try entry(tree: $0, path: path) }) == nil { continue }
            applicable.append(change)
        }
        var paths: [UnsafeMutablePointer<CChar>] = []
        defer { paths.forEach { free($0) } }
        var updates: [git_tree_update] = []
        for change in applicable {
            var update = git_tree_update()
            switch change {
            case .upsert(let path, let blob, let executable):
                update.action = GIT_TREE_UPDATE_UPSERT
                update.id = blob.raw
                update.filemode = executable ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB
                paths.append(strdup(path))
            case .remove(let path):
                update.action = GIT_TREE_UPDATE_REMOVE
                paths.append(strdup(path))
            }
            update.path = UnsafePointer(paths.last!)
            updates.append(update)
        }
        var out = git_oid()
        guard git_tree_create_updated(&out, handle, baseTree, updates.count, &updates) == 0 else {
            throw Self.lastError("cannot write tree")
        }
        return ObjectID(out)
    }

    /// Commits `tree` on main. The ref moves only if its tip is still `parent` (compare-and-swap),
    /// so a concurrent writer can never make a commit disappear.
    func createCommit(tree: ObjectID, parent: ObjectID?, message: String, author: (name: String, email: String), time: Date)
        throws -> ObjectID
    {
        var signature: UnsafeMutablePointer<git_signature>?
        guard git_signature_new(&signature, author.name, author.email, git_time_t(time.timeIntervalSince1970), 0) == 0 else {
            throw Self.lastError("cannot create commit signature")
        }
        defer { git_signature_free(signature) }
        var treeOID = tree.raw
        var treeObject: OpaquePointer?
        guard git_tree_lookup(&treeObject, handle, &treeOID) == 0 else { throw Self.lastError("cannot read tree") }
        defer { git_tree_free(treeObject) }
        var parentObject: OpaquePointer?
        if let parent {
            var oid = parent.raw
            guard git_commit_lookup(&parentObject, handle, &oid) == 0 else { throw Self.lastError("cannot read parent") }
        }
        defer { if let parentObject { git_commit_free(parentObject) } }
        var out = git_oid()
        var parents: [OpaquePointer?] = parentObject.map { [$0] } ?? []
        let status = parents.withUnsafeMutableBufferPointer { buffer in
            git_commit_create(
                &out, handle, parent == nil ? nil : Self.branch, signature, signature, "UTF-8", message, treeObject,
                buffer.count, buffer.baseAddress)
        }
        guard status == 0 else { throw Self.lastError("cannot commit to history") }
        if parent == nil {
            var ref: OpaquePointer?
            guard git_reference_create(&ref, handle, Self.branch, &out, 0, "provision: first run") == 0 else {
                throw Self.lastError("cannot create \(Self.branch) (another run created it first?)")
            }
            git_reference_free(ref)
        }
        return ObjectID(out)
    }
}
