import ArgumentParser

/// Benchmarks of hamn-events as its users run it: each subcommand generates its input, runs the
/// release binary as a subprocess and prints the figures. One subcommand per benchmark.
@main
struct HamnBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hamn-bench",
        abstract: "Benchmarks for hamn-events.",
        discussion: """
            Build the release binaries first (scripts/bench-validate does): the figures are the \
            optimised build's.
            """,
        subcommands: [
            ValidateBenchmark.self, PredicateBenchmark.self, ServiceBenchmark.self, ClusterBenchmark.self,
            WireBenchmark.self, CPGPeer.self,
        ]
    )
}

/// How a benchmark prints its figures.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}
