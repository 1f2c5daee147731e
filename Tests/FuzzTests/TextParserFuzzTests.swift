import LedgerCore
import LedgerStore
import Testing

/// Mutated files and lines for every text parser: each returns a value that keeps its type's invariants, or throws
/// an `InputError` that names the source, points at a line of the input (when it has one) and says something.
@Suite("Fuzzing the text parsers")
struct TextParserFuzzTests {
    // MARK: - Corpora: the shipped files and small valid variants

    static let hostsCorpus = [
        FuzzSettings.shipped("configs/hosts.ini"),
        "S1-localhost:6001\nEC1-S1\n",
        "S1-[::1]:1\nS2-host:2\nS3-host:3\nclient-host:4\nC1-S2\nEC1-S3:S1:S2\nall-S1:S2:S3\n",
        "\u{FEFF}S10-10.0.0.1:6001\r\nS11-10.0.0.2:6001\r\nS12-10.0.0.3:65535\r\nEC4-S10:S11:S12 # C4\r\n",
    ]

    static let shardsCorpus = [
        FuzzSettings.shipped("tests-data/shards.csv"),
        "D1, C1, 1-1000\n",
        "Shard,Cluster,Range\r\n\"D1\",\"C1\",\"1-10\"\r\nD2,C2,11-18446744073709551615\r\n",
        "D2, C2, 0000-0000-0000-1001 - 0000-0000-0000-2000\nD1, C1, 1-1000\n",
    ]

    static let testsCorpus = [
        FuzzSettings.shipped("tests-data/tests.csv"),
        "1,\"(1, 2, 3)\"\n",
        "Set,Transfer,Live,Contacts\n1,\"(21, 700, 2)\",\"[S1, S2]\",\"[S1]\"\n,\"(3, 4, 5)\",,\n2,\"(5, 6, 1)\",,\n",
        FuzzSettings.shipped("tests-data/tests-fall2025.csv"),
        "Set Number,Transactions,Live Nodes\r\n1,\"(2001)\",\"[n1, n2, n3]\"\r\n,F(n2),\r\n,\"(1, 2, 3)\",\r\n,R(n2),\r\n,R(n4),\r\n",
    ]

    static let schemaCorpus = [
        """
        # Account moves planned by `shardctl rebalance` from tests.csv.
        # Options: --max-imbalance 0.05 --min-transactions 1
        # Cross-shard transfers before the plan: 100.00% (2 of 2)
        {clusters: [C2 C1], accounts: [1997, 796], transactions: 2, total: 16.000000}
        {move: 796, from: C1, to: C2}

        """,
        "{move: 9090-8912-1209-0098, from: C3, to: C1}\r\n{move: 1, from: C1, to: C2} # why\r\n",
        "{clusters: [C1, C2], accounts: [1, 2], transactions: 18446744073709551615, total: 99999999999999999999}\n",
    ]

    static let yamlCorpus = [
        FuzzSettings.shipped("configs/C1.yaml"),
        FuzzSettings.shipped("configs/C2.yaml"),
        "cluster: C1\nreplicas:\n  count: 1\n  start: 1\n  subnet: 6001\ntls: off\n",
        "cluster: C9\nreplicas: {count: 5, start: 41, subnet: 65531}\nmetrics_port: 0\nmin_balance: -100\n"
            + "paxos: {leader_timeout: 1s, leader_ping_interval: 100ms, consensus_timeout: 1h, tick: 1ms}\n",
    ]

    static let promptCorpus = [
        "PrintBalance 21", "print balance 9090-8912-1209-0098", "PrintLogs S1", "printlogs s12", "PrintDatastore",
        "PrintDatastore S4", "Performance", "next", "", "exit", "q", "help", "?",
    ]

    static let numberCorpus = [
        "21", "9090-8912-1209-0098", "18446744073709551615", "1", " 700 ", "(21, 700, 2)",
        "(0000-0000-0000-0001, 2, 9223372036854775807)", "25",
    ]

    // MARK: - Surfaces

    @Test("hosts.ini")
    func hosts() {
        fuzzText("hosts.ini", corpus: Self.hostsCorpus) { text in
            parsing(text, source: "fuzz.ini", HostsFile.parse, invariant: Self.hostsInvariant)
        }
    }

    @Test("shards.csv")
    func shards() {
        fuzzText("shards.csv", corpus: Self.shardsCorpus) { text in
            parsing(text, source: "fuzz-shards.csv", ShardMap.parse, invariant: Self.shardsInvariant)
        }
    }

    @Test("tests.csv")
    func testSets() {
        fuzzText("tests.csv", corpus: Self.testsCorpus) { text in
            parsing(text, source: "fuzz-tests.csv", TestSetFile.parse, invariant: Self.testSetsInvariant)
        }
    }

    @Test("new-schema.txt")
    func schema() {
        fuzzText("new-schema.txt", corpus: Self.schemaCorpus) { text in
            parsing(text, source: "fuzz-schema.txt", RebalanceSchema.parse, invariant: Self.schemaInvariant)
        }
    }

