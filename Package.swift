// swift-tools-version:6.0
import PackageDescription

// The module graph is drawn in README.md (Layout) and explained in docs/decisions.md (Module
// boundaries). scripts/test builds with `--explicit-target-dependency-import-check=error`: a
// target that imports a module outside its declared dependencies (and theirs) fails the build.
// RulesEngine is the pure core (no GRDB, libcpg, processes, Logging, ServiceLifecycle);
// CorosyncTransport is the only module that depends on CCorosync, CommandExecution the only
// one that starts processes (posix_spawn, in ProcessLauncher).

let package = Package(
    name: "hamn-events",
    products: [
        .executable(name: "hamn-events", targets: ["hamn-events"]),
        .library(name: "RulesParser", targets: ["RulesParser"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
    ],
    targets: [
        // Text -> syntax trees + diagnostics. Pure: no clocks, no processes, no sockets.
        .target(name: "RulesParser"),
        // Reads files and configuration and runs RulesParser's checks over them.
        .target(name: "RulesValidation", dependencies: ["RulesParser"]),
        // A parsed .rp + a node's role -> that node's plan; commands' results and output tails. Pure.
        .target(name: "RecoveryPrograms", dependencies: ["RulesParser"]),
        // Runs processes: one launcher (ProcessLauncher, posix_spawn) and one supervisor thread
        // for every child; a segment's commands (SegmentExecutor), a monitor's command
        // (MonitorCommand).
        .target(name: "CommandExecution", dependencies: ["RulesParser", "RecoveryPrograms"]),
        // YAML documents as plain values, for hamn.yaml and the scenario files.
        .target(name: "HamnYAML", dependencies: ["RulesParser", .product(name: "Yams", package: "Yams")]),
        // The pure core: predicate evaluation and arming, the cluster coordinator, the engines'
        // membership protocol and wire format, the loopback group, the simulator.
        .target(
            name: "RulesEngine",
            dependencies: [
                "RulesParser", "RulesValidation", "RecoveryPrograms", "HamnYAML",
                // SHA-256 of the configuration digests.
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // hamn.yaml: the service's configuration and its loader; the digest of a configuration's files.
        .target(
            name: "HamnConfiguration",
            dependencies: ["RulesParser", "RulesEngine", "HamnYAML"]
        ),
        // The transport protocol, the in-process loopback transport, the service's event loop thread.
        .target(name: "ClusterTransport", dependencies: ["RulesEngine"]),
        // Corosync's C headers (libcpg, libvotequorum), for the Corosync transport: types and
        // constants only. Nothing links the libraries: CorosyncTransport opens them with dlopen
        // when a connection is made (CorosyncLibrary), so `hamn-events` starts without them.
        .systemLibrary(
            name: "CCorosync",
            providers: [.apt(["libcpg-dev", "libvotequorum-dev"])]
        ),
        // The CPG connection and the Corosync transport: the only module that depends on CCorosync.
        .target(
            name: "CorosyncTransport",
            dependencies: ["RulesEngine", "ClusterTransport", "CCorosync"]
        ),
        // An event's timeline as a picture (SVG, a standalone HTML page): pure, no project module,
        // so the journal, the simulator and a live view draw the same.
        .target(name: "TimelineRendering"),
        // The service's Prometheus metrics: one registry per service (no global MetricsSystem),
        // fed from the journal's entries, the monitors and the journal's commits; `exposition()`
        // is what `/metrics` serves.
        .target(
            name: "HamnMetrics",
            dependencies: [
                "RulesEngine",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The HTTP listener (Hummingbird): the read-only web view, its live updates (server-sent
        // events) and /metrics. Knows nothing of the service: it is handed closures that ask it.
        // Runs on two threads of its own at nice 19 (a NIO event loop and a task executor).
        .target(
            name: "HamnWeb",
            dependencies: [
                "TimelineRendering",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The service: NodeService, ServiceRunner, the journal (SQLite), monitors, control socket.
        .target(
            name: "HamnService",
            dependencies: [
                "HamnMetrics",
                "RulesParser",
                "RulesValidation",
                "RecoveryPrograms",
                "CommandExecution",
                "RulesEngine",
                "HamnConfiguration",
                "ClusterTransport",
                "CorosyncTransport",
                "TimelineRendering",
                "HamnWeb",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "hamn-events",
            dependencies: [
                "RulesParser",
                "RulesValidation",
                "RulesEngine",
                "HamnConfiguration",
                "HamnService",
                "TimelineRendering",
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
                "CorosyncTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The fuzz targets: every input the service reads from others, as a function of bytes
        // (README, "Fuzzing"). hamn-fuzz replays files through them, or is the libFuzzer binary
        // when scripts/fuzz builds it with -DHAMN_LIBFUZZER and coverage instrumentation.
        .target(
            name: "FuzzTargets",
            dependencies: [
                "RulesParser", "RulesValidation", "RecoveryPrograms", "RulesEngine", "HamnYAML", "HamnConfiguration",
                "HamnService",
            ]
        ),
        .executableTarget(name: "hamn-fuzz", dependencies: ["FuzzTargets"]),
        .testTarget(
            name: "RulesParserTests",
            dependencies: ["RulesParser"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "RulesValidationTests",
            dependencies: ["TestSupport", "RulesParser", "RulesValidation"]
        ),
        // The timeline's model, SVG and HTML, parsed back with XMLDocument.
        .testTarget(name: "TimelineRenderingTests", dependencies: ["TimelineRendering"]),
        // The web view's listener with stand-in sources: routes, read-only, limits, live updates.
        .testTarget(
            name: "HamnWebTests",
            dependencies: [
                "TestSupport", "HamnWeb", "TimelineRendering", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RecoveryProgramsTests",
            dependencies: ["RulesParser", "RecoveryPrograms"]
        ),
        .testTarget(
            name: "CommandExecutionTests",
            dependencies: ["RulesParser", "RecoveryPrograms", "CommandExecution"]
        ),
        // What several test targets share: running a program and reading its output; a raw HTTP client.
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport"
        ),
        // The metrics module's exposition, a service's metrics after an event, promtool's checks
        // of the exposition and of samples/prometheus.
        .testTarget(
            name: "HamnMetricsTests",
            dependencies: [
                "TestSupport", "RecoveryPrograms", "RulesEngine", "HamnConfiguration", "ClusterTransport",
                "HamnService",
                "HamnMetrics",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RulesEngineTests",
            dependencies: ["RulesParser", "RulesEngine"]
        ),
        .testTarget(
            name: "HamnConfigurationTests",
            dependencies: ["RulesParser", "RulesEngine", "HamnConfiguration"]
        ),
        // The event loop thread and the loopback transport.
        .testTarget(
            name: "ClusterTransportTests",
            dependencies: ["RulesEngine", "ClusterTransport"]
        ),
        // The journal, its writer, the monitors and their parsers, NodeService's quorum gating,
        // in process.
        .testTarget(
            name: "HamnServiceTests",
            dependencies: [
                "RulesParser", "RecoveryPrograms", "RulesEngine", "HamnConfiguration", "ClusterTransport",
                "HamnService", "TimelineRendering",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Starts the real service as a process and drives it through the command line.
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "TestSupport", "RulesEngine", "HamnConfiguration", "ClusterTransport", "HamnService",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The shipped rules and samples: their scripts run with stand-in db2, xcatd, ... on PATH.
        .testTarget(
            name: "SampleTests",
            dependencies: ["TestSupport", "RulesParser", "RulesValidation", "RulesEngine"]
        ),
        // Real corosync: engine processes on one corosync, raw CPG clients.
        .testTarget(
            name: "CorosyncTests",
            dependencies: [
                "TestSupport", "CPGTestSupport", "cpg-peer", "RulesEngine", "ClusterTransport", "CorosyncTransport",
            ]
        ),
        // What the CPG tests and their peer process share: the lines they log, the patterns they send.
        .target(
            name: "CPGTestSupport",
            dependencies: ["RulesEngine"],
            path: "Tests/CPGTestSupport"
        ),
        // The CPG tests' second group member: another process (CPG tells members apart by pid).
        .executableTarget(
            name: "cpg-peer",
            dependencies: ["CPGTestSupport", "CorosyncTransport", "RulesEngine"],
            path: "Tests/CPGPeer"
        ),
        // The mutation fuzzers (configuration, scenarios, control requests) and the fuzzers'
        // regression inputs, on FuzzTargets.
        .testTarget(
            name: "FuzzTargetsTests",
            dependencies: ["FuzzTargets", "RulesEngine", "HamnConfiguration"]
        ),
        // The coordinator, barriers, membership, partitions, fencing, the wire format: the pure
        // core only.
        .testTarget(
            name: "BarrierTests",
            dependencies: ["RulesParser", "RulesValidation", "RecoveryPrograms", "HamnYAML", "RulesEngine"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
