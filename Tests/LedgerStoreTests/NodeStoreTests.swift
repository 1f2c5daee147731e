import Foundation
import LedgerCore
import LedgerStore
import Paxos
import Testing

/// The replicas S1 (C1), S4 (C2) and S7 (C3) of node N1, as `configs/nodes` lays them out.
private let hosted = [("C1", "S1"), ("C2", "S4"), ("C3", "S7")].map {
    ReplicaStore.Identity(cluster: $0.0, replica: $0.1, minBalance: 0)
}

private func openNode(_ path: String, importing: [String]? = nil) throws(StoreError) -> [(
    ReplicaStore, ReplicaStore.Recovered
)] {
    if let importing { return try ReplicaStore.open(path: path, replicas: hosted, importing: importing) }
    return try ReplicaStore.open(path: path, replicas: hosted)
}

/// A shell per hosted replica, on its cluster's empty ledger.
private func shells() -> [Shell] {
    hosted.map { Shell(state: LedgerState(cluster: $0.cluster, minBalance: 0)) }
}

/// Opens the node's file and creates accounts 1...10 in the first slot of every store.
private func openWithAccounts(_ path: String, _ shells: inout [Shell]) throws(StoreError) -> [ReplicaStore] {
    let stores = try openNode(path).map(\.0)
    for (index, store) in stores.enumerated() {
        try store.commit(shells[index].choose([.createAccounts([AccountID(1)...AccountID(10)], balance: 10)]))
    }
    return stores
}

@Suite("Node store file")
struct NodeStoreTests {
    @Test("a node's file keeps each hosted replica's store apart, and each recovers its own")
    func eachReplicaRecoversItsOwn() async throws {
        let directory = StoreDirectory()
        let path = directory.path("N1.sqlite")
        var shells = shells()
        do {
            let stores = try openNode(path)
            for (index, (store, recovered)) in stores.enumerated() {
                #expect(recovered.durable == DurableState())
                #expect(store.path == path)
                var shell = Shell(state: LedgerState(cluster: hosted[index].cluster, minBalance: 0))
                try store.commit(shell.choose([.createAccounts([AccountID(1)...AccountID(10)], balance: 10)]))
                // Different work per replica: S1 one transfer, S4 two, S7 three, each its own way to the disk.
                let transfers = (1...(index + 1)).map { transfer(UInt64(index + 1), UInt64($0), UInt64($0 + 1), 1) }
                switch index {
                case 0: try store.commit(shell.choose(transfers))
                case 1: try await store.commitDurably([shell.choose(transfers)])
                default:
                    try store.enqueue(shell.choose(transfers))
                    try store.writeQueued()
                }
                shells[index] = shell
            }
        }
        let stores = try openNode(path)
        for (index, (store, recovered)) in stores.enumerated() {
            #expect(store.replica == hosted[index].replica)
            #expect(recovered.state == shells[index].state)
            #expect(recovered.durable == shells[index].durable)
            #expect(try store.walRecords() == shells[index].wal)
            #expect(try store.datastoreRecords() == shells[index].datastore)
            #expect(shells[index].datastore.count == index + 1)
        }
    }

    @Test("one fsynced transaction carries the lazy writes every hosted replica queued before a durable one")
    func oneDurableCommitCarriesEveryReplicasLazyWrites() async throws {
        let directory = StoreDirectory()
        let path = directory.path("N1.sqlite")
        var shells = shells()
        do {
            let stores = try openWithAccounts(path, &shells)
            let before = stores[0].fileTransactions
            try stores[1].enqueue(shells[1].choose([transfer(2, 2, 3, 1)]))
            try stores[2].enqueue(shells[2].choose([transfer(3, 3, 4, 1)]))
            try await stores[0].commitDurably([shells[0].choose([transfer(4, 4, 5, 1)])])
            let after = stores[0].fileTransactions
            #expect(after.durable == before.durable + 1)
            #expect(after.lazy == before.lazy)
            #expect(stores[2].fileTransactions == after, "one file, one count")
        }
        for (index, (_, recovered)) in try openNode(path).enumerated() {
            #expect(recovered.state == shells[index].state)
            #expect(recovered.durable == shells[index].durable)
        }
    }

    @Test("durable commits of every hosted replica at once share transactions, and all of them are kept")
    func concurrentDurableCommitsShareTransactions() async throws {
        let directory = StoreDirectory()
        let path = directory.path("N1.sqlite")
        let rounds = 40
        var expected: [Shell] = []
        do {
            var initial = shells()
            let stores = try openWithAccounts(path, &initial)
            let before = stores[0].fileTransactions
            expected = try await withThrowingTaskGroup(of: (Int, Shell).self) { group in
                for (index, store) in stores.enumerated() {
                    var shell = initial[index]
                    group.addTask {
                        for round in 0..<rounds {
                            let from = UInt64(round % 9 + 1)
                            try await store.commitDurably([
                                shell.choose([transfer(UInt64(round + 1), from, from + 1, 1)])
                            ])
                        }
                        return (index, shell)
                    }
                }
                var shells = initial
                for try await (index, shell) in group { shells[index] = shell }
                return shells
            }
            let after = stores[0].fileTransactions
            #expect(after.durable - before.durable <= 3 * rounds)
            #expect(after.durable - before.durable >= rounds, "each replica's commits one after another")
        }
        for (index, (store, recovered)) in try openNode(path).enumerated() {
            #expect(recovered.state == expected[index].state)
            #expect(recovered.durable == expected[index].durable)
            #expect(try store.datastoreRecords() == expected[index].datastore)
        }
    }