    @Test("cluster YAML")
    func clusterYAML() {
        fuzzText("C1.yaml", corpus: Self.yamlCorpus) { text in
            parsing(
                text, source: "fuzz.yaml",
                { (text, source) throws(InputError) in try ConfigFiles.parseCluster(yaml: text, source: source) },
                invariant: Self.clusterInvariant)
        }
    }

    @Test("prompt commands")
    func prompt() {
        fuzzText("prompt", corpus: Self.promptCorpus) { text in
            parsing(
                text, source: "prompt", { (text, _) throws(InputError) in try PromptCommand.parse(text) },
                invariant: Self.promptInvariant)
        }
    }

    @Test("account ids, amounts and transfers")
    func numbers() {
        fuzzText("account/amount", corpus: Self.numberCorpus) { text in
            let verdicts = [
                parsing(
                    text, source: "fuzz-account",
                    { (text, source) throws(InputError) in try AccountID.parse(text, source: source) },
                    invariant: { id in
                        guard id.value >= 1 else { return "account id \(id) below 1" }
                        return (try? AccountID.parse(id.description, source: "again")) == id
                            ? nil : "account id \(id) does not read back"
                    }),
                parsing(
                    text, source: "fuzz-amount",
                    { (text, source) throws(InputError) in try Amount.parse(text, source: source, line: 1) },
                    invariant: { amount in
                        guard amount.value >= 1 else { return "amount \(amount) below 1" }
                        return (try? Amount.parse(amount.description, source: "again")) == amount
                            ? nil : "amount \(amount) does not read back"
                    }),
                parsing(
                    text, source: "fuzz-transfer",
                    { (text, source) throws(InputError) in try Transfer.parse(text, source: source, line: 1) },
                    invariant: { transfer in
                        guard transfer.from != transfer.to else { return "transfer \(transfer) to itself" }
                        return (try? Transfer.parse(transfer.description, source: "again")) == transfer
                            ? nil : "transfer \(transfer) does not read back"
                    }),
            ]
            if let failure = verdicts.first(where: { if case .failed = $0 { true } else { false } }) {
                return failure
            }
            return verdicts.contains(.accepted) ? .accepted : .refused
        }
    }

    // MARK: - Invariants of parsed values (nil: kept; else what is broken)

    static func hostsInvariant(_ hosts: HostsFile) -> String? {
        guard !hosts.replicas.isEmpty else { return "no replicas" }
        let names = hosts.replicas.map(\.name)
        guard Set(names).count == names.count else { return "replica names repeat: \(names)" }
        let addresses = hosts.replicas.map(\.address) + (hosts.clientAddress.map { [$0] } ?? [])
        guard Set(addresses).count == addresses.count else { return "addresses repeat: \(addresses)" }
        guard hosts.replicas.map(\.index) == hosts.replicas.map(\.index).sorted() else { return "replicas unsorted" }
        for replica in hosts.replicas {
            guard replica.name == "S\(replica.index)", replica.index >= 1 else { return "bad name \(replica.name)" }
            guard (1...65535).contains(replica.port), !replica.host.isEmpty else { return "bad address of \(replica)" }
            guard hosts.clusters.filter({ $0.members.contains(replica.name) }).count == 1 else {
                return "\(replica.name) is not in exactly one cluster"
            }
        }
        let clusterNames = hosts.clusters.map(\.name)
        guard Set(clusterNames).count == clusterNames.count else { return "cluster names repeat: \(clusterNames)" }
        for cluster in hosts.clusters {
            guard cluster.name == "C\(cluster.index)", cluster.members.count % 2 == 1,
                Set(cluster.members).count == cluster.members.count, cluster.members.contains(cluster.contact),
                cluster.members.allSatisfy({ hosts.replica(named: $0) != nil })
            else { return "bad cluster \(cluster)" }
        }
        return nil
    }

    static func shardsInvariant(_ map: ShardMap) -> String? {
        guard !map.shards.isEmpty else { return "no shards" }
        let names = map.shards.map(\.name)
        guard Set(names).count == names.count else { return "shard names repeat: \(names)" }
        for (shard, next) in zip(map.shards, map.shards.dropFirst())
        where shard.accounts.upperBound >= next.accounts.lowerBound {
            return "shards \(shard.name) and \(next.name) overlap or are unsorted"
        }
        for shard in map.shards {
            guard shard.name.hasPrefix("D"), shard.cluster.hasPrefix("C") else { return "bad names in \(shard)" }
            for account in [shard.accounts.lowerBound, shard.accounts.upperBound]
            where map.cluster(of: account) != shard.cluster {
                return "account \(account) of \(shard.name) is not found in \(shard.cluster)"
            }
        }
        return nil
    }

