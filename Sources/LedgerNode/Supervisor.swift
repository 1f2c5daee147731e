import Foundation
import LedgerStore
import Logging

/// Starts each replica or node as its own OS process (the same executable with the `replica` or `node` subcommand),
/// tells where each listens and logs, and stops them all on SIGINT or SIGTERM. It never restarts a process
/// silently: an exit is reported, and the others keep running.
public final class Supervisor: @unchecked Sendable {
    /// One replica or node to start: its name, what to run, and where its output goes.
    public struct Child: Sendable {
        public var name: String
        public var executable: String
        public var arguments: [String]
        public var logFile: String

        public init(name: String, executable: String, arguments: [String], logFile: String) {
            self.name = name
            self.executable = executable
            self.arguments = arguments
            self.logFile = logFile
        }
    }

    private let children: [Child]
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    private var stopping = false
    private var failures = 0

    public init(children: [Child]) {
        self.children = children
    }

    private let group = DispatchGroup()
    private var signals: [DispatchSourceSignal] = []

    /// Runs until every child has exited. Returns the number of children that exited with a failure status
    /// before a stop was requested.
    public func run() throws -> Int {
        try start()
        return waitForAll()
    }

    /// Starts every child and returns; Ctrl-C or SIGTERM to this process stops them all.
    public func start() throws {
        signals = [SIGINT, SIGTERM].map { signalNumber -> DispatchSourceSignal in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in self?.stopAll(reason: signalNumber == SIGINT ? "Ctrl-C" : "SIGTERM")
            }
            source.resume()
            return source
        }
        for child in children {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: child.executable)
            process.arguments = child.arguments
            let directory = (child.logFile as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: child.logFile, contents: nil)
            guard let log = FileHandle(forWritingAtPath: child.logFile) else {
                throw SupervisorError("cannot write the log file \(child.logFile)")
            }
            log.seekToEndOfFile()
            process.standardOutput = log
            process.standardError = log
            group.enter()
            process.terminationHandler = { [weak self] finished in
                guard let self else { return }
                let status = finished.terminationStatus
                self.lock.lock()
                let expected = self.stopping
                if !expected && (finished.terminationReason != .exit || status != 0) { self.failures += 1 }
                self.lock.unlock()
                if !expected {
                    Self.say("\(child.name) exited (status \(status)); it is not restarted. See \(child.logFile)")
                }
                group.leave()
            }
            try process.run()
            lock.lock()
            processes[child.name] = process
            lock.unlock()
            Self.say("\(child.name) started (pid \(process.processIdentifier)), log \(child.logFile)")
        }
    }

    /// Waits until every started child has exited; returns how many failed before a stop was requested.
    public func waitForAll() -> Int {
        group.wait()
        signals.forEach { $0.cancel() }
        lock.lock()
        defer { lock.unlock() }
        return failures
    }

    /// Prints a line at once, even when standard output is a file or a pipe (print would buffer it).
    public static func say(_ line: String) {
        write(line + "\n")
    }

    /// Writes text to standard output at once. A reader that went away (`client status | head -3`) ends this
    /// process quietly, as a closed pipe ends any command-line tool, instead of trapping.
    public static func write(_ text: String, to handle: FileHandle = .standardOutput) {
        do {
            try handle.write(contentsOf: Data(text.utf8))
        } catch {
            exit(0)
        }
    }

    /// Asks every child to stop (SIGTERM, then SIGKILL after 10 seconds).
    public func stopAll(reason: String) {
        lock.lock()
        guard !stopping else {
            lock.unlock()
            return
        }
        stopping = true
        let running = processes.values.filter(\.isRunning)
        lock.unlock()
        Self.say("\(reason): stopping \(running.count) process(es)")
        for process in running { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 10) {
            for process in running where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }
}

/// The supervisor could not start a replica.
public struct SupervisorError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension Supervisor.Child {
    /// One process per node of the deployment, run by `executable`: a node of one replica as `replica CONFIG HOSTS
    /// --name S1` logging to `<data_dir>/S1.log`, a node of several as `node HOSTS --name N1` logging to its first
    /// replica's `<data_dir>/N1.log`.
    public static func nodes(of deployment: Deployment, executable: String) -> [Supervisor.Child] {
        deployment.hosts.nodes.map { node in
            let name = deployment.hosts.cluster(of: node.replicas[0])!.name
            let cluster = deployment.clusters.first { $0.clusterName == name }!
            guard node.replicas.count > 1 else {
                let config = Deployment.configPath(of: cluster.clusterName, hostsPath: deployment.hostsPath)
                return Supervisor.Child(
                    name: node.replicas[0], executable: executable,
                    arguments: ["replica", config, deployment.hostsPath, "--name", node.replicas[0]],
                    logFile: "\(cluster.dataDirectory)/\(node.replicas[0]).log")
            }
            return Supervisor.Child(
                name: node.name, executable: executable,
                arguments: ["node", deployment.hostsPath, "--name", node.name],
                logFile: "\(cluster.dataDirectory)/\(node.name).log")
        }
    }
}
