import Foundation
import LedgerCore
import LedgerStore
import Testing

/// `HostsFileEdit`: what `shardctl member` writes into hosts.ini.
@Suite("hosts.ini edits")
struct HostsFileEditTests {
    static let hosts = """
        # C1: three replicas
        S1-localhost:6001
        S2-localhost:6002
        S3-localhost:6003
        EC1-S1:S2:S3
        all-S1:S2:S3   # every replica
        """

    static let config = """
        cluster: C1
        replicas:
          count: 3
          start: 1
          subnet: 6001
        data_dir: data/C1
        catalog: data/catalog.sqlite
        tls: off
        """

    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("an addition and a removal are appended, the rest of the file kept as written")
    func addAndRemove() throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("hosts.ini", Self.hosts)
        _ = try scratch.write("C1.yaml", Self.config)
        let added = try HostsFileEdit.add(
            replica: "S10", address: .init(host: "localhost", port: 6010), to: "C1", path: path, now: Self.now)
        #expect(added.hosts.cluster(named: "C1")?.added == ["S10"])
        let removed = try HostsFileEdit.remove(replica: "S3", from: "C1", path: path, now: Self.now)
        #expect(removed.hosts.cluster(named: "C1")?.reachable == ["S1", "S2", "S10"])
        #expect(
            try String(contentsOfFile: path, encoding: .utf8) == """
                # C1: three replicas
                S1-localhost:6001
                S2-localhost:6002
                S3-localhost:6003
                EC1-S1:S2:S3
                all-S1:S2:S3:S10 # every replica

                # 2027-01-15T08:00:00Z shardctl member add: S10 joins cluster C1
                S10-localhost:6010
                AC1-S10

                # 2027-01-15T08:00:00Z shardctl member remove: S3 left cluster C1
                RC1-S3

                """)
    }

    @Test("a change that would make the file invalid is refused and leaves it as it was")
    func refusedChange() throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("hosts.ini", Self.hosts)
        _ = try scratch.write("C1.yaml", Self.config)
        // Port 6011 breaks the config's rule (S10 of C1 listens on 6010).
        let error = thrownDescription { () throws(InputError) in
            try HostsFileEdit.add(
                replica: "S10", address: .init(host: "localhost", port: 6011), to: "C1", path: path, now: Self.now)
        }
        #expect(error?.hasPrefix("\(path): the change would make it invalid, so it is unchanged: ") == true)
        #expect(error?.contains("replicas.subnet is 6001, so S10 would listen on port 6010") == true)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == Self.hosts)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).sorted() == ["C1.yaml", "hosts.ini"])
        // Removing every replica is refused too.
        for replica in ["S1", "S2"] { _ = try HostsFileEdit.remove(replica: replica, from: "C1", path: path) }
        #expect(
            thrownDescription { () throws(InputError) in try HostsFileEdit.remove(replica: "S3", from: "C1", path: path)
            }?
            .contains("every replica of cluster C1 is removed") == true)
    }

    @Test("a cluster added, then a drained cluster taken out, its names kept from use")
    func addAndRemoveCluster() throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("hosts.ini", Self.hosts)
        _ = try scratch.write("C1.yaml", Self.config)
        _ = try scratch.write(
            "C2.yaml",
            Self.config.replacingOccurrences(of: "C1", with: "C2").replacingOccurrences(
                of: "start: 1", with: "start: 4"
            )
            .replacingOccurrences(of: "6001", with: "6004"))
        let added = try HostsFileEdit.add(
            cluster: "C2",
            replicas: (4...6).map { ("S\($0)", HostsFile.Address(host: "localhost", port: 6000 + $0)) }, path: path,
            now: Self.now)
        #expect(added.hosts.cluster(named: "C2")?.members == ["S4", "S5", "S6"])
        #expect(added.hosts.cluster(named: "C2")?.contact == "S4")
        let removed = try HostsFileEdit.remove(cluster: "C1", path: path, now: Self.now)
        #expect(removed.hosts.clusterNames == ["C2"])
        #expect(removed.hosts.drained == ["C1": ["S1", "S2", "S3"]])
        #expect(
            try String(contentsOfFile: path, encoding: .utf8) == """
                # C1: three replicas
                all-S4:S5:S6 # every replica

                # 2027-01-15T08:00:00Z shardctl cluster add: cluster C2 of S4, S5, S6
                S4-localhost:6004
                S5-localhost:6005
                S6-localhost:6006
                C2-S4
                EC2-S4:S5:S6

                # 2027-01-15T08:00:00Z shardctl cluster drain: cluster C1 drained and removed; its names are never reused
                DC1-S1:S2:S3

                """)
        // A cluster that is not there cannot be taken out.
        #expect(
            thrownDescription { () throws(InputError) in try HostsFileEdit.remove(cluster: "C1", path: path) }
                == "\(path): names no cluster C1")
    }
}