    static func testSetsInvariant(_ file: TestSetFile) -> String? {
        guard !file.sets.isEmpty else { return "no sets" }
        for (set, next) in zip(file.sets, file.sets.dropFirst()) where set.number >= next.number {
            return "set numbers do not increase: \(set.number), \(next.number)"
        }
        for set in file.sets {
            guard set.number >= 1, set.operationCount > 0, set.format == file.format else {
                return "bad set \(set.number)"
            }
            guard file.format == .fall2025 || set.steps.allSatisfy(\.isOperation) && set.reads.isEmpty else {
                return "reads or fail and recover rows in the original format, set \(set.number)"
            }
            guard file.format == .original || set.contacts.isEmpty else { return "contacts in the Fall 2025 format" }
            // Every fail row takes a live replica down, every recover row brings a disconnected one back.
            var live = Set(set.liveServers)
            for step in set.steps {
                switch step.action {
                case .transfer, .read: break
                case .fail(let replica):
                    guard live.remove(replica) != nil else { return "line \(step.line) fails \(replica), not live" }
                case .recover(let replica):
                    guard live.insert(replica).inserted else { return "line \(step.line) recovers \(replica), live" }
                }
            }
            let segments = set.segments
            guard segments.flatMap({ $0.changes + $0.operations }).count == set.steps.count,
                Set(segments.last?.liveServers ?? []) == live
            else { return "the segments of set \(set.number) lose steps or end with other live replicas" }
            for servers in [set.liveServers, set.contacts] {
                guard Set(servers).count == servers.count, servers.allSatisfy({ $0.hasPrefix("S") }) else {
                    return "bad servers \(servers) in set \(set.number)"
                }
            }
            for transfer in set.transfers where transfer.transfer.from == transfer.transfer.to {
                return "transfer to itself at line \(transfer.line)"
            }
        }
        return nil
    }

    static func schemaInvariant(_ schema: RebalanceSchema) -> String? {
        let accounts = schema.moves.map(\.account)
        guard Set(accounts).count == accounts.count else { return "an account is moved twice" }
        for move in schema.moves where move.from == move.to { return "move \(move) changes nothing" }
        for pair in schema.pairs where pair.first == pair.second || pair.into == pair.from || pair.transactions < 1 {
            return "bad pair \(pair)"
        }
        // The writer's text reads back to the same schema.
        do {
            let again = try RebalanceSchema.parse(schema.text, source: schema.source)
            guard again.comments == schema.comments, again.pairs == schema.pairs, again.moves == schema.moves else {
                return "the written text reads back differently: \(escaped(schema.text))"
            }
        } catch {
            return "the written text is refused: \(error); text \(escaped(schema.text))"
        }
        return nil
    }

    static func clusterInvariant(_ config: ClusterConfig) -> String? {
        guard config.clusterName.hasPrefix("C") else { return "cluster name \(config.clusterName)" }
        guard config.replicaCount >= 1, config.replicaCount % 2 == 1,
            config.replicaCount <= ClusterConfig.Limits.replicaCountMax, config.replicaStart >= 1
        else { return "replicas \(config.replicaCount) from \(config.replicaStart)" }
        guard config.portBase >= 1, config.portBase + config.replicaCount - 1 <= 65535 else {
            return "ports from \(config.portBase)"
        }
        guard config.metricsPortBase == 0 || config.metricsPortBase + config.replicaCount - 1 <= 65535 else {
            return "metrics ports from \(config.metricsPortBase)"
        }
        guard config.balanceInitial >= config.balanceMin, config.balanceInitial >= 0 else { return "balances" }
        guard config.batching.batchSizeMax >= 1, config.batching.slotsInFlightMax >= 1 else { return "batching" }
        return nil
    }

    static func promptInvariant(_ command: PromptCommand) -> String? {
        switch command {
        case .printLogs(let replica), .printDatastore(.some(let replica)):
            return replica.hasPrefix("S") && replica == replica.uppercased() ? nil : "replica name \(replica)"
        default:
            return nil
        }
    }
}

// MARK: - Helpers

/// Fuzzes one text surface: each input is a mutation of a corpus entry.
func fuzzText(_ surface: String, corpus: [String], check: (String) -> Verdict) {
    fuzz(
        surface,
        generate: { mutator, _ in mutator.mutate(text: mutator.pick(corpus), corpus: corpus) },
        describe: { escaped($0) },
        check: check)
}

/// Parses `text`: a value must keep `invariant`; an error must be located in `text`.
func parsing<Value>(
    _ text: String, source: String, _ parse: (String, String) throws(InputError) -> Value,
    invariant: (Value) -> String?
) -> Verdict {
    do {
        let value = try parse(text, source)
        if let broken = invariant(value) { return .failed("accepted, but \(broken)") }
        return .accepted
    } catch {
        return located(error, source: source, text: text)
    }
}

/// `.refused` when `error` names `source`, points at a line of `text` if at all, and has a message.
func located(_ error: InputError, source: String, text: String) -> Verdict {
    guard error.source == source else { return .failed("error names \(error.source), not \(source): \(error)") }
    let expected = error.line.map { "\(source):\($0): " } ?? "\(source): "
    guard error.description.hasPrefix(expected) else { return .failed("error is not located: \(error)") }
    if let line = error.line, !(1...lineCount(text)).contains(line) {
        return .failed("error points at line \(line) of \(lineCount(text) - 1): \(error)")
    }
    guard error.message.contains(where: { !$0.isWhitespace }) else { return .failed("error says nothing: \(error)") }
    return .refused
}
