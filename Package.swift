// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "hamn-events",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "hamn-events", targets: ["hamn-events"]),
        .library(name: "RulesParser", targets: ["RulesParser"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Text -> syntax trees + diagnostics. Pure: no clocks, no processes, no sockets.
        .target(name: "RulesParser"),
        // Reads files and configuration and runs RulesParser's checks over them.
        .target(
            name: "RulesValidation",
            dependencies: [
                "RulesParser",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // A parsed .rp + a node's role -> that node's plan; the executor that runs a segment.
        .target(
            name: "RecoveryPrograms",
            dependencies: [
                "RulesParser",
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        // Corosync's C client libraries (libcpg, libvotequorum), for the Corosync transport.
        .systemLibrary(
            name: "CCorosync",
            pkgConfig: "libcpg",
            providers: [.apt(["libcpg-dev", "libvotequorum-dev"])]
        ),
        // Predicate evaluation and arming, the cluster coordinator, transports, simulation.
        .target(
            name: "RulesEngine",
            dependencies: [
                "RulesParser",
                "RulesValidation",
                "RecoveryPrograms",
                "CCorosync",
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        .executableTarget(
            name: "hamn-events",
            dependencies: [
                "RulesParser",
                "RulesValidation",
                "RulesEngine",
                "RecoveryPrograms",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmarks: generate inputs, run the release binary as a user does, print figures.
        .executableTarget(
            name: "hamn-bench",
            dependencies: [
                "RulesParser",
                "RulesValidation",
                "RulesEngine",
                "RecoveryPrograms",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "RulesParserTests",
            dependencies: ["RulesParser"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "RulesValidationTests",
            dependencies: ["TestSupport", "RulesParser", "RulesValidation"]
        ),
        .testTarget(
            name: "RecoveryProgramsTests",
            dependencies: ["RulesParser", "RecoveryPrograms"]
        ),
        // What several test targets share: running a program and reading its output.
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "RulesEngineTests",
            dependencies: ["RulesParser", "RulesEngine", .product(name: "Logging", package: "swift-log")]
        ),
        // Starts the real service as a process and drives it through the command line.
        .testTarget(
            name: "ServiceTests",
            dependencies: ["TestSupport", "RulesEngine"]
        ),
        // The shipped rules and samples: their scripts run with stand-in db2, xcatd, ... on PATH.
        .testTarget(
            name: "SampleTests",
            dependencies: ["TestSupport", "RulesParser", "RulesValidation", "RulesEngine"]
        ),
        // Real corosync: engine processes on one corosync, raw CPG clients.
        .testTarget(
            name: "CorosyncTests",
            dependencies: ["TestSupport", "RulesEngine", "CCorosync"]
        ),
        .testTarget(
            name: "BarrierTests",
            dependencies: [
                "RulesParser", "RecoveryPrograms", "RulesEngine", .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
