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
    ],
    targets: [
        // Pure cores.
        .target(name: "Paxos", swiftSettings: strict),
        .target(name: "LedgerCore", dependencies: ["Paxos"], swiftSettings: strict),

        // Adapters.
        .target(
            name: "LedgerStore",
            dependencies: ["LedgerCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .target(name: "LedgerRPC", dependencies: ["LedgerCore"], swiftSettings: strict),

        // Runtimes.
        .target(
            name: "LedgerNode",
            dependencies: ["Paxos", "LedgerCore", "LedgerStore", "LedgerRPC"],
            swiftSettings: strict
        ),
        .target(
            name: "LedgerClient",
            dependencies: ["LedgerCore", "LedgerStore", "LedgerRPC"],
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
                "LedgerClient", "LedgerStore", "LedgerCore",
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

        // Tests.
        .testTarget(name: "PaxosTests", dependencies: ["Paxos"], swiftSettings: strict),
        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore"], swiftSettings: strict),
        .testTarget(name: "LedgerStoreTests", dependencies: ["LedgerStore"], swiftSettings: strict),
        .testTarget(name: "SimulationTests", dependencies: ["Paxos"], swiftSettings: strict),
    ]
)
