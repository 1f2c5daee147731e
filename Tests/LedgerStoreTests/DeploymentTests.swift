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
}
