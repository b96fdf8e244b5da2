import CGit2
import CSystem
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

private final class OIDList {
    var ids: [git_oid] = []
}

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
    var author: String = ""
}

/// One libgit2 repository handle. libgit2 objects are not thread-safe, so a handle belongs to
/// one task at a time; the engine opens one per command.
final class GitRepository {
    let handle: OpaquePointer
    let path: String
    static let branch = "refs/heads/main"

    /// libgit2 writes objects and refs without fsync unless told: a power cut then leaves empty
    /// object files and a history that cannot be read. Provision's promise needs them durable.
    private static let initialized: Bool = {
        git_libgit2_init()
        _ = provision_git_enable_fsync(Durability.enabled ? 1 : 0)
        return true
    }()

    /// For libgit2 users that need no repository (buffer diffs).
    static func initialize() { _ = initialized }

    init(wrapping handle: OpaquePointer, path: String) {
        self.handle = handle
        self.path = path
    }

    deinit { git_repository_free(handle) }

    static func lastError(_ what: String) -> ProvisionError {
        let detail = git_error_last().map { String(cString: $0.pointee.message) } ?? "unknown libgit2 error"
        return ProvisionError(.history, "\(what): \(detail)")
    }

    static func damaged(_ path: String, _ what: String, repair: String) -> ProvisionError {
        ProvisionError(.history, "the history at \(path) is damaged: \(what); nothing was changed. \(repair)")
    }

    /// Opens the bare repository at `path`, or returns nil when there is none yet (no directory,
    /// or an empty one). A directory that holds anything else must be a whole history: a missing
    /// HEAD or branch is damage to report, never a reason to start a new history over the old one.
    /// `repairs` is told about a mode that let other users read the history (set back to 0700).
    static func open(_ path: String, repairs: (String) -> Void = { _ in }) throws -> GitRepository? {
        _ = initialized
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw ProvisionError.io("cannot open history", path)
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw damaged(path, "it is \(HostRoot.describeType(info.st_mode)), not a directory", repair: "Move it away, or pass --history DIR.")
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        if entries.isEmpty { return nil }
        if info.st_mode & 0o077 != 0 {
            chmod(path, 0o700)
            repairs(
                "the history at \(path) was mode \(String(info.st_mode & 0o777, radix: 8)), readable by other users "
                    + "(it holds copies of /etc/shadow); set it back to 0700")
        }
        guard entries.contains("HEAD") else {
            throw damaged(path, "HEAD is missing", repair: "Restore it with: echo 'ref: refs/heads/main' > \(path)/HEAD")
        }
        var repo: OpaquePointer?
        guard git_repository_open_bare(&repo, path) == 0, let repo else {
            throw damaged(path, lastError("it cannot be opened").message, repair: "Run git --git-dir \(path) fsck to see what is lost.")
        }
        let opened = GitRepository(wrapping: repo, path: path)
        // Without the branch, commits that record a run mean the branch was lost. Only pre-state or
        // drift commits mean a first run was killed before it created the branch, before any host
        // file changed: unreachable leftovers, not damage.
        if try opened.tip() == nil, let newest = opened.newestCommit(), newest.recordsRuns {
            throw damaged(
                path, "\(branch) is missing but the history holds commits (the newest: \(newest.id.short))",
                repair: "Restore the branch with: git --git-dir \(path) update-ref \(branch) \(newest.id.description)")
        }
        return opened
    }

