import Foundation
import ProvisionPluginAPI

/// What one commit in history records about itself, stored as `.provision/run.json` in its tree
/// (overwritten by each commit, so reading the tip stays O(1) however long history grows).
public struct RunRecord: Sendable, Codable {
    public enum Action: String, Sendable, Codable {
        /// A recipe run.
        case apply
        case rollback
        /// Undo of a run that was interrupted (crash, kill) between its first and last write.
        case recover
        /// Files edited by hand since history last saw them, recorded before a run touches them.
        case drift
        /// First-touch originals of files a run is about to change.
        case preState = "pre-state"
    }

    public struct FileEntry: Sendable, Codable, Hashable {
        public var path: String
        public var change: FileChange.Kind
    }

    public struct StepEntry: Sendable, Codable {
        public var id: String
        public var uses: String
        public var status: StepStatus
        public var files: [String]
    }

    public struct HandlerEntry: Sendable, Codable {
        public enum Status: String, Sendable, Codable { case ran, failed, skipped }
        public var argv: [String]
        public var notifiedBy: [String]
        public var needsMounts: [String]?
        public var onHost: Bool?
        public var rewrites: [String]?
        public var status: Status
        /// Why it was skipped, or the tail of its output when it failed.
        public var detail: String?

        /// The command again, for a rollback or a retry.
        public var action: HandlerAction {
            HandlerAction(argv: argv, notifiedBy: notifiedBy, needsMounts: needsMounts, onHost: onHost, rewrites: rewrites)
        }
    }

    public var run: Int
    public var action: Action
    public var summary: String
    public var recipe: String?
    public var recipeName: String?
    public var vars: [String: Value]?
    public var facts: Value?
    /// What the steps exported (facts.gpu, facts.initrd, …): what `verify` checks a booted host against.
    public var exports: Value?
    public var steps: [StepEntry]?
    public var files: [FileEntry]
    public var createdDirectories: [String]
    /// Every handler the run's steps declared, with whether it ran.
    public var handlers: [HandlerEntry]
    public var notices: [Notice]
    /// Runs this rollback (or recovery) undid.
    public var undid: [Int]?
    /// For a recovery: what the interrupted run was (apply or rollback).
    public var undoneAction: Action?
    /// Handlers that failed (in this run or before) and have not run successfully since: the next
    /// apply runs them again, however many runs, recoveries or crashes lie between.
    public var pendingHandlers: [HandlerAction]?
    public var host: String
    /// Who ran it: the invoking user (SUDO_USER, else the login uid's name, else the effective user).
    public var user: String
    /// The invoking user's uid, when known.
    public var uid: UInt32?
    /// Where `user` came from: "sudo", "loginuid" or "effective".
    public var userSource: String?
    /// The user the process ran as (root, for a change to /etc).
    public var effectiveUser: String?
    public var version: String
    public var startedAt: Date
    public var durationMs: Int?
    /// SHA-256 of the recipe file's bytes as the run read them.
    public var recipeSHA256: String?
    /// The applies in effect after this commit (not undone by a rollback or recovery), newest first,
    /// at most 32: `lastApplied` reads the tip instead of walking history. `appliesInEffectComplete`
    /// false means older ones may lie beyond the list.
    public var appliesInEffect: [Int]?
    public var appliesInEffectComplete: Bool?

    public var changedFiles: [String] { files.map(\.path) }
}

/// Metadata git cannot keep: owner and group (by id and name), full mode, and absent markers.
struct TrackedFile: Sendable, Codable, Hashable {
    var type: String  // "file" or "absent"
    var mode: String?
    var uid: UInt32?
    var gid: UInt32?
    var user: String?
    var group: String?

    static let absent = TrackedFile(type: "absent")

    var meta: FileMeta? {
        guard type == "file", let mode = mode.flatMap(FileMeta.parseMode), let uid, let gid else { return nil }
        return FileMeta(mode: mode, uid: uid, gid: gid)
    }
}

public let provisionVersion = "0.1.0"