    @Test("a refused transaction stops every store of the file, and none of its writes is kept")
    func aFailedTransactionStopsEveryStore() async throws {
        let directory = StoreDirectory()
        let path = directory.path("N1.sqlite")
        var shells = shells()
        _ = try openWithAccounts(path, &shells)
        let before = shells
        try tamper(
            path,
            """
            CREATE TRIGGER refuse_datastore BEFORE INSERT ON s7_datastore
            BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
            """)
        do {
            let stores = try openNode(path).map(\.0)
            try stores[0].enqueue(shells[0].choose([transfer(2, 2, 3, 1)]))
            try stores[2].enqueue(shells[2].choose([transfer(2, 2, 3, 1)]))
            var refused: String?
            do {
                try await stores[1].commitDurably([shells[1].choose([transfer(2, 2, 3, 1)])])
            } catch {
                refused = error.description
            }
            #expect(refused?.contains("refused by the test") == true, "\(refused ?? "no error")")
            for store in stores {
                #expect(storeErrorDescription { () throws(StoreError) in try store.flush() } == refused)
                #expect(storeErrorDescription { () throws(StoreError) in _ = try store.walRecords() } == refused)
            }
        }
        for (index, (_, recovered)) in try openNode(path).enumerated() {
            #expect(recovered.state == before[index].state)
        }
    }

    @Test("a node's file is refused to another set of replicas, and a replica's own file beside it is refused")
    func anotherLayoutIsRefused() throws {
        let directory = StoreDirectory()
        let path = directory.path("N1.sqlite")
        _ = try openNode(path)
        let fewer = storeErrorDescription { () throws(StoreError) in
            try ReplicaStore.open(path: path, replicas: Array(hosted.prefix(2)))
        }
        #expect(
            fewer
                == "\(path): holds the store of S1, S4, S7, but this node hosts S1, S4; check hosts.ini and data_dir")
        let alone = storeErrorDescription { () throws(StoreError) in
            try ReplicaStore.open(path: path, cluster: "C1", replica: "S1", minBalance: 0)
        }
        #expect(
            alone
                == "\(path): holds the store of S1, S4, S7, but this node hosts S1 in a file of its own; check "
                + "hosts.ini and data_dir")
        let swapped = storeErrorDescription { () throws(StoreError) in
            try ReplicaStore.open(
                path: path,
                replicas: [hosted[0], ReplicaStore.Identity(cluster: "C3", replica: "S4", minBalance: 0), hosted[2]])
        }
        #expect(
            swapped
                == "\(path): belongs to replica S4 of cluster C2, not to replica S4 of cluster C3; check data_dir and "
                + "the replica name")

        let own = directory.path("S4.sqlite")
        _ = try ReplicaStore.open(path: own, cluster: "C2", replica: "S4", minBalance: 0)
        let beside = storeErrorDescription { () throws(StoreError) in
            try openNode(path, importing: [directory.path("S1.sqlite"), own, directory.path("S7.sqlite")])
        }
        #expect(
            beside
                == "\(own): is the own store of S4, but its node keeps S4 in \(path); if \(path) was imported from "
                + "it (an import renames the files it took), move \(own) away, otherwise move \(path) away to "
                + "import \(own) again")
    }

    @Test("a node's file is built from the replicas' own files of an earlier build, which are then renamed")
    func ownFilesAreImported() throws {
        let directory = StoreDirectory()
        let own = hosted.map { directory.path("\($0.replica).sqlite") }
        var shells = shells()
        for index in [0, 2] {
            let (store, _) = try ReplicaStore.open(path: own[index], replicas: [hosted[index]])[0]
            try store.commit(shells[index].choose([.createAccounts([AccountID(1)...AccountID(10)], balance: 10)]))
            try store.commit(shells[index].choose([transfer(1, 1, 2, 1)]))
            try store.commit(shells[index].compact())
            try store.commit(shells[index].accept([transfer(2, 3, 4, 1)], in: 4))
        }
        // S4 never wrote: its own file does not exist, and it starts empty.
        let path = directory.path("N1.sqlite")
        for (index, (store, recovered)) in try openNode(path, importing: own).enumerated() {
            #expect(recovered.importedFrom == (index == 1 ? nil : own[index]))
            #expect(recovered.state == shells[index].state)
            #expect(recovered.durable == shells[index].durable)
            #expect(try store.walRecords() == shells[index].wal)
            #expect(try store.datastoreRecords() == shells[index].datastore)
        }
        #expect(!FileManager.default.fileExists(atPath: own[0]))
        #expect(FileManager.default.fileExists(atPath: own[0] + ".imported"))
        #expect(!FileManager.default.fileExists(atPath: own[1] + ".imported"))
        #expect(FileManager.default.fileExists(atPath: own[2] + ".imported"))
        // Opened again, it is the node's file that counts.
        for (index, (_, recovered)) in try openNode(path, importing: own).enumerated() {
            #expect(recovered.importedFrom == nil)
            #expect(recovered.state == shells[index].state)
        }
    }
}
