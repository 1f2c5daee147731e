import Foundation
import LedgerCore
import LedgerStore
import Testing

@Suite("Deployments")
struct DeploymentTests {
    static let hosts = "S1-localhost:6001\nS2-localhost:6002\nC1-S1\nC2-S2\nEC1-S1\nEC2-S2\n"

    static func config(_ number: Int, extra: String = "") -> String {
        """
        cluster: C\(number)
        replicas:
          count: 1
          start: \(number)
          subnet: \(6000 + number)
        data_dir: data/C\(number)
        catalog: data/catalog.sqlite
        \(extra)
        """
    }

    @Test("every cluster of a deployment uses one TLS setting, which the deployment gives its clients")
    func oneTLSSetting() throws {
        let scratch = try ScratchDirectory()
        let hosts = try scratch.write("hosts.ini", Self.hosts)
        _ = try scratch.write("C1.yaml", Self.config(1, extra: "tls: off"))
        _ = try scratch.write("C2.yaml", Self.config(2, extra: "tls: off"))
        #expect(try Deployment.load(hostsPath: hosts).tls == .off)

        let second = try scratch.write("C2.yaml", Self.config(2))
        #expect(
            thrownDescription { () throws(InputError) in try Deployment.load(hostsPath: hosts) }
                == "\(second): gives tls (ca certs/ca.pem, certificate certs/{name}.pem, key certs/{name}-key.pem), "
                + "but \(scratch.url.path)/C1.yaml gives off; every cluster of a deployment uses the same certificates")
    }

    @Test("the replicas of a node get one peer port, and no two nodes of a host share one")
    func peerPorts() throws {
        let scratch = try ScratchDirectory()
        // S1 and S2 share an address: one node.
        let hosts = try scratch.write("hosts.ini", "S1-localhost:6001\nS2-localhost:6001\nEC1-S1\nEC2-S2\n")
        func config(_ number: Int, _ peerPort: Int?) -> String {
            """
            cluster: C\(number)
            replicas:
              count: 1
              start: \(number)
              subnet: 6001
            data_dir: data/C\(number)
            catalog: data/catalog.sqlite
            tls: off
            \(peerPort.map { "peer_port: \($0)" } ?? "")
            """
        }
        _ = try scratch.write("C1.yaml", config(1, 7001))
        _ = try scratch.write("C2.yaml", config(2, 7001))
        #expect(
            try Deployment.load(hostsPath: hosts).clusters.map { $0.peerPort(ofReplica: $0.replicaStart) } == [
                7001, 7001,
            ])

        let second = try scratch.write("C2.yaml", config(2, nil))
        #expect(
            thrownDescription { () throws(InputError) in try Deployment.load(hostsPath: hosts) }
                == "\(second): gives S2 no peer port, but \(scratch.url.path)/C1.yaml gives S1 peer port 7001; they "
                + "share the address localhost:6001, so one node, which takes its peers' messages on one port")

        // Two nodes (S1 on 6001, S2 on 6002) of one host with the same peer port.
        let twoNodes = try scratch.write("hosts.ini", "S1-localhost:6001\nS2-localhost:6002\nEC1-S1\nEC2-S2\n")
        _ = try scratch.write("C2.yaml", config(2, 7001).replacing("subnet: 6001", with: "subnet: 6002"))
        #expect(
            thrownDescription { () throws(InputError) in try Deployment.load(hostsPath: twoNodes) }
                == "\(second):9: gives S2 the peer port 7001 on localhost, which \(scratch.url.path)/C1.yaml gives S1, "
                + "a replica of another node (localhost:6001)")
    }
}
