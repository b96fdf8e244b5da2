import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The whole guide (recipes/vfio-passthrough.yaml) on each of the five host snapshots: plan names
/// exactly the files of the golden set, apply writes them byte for byte (Tests/CLITests/Golden,
/// made by scripts/update-golden.sh and reviewed by eye), a second apply changes nothing, and a
/// rollback gives back the snapshot, modes and owners included.
@Suite struct RecipeGoldenTests {
    typealias Family = SnapshotFamily
    static let families = SnapshotFamily.all


    @Test(arguments: families)
    func recipeOnSnapshotMatchesGoldenFiles(_ family: Family) throws {
        let recipe = Package.path("recipes/vfio-passthrough.yaml")
        let temp = try TempRoot(copying: family.name)
        let original = try temp.fingerprint()
        let golden = try Golden.files(family.name)
        try #require(!golden.isEmpty, "golden files for \(family.name)")

        let plan = try CLI.run(["plan", recipe, "--root", temp.path, "--json"] + family.vars)
        #expect(plan.status == 0, "\(plan.stderr)")
        let planned = try #require(try CLI.json(plan.stdout)["files"] as? [[String: Any]]).compactMap { $0["path"] as? String }
        #expect(Set(planned) == Set(golden.keys), "plan lists exactly the golden files")
        #expect(try temp.fingerprint() == original, "plan writes nothing")

        let apply = try CLI.run(["apply", recipe, "--root", temp.path, "--json"] + family.vars)
        try #require(apply.status == 0, "\(apply.stderr)")
        for (path, content) in golden.sorted(by: { $0.key < $1.key }) {
            #expect(temp.read(path) == content, "\(family.name): \(path) differs from its golden file")
        }
        // New files get the modes their readers expect.
        for path in golden.keys where !original.keys.contains(String(path.dropFirst())) {
            var info = stat()
            stat(temp.real(path), &info)
            #expect(info.st_mode & 0o7777 == 0o644, "\(path) is 0644")
        }

        let again = try CLI.run(["apply", recipe, "--root", temp.path, "--json"] + family.vars)
        #expect(try CLI.json(again.stdout)["changed"] as? Int == 0, "\(family.name): a second apply changes nothing")

        let rollback = try CLI.run(["rollback", "--root", temp.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try temp.fingerprint() == original, "\(family.name): rollback gives back the snapshot, modes and owners included")
    }
}
