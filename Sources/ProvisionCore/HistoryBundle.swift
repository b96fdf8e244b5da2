import Foundation

extension Engine {
    /// The history as a git bundle (branch, HEAD and every run tag, real bytes), for the fleet's
    /// central copy: the controller asks each host for this over its SSH connection and fetches it
    /// into `fleet.git`, so a host needs neither git nor anything else installed besides provision.
    /// `haves` are commits the receiver already holds: those found here become the bundle's
    /// prerequisites and only what is newer travels. Unknown or malformed ones are ignored.
    public func historyBundle(haves: [String]) throws -> Data {
        let history = try requireHistory()
        guard let tip = try history.repo.tip() else { throw ProvisionError(.notFound, "the history at \(historyPath) has no commits") }
        let tags = try history.repo.references("refs/tags/run/*")
        var prerequisites: [(id: ObjectID, subject: String)] = []
        for have in Set(haves) {
            guard let id = ObjectID(hex: have), let info = try? history.repo.commit(id) else { continue }
            prerequisites.append((id, String(info.message.prefix { $0 != "\n" })))
        }
        let references = [("HEAD", tip), (GitRepository.branch, tip)] + tags.sorted { $0.name < $1.name }
        let pack = try history.repo.packData(tips: [tip] + tags.map(\.id), hidden: prerequisites.map(\.id))
        return GitBundle.encode(references: references, prerequisites: prerequisites, pack: pack)
    }
}
