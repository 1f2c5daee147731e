import Foundation
import LedgerCore
import LedgerStore
import Testing

/// The shard catalog on disk: written once, read back exactly, rewritten only when asked, refused when it is not
/// a catalog.
@Suite("catalog file")
struct CatalogFileTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString)/catalog.sqlite")
            .path
    }

    static let map = try! ShardMap.parse("D1, C1, 1-1000\nD2, C2, 1001-2000\n", source: "shards.csv")

    @Test func writtenThenReadBack() throws {
        let path = Self.temporaryPath()
        guard case .created(let written) = try CatalogFile.write(Self.map, to: path) else {
            Issue.record("expected a new catalog")
            return
        }
        #expect(written.version == 1)
        let read = try CatalogFile.read(path: path)
        #expect(read.version == 1)
        #expect(read.shards.shards.map(\.cluster) == ["C1", "C2"])
        #expect(read.cluster(of: AccountID(1500)) == "C2")
        #expect(read.cluster(of: AccountID(2001)) == nil)
        #expect(read.ranges(of: "C1") == [AccountID(1)...AccountID(1000)])
    }

    @Test func writingTheSameMapAgainChangesNothing() throws {
        let path = Self.temporaryPath()
        _ = try CatalogFile.write(Self.map, to: path)
        #expect(try CatalogFile.write(Self.map, to: path) == .unchanged(try CatalogFile.read(path: path)))
        #expect(try CatalogFile.read(path: path).version == 1)
    }

    @Test func otherRangesAreRefusedUnlessReplaced() throws {
        let path = Self.temporaryPath()
        _ = try CatalogFile.write(Self.map, to: path)
        let other = try ShardMap.parse("D1, C1, 1-500\nD2, C2, 501-2000\n", source: "other.csv")
        #expect(throws: StoreError.self) { try CatalogFile.write(other, to: path) }
        #expect(try CatalogFile.read(path: path).cluster(of: AccountID(700)) == "C1", "the refused write changed it")
        guard case .replaced(let replaced) = try CatalogFile.write(other, to: path, replace: true) else {
            Issue.record("expected the catalog to be replaced")
            return
        }
        #expect(replaced.version == 2)
        #expect(try CatalogFile.read(path: path).cluster(of: AccountID(700)) == "C2")
    }

    @Test func aMissingFileSaysHowToBuildIt() {
        let path = Self.temporaryPath()
        #expect(
            throws: StoreError(
                path: path, message: "no shard catalog here; build it with `shardctl shard tests-data/shards.csv`")
        ) {
            try CatalogFile.read(path: path)
        }
    }

    @Test func aFileThatIsNotACatalogIsRefused() throws {
        let path = Self.temporaryPath()
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("this is not SQLite".utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try CatalogFile.read(path: path)
            Issue.record("a text file was read as a catalog")
        } catch {
            #expect(error.path == path)
            #expect(error.message.contains("not a SQLite database"))
        }
    }

    @Test func overridesRouteMovedAccounts() {
        var catalog = Catalog(version: 1, shards: Self.map)
        catalog.move(AccountID(5), to: "C2")
        #expect(catalog.cluster(of: AccountID(5)) == "C2")
        #expect(catalog.version == 2)
        catalog.move(AccountID(5), to: "C2")
        #expect(catalog.version == 2, "a move to the current owner is no change")
    }

    @Test("a cluster marked draining, then removed once it owns nothing")
    func drainingAndRemoval() throws {
        let path = Self.temporaryPath()
        _ = try CatalogFile.write(Self.map, to: path)
        #expect(try CatalogFile.read(path: path).draining.isEmpty)
        let marked = try CatalogFile.markDraining("C2", at: path)
        #expect(marked.draining == ["C2"] && marked.version == 2)
        #expect(try CatalogFile.markDraining("C2", at: path).version == 2)
        #expect(try CatalogFile.read(path: path) == marked)
        // Refused while C2 owns accounts; nothing changes.
        #expect(throws: StoreError.self) { try CatalogFile.remove(cluster: "C2", at: path) }
        #expect(try CatalogFile.read(path: path) == marked)
        let moved = Dictionary(uniqueKeysWithValues: (1001...2000).map { (AccountID(UInt64($0)), "C1") })
        _ = try CatalogFile.recordMoves(moved, at: path)
        let removed = try CatalogFile.remove(cluster: "C2", at: path)
        #expect(removed.clusters == ["C1"] && removed.draining.isEmpty && removed.version == 4)
        #expect(removed.accountCount(of: "C1") == 2000)
        #expect(removed.cluster(of: AccountID(1500)) == "C1")
        #expect(try CatalogFile.read(path: path) == removed)
        // Again: nothing left to remove.
        #expect(try CatalogFile.remove(cluster: "C2", at: path).version == 4)
    }
}
