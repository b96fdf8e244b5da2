import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// Our unified diffs are judged by the real consumer: GNU patch must turn old into new with them.
@Suite struct DiffTests {
    static let cases: [(String, String)] = [
        ("", "a\nb\n"),
        ("a\nb\n", ""),
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("no newline", "no newline\n"),
        ("x\n", "x"),
        ((1...40).map { "line \($0)\n" }.joined(), (1...40).map { $0 % 13 == 0 ? "changed \($0)\n" : "line \($0)\n" }.joined()),
        ((1...30).map { "l\($0)\n" }.joined(), "first\n" + (1...30).filter { $0 != 15 }.map { "l\($0)\n" }.joined() + "last\n"),
        ("same\nsame\nsame\n", "same\nother\nsame\nsame\n"),
    ]

    @Test(arguments: cases.indices)
    func patchAppliesOurDiff(index: Int) throws {
        let (old, new) = Self.cases[index]
        let temp = try TempRoot()
        try temp.write("/old", old)
        let diff = Diff.unified(old: Data(old.utf8), new: Data(new.utf8), oldLabel: "a/old", newLabel: "b/old")
        try temp.write("/change.diff", diff)
        let result = try ProcessRunner.run(["patch", "-s", "-o", temp.real("/out"), temp.real("/old"), temp.real("/change.diff")])
        #expect(result.status == 0, "\(result.output)\n\(diff)")
        #expect(temp.read("/out") ?? "" == new, "\(diff)")
    }

    @Test func hunkHeadersMatchDiffU() throws {
        let old = (1...20).map { "\($0)\n" }.joined()
        let new = old.replacingOccurrences(of: "10\n", with: "ten\n")
        let diff = Diff.unified(old: Data(old.utf8), new: Data(new.utf8), oldLabel: "a", newLabel: "b")
        #expect(diff == "--- a\n+++ b\n@@ -7,7 +7,7 @@\n 7\n 8\n 9\n-10\n+ten\n 11\n 12\n 13\n")
    }

    @Test func binaryContentIsSummarised() {
        let diff = Diff.unified(old: Data([0, 1, 2]), new: Data([0, 1]), oldLabel: "a", newLabel: "b")
        #expect(diff == "Binary files a and b differ (3 -> 2 bytes)\n")
    }
}
