// swift-tools-version: 6.2
//
// The ledger: a sharded, replicated banking ledger. Layers (dependencies point down only):
//   Paxos <- LedgerCore <- LedgerStore, LedgerRPC <- LedgerNode, LedgerClient <- executables.
// `Paxos` and `LedgerCore` are pure: no clock, randomness, I/O, logging, networking or SQLite.
import PackageDescription

/// Settings shared by every target of ours: Swift 6 language mode and warnings as errors.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "Ledger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cluster", targets: ["cluster"]),
        .executable(name: "client", targets: ["client"]),
        .executable(name: "shardctl", targets: ["shardctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // Pure cores.
        .target(name: "Paxos", swiftSettings: strict),
        .target(name: "LedgerCore", dependencies: ["Paxos"], swiftSettings: strict),

        // Adapters.
        .target(
            name: "LedgerStore",
            dependencies: [
                "Paxos", "LedgerCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LedgerRPC",
            dependencies: [
                "Paxos", "LedgerCore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),

        // Runtimes.
        .target(
            name: "LedgerNode",
            dependencies: [
                "Paxos", "LedgerCore", "LedgerStore", "LedgerRPC", "LedgerClient",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LedgerClient",
            dependencies: [
                "Paxos", "LedgerCore", "LedgerStore", "LedgerRPC",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // Executables: argument parsing and wiring only.
        .executableTarget(
            name: "cluster",
            dependencies: [
                "LedgerNode", "LedgerStore", "LedgerCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "client",
            dependencies: [
                "LedgerClient", "LedgerNode", "LedgerStore", "LedgerCore", "LedgerRPC", "Paxos",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "shardctl",
            dependencies: [
                "LedgerClient", "LedgerStore", "LedgerCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // Development tools.
        .executableTarget(
            name: "transport-probe",
            dependencies: [
                "LedgerClient", "LedgerRPC",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),

        // Tests.
        .testTarget(name: "PaxosTests", dependencies: ["Paxos"], swiftSettings: strict),
        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore", "Paxos"], swiftSettings: strict),
        .testTarget(
            name: "LedgerStoreTests",
            dependencies: [
                "LedgerStore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LedgerNodeTests",
            dependencies: [
                "LedgerNode", "LedgerRPC", "LedgerStore", "LedgerCore", "Paxos",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "LedgerClient", "LedgerCore", "LedgerNode", "LedgerRPC", "LedgerStore", "Paxos",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            // Files the tests read from the checkout (`#filePath`): old replica files, and how they were made.
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(name: "SimulationTests", dependencies: ["Paxos", "LedgerCore"], swiftSettings: strict),
        .testTarget(
            name: "FuzzTests",
            dependencies: [
                "LedgerCore", "LedgerStore", "LedgerRPC", "LedgerNode", "Paxos",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LedgerRPCTests",
            dependencies: [
                "LedgerRPC",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
    ]
)