    /// Creates a bare repository (HEAD on main) private from the first byte: it is made in a 0700
    /// temporary directory beside `path` and renamed into place, so no crash can leave a history
    /// that other users can read.
    static func create(_ path: String) throws -> GitRepository {
        _ = initialized
        let parent = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        var template = Array("\(parent)/.\(name).provision-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ProvisionError.io("cannot create the history in", parent)
        }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var placed = false
        defer { if !placed { try? FileManager.default.removeItem(atPath: temporary) } }
        var options = git_repository_init_options()
        git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION))
        options.flags = GIT_REPOSITORY_INIT_BARE.rawValue | GIT_REPOSITORY_INIT_NO_REINIT.rawValue
        var repo: OpaquePointer?
        let status = "main".withCString { head -> Int32 in
            options.initial_head = head
            return git_repository_init_ext(&repo, temporary, &options)
        }
        guard status == 0, let repo else { throw lastError("cannot create history at \(path)") }
        git_repository_free(repo)
        writeAttributes(temporary)
        chmod(temporary, 0o700)
        syncDirectory(temporary)
        guard rename(temporary, path) == 0 else {
            if errno == EEXIST || errno == ENOTEMPTY, let existing = try open(path) { return existing }
            throw ProvisionError.io("cannot create history at", path)
        }
        placed = true
        syncDirectory(parent)
        guard let created = try open(path) else { throw ProvisionError(.history, "the history at \(path) vanished after creation") }
        return created
    }

    static func syncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        Durability.sync(fd)
        close(fd)
    }

    /// Lock and temporary files a killed git write leaves behind (`HEAD.lock`, `config.lock`,
    /// `refs/heads/main.lock`, `objects/**/tmp_*`): every later write would fail on them. Only
    /// called under the root lock, when no other provision run can be writing; returns what it removed.
    static func removeStaleFiles(_ path: String) -> [String] {
        let manager = FileManager.default
        var candidates: [String] = []
        // Top-level lock files, every ref's lock, and libgit2's temporary objects and packs (it
        // writes them in objects/ and objects/pack/, never deeper): a bounded look, not a walk of
        // every object.
        for name in (try? manager.contentsOfDirectory(atPath: path)) ?? [] where name.hasSuffix(".lock") { candidates.append(name) }
        // refs/tags/run holds one tag per run until history is packed: not walked here. The one
        // tag a killed run can have been writing is its own (Engine.openHistory removes its lock).
        if let refs = manager.enumerator(atPath: path + "/refs") {
            while let relative = refs.nextObject() as? String {
                if relative == "tags/run" {
                    refs.skipDescendants()
                    continue
                }
                if relative.hasSuffix(".lock") { candidates.append("refs/" + relative) }
            }
        }
        // The pack builder writes `pack_git2_*` and `*.idx.lock` before renaming them into place.
        for directory in ["objects", "objects/pack"] {
            for name in (try? manager.contentsOfDirectory(atPath: path + "/" + directory)) ?? []
            where name.hasPrefix("tmp_") || (directory == "objects/pack" && (name.hasPrefix("pack_git2_") || name.hasSuffix(".lock"))) {
                candidates.append(directory + "/" + name)
            }
        }
        var removed: [String] = []
        for relative in candidates {
            let full = path + "/" + relative
            var info = stat()
            guard lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if unlink(full) == 0 { removed.append(full) }
        }
        return removed
    }

    /// The newest commit in the object database that no other commit builds on (for the repair
    /// hint when the branch is lost), and whether any commit records a run; nil when there is none.
    func newestCommit() -> (id: ObjectID, recordsRuns: Bool)? {
        var odb: OpaquePointer?
        guard git_repository_odb(&odb, handle) == 0, let odb else { return nil }
        defer { git_odb_free(odb) }
        let found = OIDList()
        let callback: git_odb_foreach_cb = { oid, payload in
            guard let oid, let payload else { return 0 }
            Unmanaged<OIDList>.fromOpaque(payload).takeUnretainedValue().ids.append(oid.pointee)
            return 0
        }
        _ = git_odb_foreach(odb, callback, Unmanaged.passUnretained(found).toOpaque())
        var commits: [(id: ObjectID, time: Int64)] = []
        var parents: Set<ObjectID> = []
        var recordsRuns = false
        for var oid in found.ids {
            var size = 0
            var type = GIT_OBJECT_INVALID
            guard git_odb_read_header(&size, &type, odb, &oid) == 0, type == GIT_OBJECT_COMMIT else { continue }
            var commit: OpaquePointer?
            guard git_commit_lookup(&commit, handle, &oid) == 0, let commit else { continue }
            commits.append((ObjectID(oid), Int64(git_commit_time(commit))))
            let message = String(cString: git_commit_message(commit))
            if ["apply", "rollback", "recover"].contains(where: { message.contains("\nProvision-Action: \($0)\n") }) { recordsRuns = true }
            for index in 0..<git_commit_parentcount(commit) {
                if let parent = git_commit_parent_id(commit, index) { parents.insert(ObjectID(parent.pointee)) }
            }
            git_commit_free(commit)
        }
        // The newest commit no other commit builds on: the lost tip.
        guard let newest = commits.filter({ !parents.contains($0.id) }).max(by: { $0.time < $1.time }) else { return nil }
        return (newest.id, recordsRuns)
    }

    /// Reads a new commit back through a fresh handle (no cache): the commit, its tree, the named
    /// files in it, and main pointing at it. Only a commit that passes is a recorded run; libgit2
    /// has been seen to report success for a commit whose object never reached a full disk.
    func verifyRecorded(_ commit: ObjectID, files: [String]) throws {
        var fresh: OpaquePointer?
        guard git_repository_open_bare(&fresh, path) == 0, let fresh else { throw Self.lastError("cannot re-open history") }
        defer { git_repository_free(fresh) }
        var tipOID = git_oid()
        guard git_reference_name_to_id(&tipOID, fresh, Self.branch) == 0 else { throw Self.lastError("cannot read \(Self.branch) back") }
        guard ObjectID(tipOID) == commit else {
            throw ProvisionError(.history, "\(Self.branch) names \(ObjectID(tipOID).short), not the commit just written (\(commit.short))")
        }
        var oid = commit.raw
        var commitObject: OpaquePointer?
        guard git_commit_lookup(&commitObject, fresh, &oid) == 0, let commitObject else { throw Self.lastError("cannot read commit \(commit.short) back") }
        defer { git_commit_free(commitObject) }
        var tree: OpaquePointer?
        guard git_commit_tree(&tree, commitObject) == 0, let tree else { throw Self.lastError("cannot read the tree of \(commit.short) back") }
        defer { git_tree_free(tree) }
        for file in files {
            var entry: OpaquePointer?
            guard git_tree_entry_bypath(&entry, tree, file) == 0, let entry else { throw Self.lastError("cannot find \(file) in \(commit.short)") }
            defer { git_tree_entry_free(entry) }
            var blob: OpaquePointer?
            guard git_blob_lookup(&blob, fresh, git_tree_entry_id(entry)) == 0 else { throw Self.lastError("cannot read \(file) of \(commit.short) back") }
            git_blob_free(blob)
        }
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
            time: Date(timeIntervalSince1970: TimeInterval(git_commit_time(commit))),
            author: git_commit_author(commit).map { String(cString: $0.pointee.name) } ?? "")
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

    /// The largest object provision reads back: files are capped at `HostRoot.maximumFileSize`, so
    /// anything larger was not written by provision (a hostile history) and is not loaded.
    static let maximumBlobSize = HostRoot.maximumFileSize + (1 << 20)

    func blob(_ id: ObjectID) throws -> Data {
        var oid = id.raw
        var odb: OpaquePointer?
        if git_repository_odb(&odb, handle) == 0, let odb {
            defer { git_odb_free(odb) }
            var size = 0
            var type = GIT_OBJECT_INVALID
            if git_odb_read_header(&size, &type, odb, &oid) == 0, size > Self.maximumBlobSize {
                throw ProvisionError(.history, "object \(id.short) is \(size) bytes, larger than anything provision records; refusing to load it")
            }
        }
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

    /// Objects written by `body` skip libgit2's per-object fsync (about 80 of an apply's 108 syncs
    /// before); the next `syncObjects()` (createCommit calls it before its branch moves) makes them
    /// durable together. Nothing may name such an object in a reference before that sync.
    func deferringObjectSyncs<T>(_ body: () throws -> T) rethrows -> T {
        guard Durability.enabled else { return try body() }
        _ = provision_git_enable_fsync(0)
        defer { _ = provision_git_enable_fsync(1) }
        return try body()
    }

    /// One syncfs(2) of the history's file system: every object written so far is durable, and so
    /// is every host file a run wrote on that file system (the engine relies on it).
    func syncObjects() throws {
        guard Durability.enabled else { return }
        let fd = Glibc.open(path + "/objects", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ProvisionError.io("cannot open", path + "/objects") }
        defer { close(fd) }
        guard provision_syncfs(fd) == 0 else { throw ProvisionError.io("cannot sync the history's objects in", path) }
    }

    /// Commits `tree` on main. The ref moves only if its tip is still `parent` (compare-and-swap),
    /// so a concurrent writer can never make a commit disappear. The commit object is made durable
    /// (with whatever objects the caller wrote in the same batch) before the branch names it.
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
        let status = deferringObjectSyncs {
            parents.withUnsafeMutableBufferPointer { buffer in
                git_commit_create(&out, handle, nil, signature, signature, "UTF-8", message, treeObject, buffer.count, buffer.baseAddress)
            }
        }
        guard status == 0 else { throw Self.lastError("cannot commit to history") }
        try syncObjects()
        var ref: OpaquePointer?
        if let parent {
            var expected = parent.raw
            let moved = git_reference_create_matching(&ref, handle, Self.branch, &out, 1, &expected, "provision: commit")
            guard moved == 0 else { throw Self.lastError("cannot move \(Self.branch) (another run moved it?)") }
        } else {
            guard git_reference_create(&ref, handle, Self.branch, &out, 0, "provision: first run") == 0 else {
                throw Self.lastError("cannot create \(Self.branch) (another run created it first?)")
            }
        }
        git_reference_free(ref)
        return ObjectID(out)
    }
}
