import ArgumentParser
import RulesEngine
import RulesParser
import RulesValidation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `hamn-bench predicates`: how many predicate evaluations one core makes per second, for the
/// simple `X > 70` and for compound, structured, list and pattern predicates, and for arming.
struct PredicateBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predicates",
        abstract: "Time compiled predicate evaluation on one thread.",
        discussion: """
            Each case compiles one predicate (for the arming cases also a rearm predicate) and \
            evaluates it over a seeded cycle of 4096 varying samples, each with the one before it as \
            X@P, on this thread only, for at least SECONDS per round; the best of ROUNDS rounds is \
            reported. The true column is the share of evaluations that held (for arming: that \
            fired). Target: >= 10 million evaluations per second for X > 70 in a release build.
            """
    )

    @Option(help: "Seconds per round, at least.")
    var seconds = 1.0

    @Option(help: "Rounds per case; the best is reported.")
    var rounds = 3

    @Option(name: .customLong("case"), help: "Run only this case (repeat for several); default: all.")
    var cases: [String] = []

    @Option(help: "Seed of the sample generator.")
    var seed: UInt64 = 1

    @Option(help: "text or json.")
    var format: ReportFormat = .text

    static let targetEvaluationsPerSecond = 10_000_000.0
    static let targetCase = "simple"

    func validate() throws {
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be above 0") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        let known = PredicateBenchmarkCore.standardCases().map(\.name)
        for name in cases where !known.contains(name) {
            throw ValidationError("no case \(name); the cases are \(known.joined(separator: ", "))")
        }
    }

    func run() throws {
        let selected = PredicateBenchmarkCore.standardCases(seed: seed).filter {
            cases.isEmpty || cases.contains($0.name)
        }
        var results: [PredicateBenchmarkCore.Result] = []
        for benchmark in selected {
            let result = try PredicateBenchmarkCore.run(benchmark, seconds: seconds, rounds: rounds)
            Self.note(
                "\(benchmark.name): "
                    + result.rounds.map { Self.decimal($0 / 1e6, 2) + " M/s" }.joined(separator: ", "))
            results.append(result)
        }
        switch format {
        case .text: print(textReport(results), terminator: "")
        case .json: print(jsonReport(results))
        }
    }

    private func textReport(_ results: [PredicateBenchmarkCore.Result]) -> String {
        var out = "predicate evaluation, one thread, best of \(rounds) rounds of >= \(Self.decimal(seconds, 1)) s\n"
        let width = max(results.map(\.name.count).max() ?? 0, 4)
        out += "case".padded(width) + "  evaluations/s  ns each  true    predicate\n"
        for result in results {
            let perSecond = Self.decimal(result.best / 1e6, 2) + " M"
            let nanoseconds = Self.decimal(1e9 / result.best, 1)
            let share = Self.decimal(100 * Double(result.trueCount) / Double(max(result.evaluations, 1)), 1) + "%"
            out +=
                result.name.padded(width) + "  " + perSecond.padded(13, left: true) + "  "
                + nanoseconds.padded(7, left: true) + "  " + share.padded(6, left: true) + "  " + result.predicate
                + "\n"
        }
        if let simple = results.first(where: { $0.name == Self.targetCase }) {
            let met = simple.best >= Self.targetEvaluationsPerSecond
            out += "target: >= \(Int(Self.targetEvaluationsPerSecond / 1e6)) M evaluations/s for \(simple.predicate): "
            out += met ? "met\n" : "NOT met\n"
        }
        return out
    }

    private func jsonReport(_ results: [PredicateBenchmarkCore.Result]) -> String {
        let items = results.map { result in
            "{\"case\": \(JSON.string(result.name)), \"predicate\": \(JSON.string(result.predicate)), "
                + "\"evaluationsPerSecond\": \(Self.decimal(result.best, 0)), "
                + "\"rounds\": [\(result.rounds.map { Self.decimal($0, 0) }.joined(separator: ", "))], "
                + "\"trueCount\": \(result.trueCount), \"evaluations\": \(result.evaluations)}"
        }
        return "{\"benchmark\": \"predicates\", \"seconds\": \(seconds), \"rounds\": \(rounds), \"cases\": ["
            + items.joined(separator: ", ") + "]}"
    }

    /// Progress on standard error, so that the report on standard output stays clean.
    private static func note(_ message: String) {
        var line = message + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// `digits` decimal places, without Foundation.
    private static func decimal(_ value: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value * scale).rounded()
        guard scaled.isFinite, abs(scaled) < 9e15 else { return String(value) }
        let whole = Int64(scaled)
        let magnitude = whole.magnitude
        let divisor = UInt64(scale)
        var text = (whole < 0 ? "-" : "") + String(magnitude / divisor)
        if digits > 0 {
            let fraction = String(magnitude % divisor)
            text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return text
    }

}

extension String {
    /// Padded with spaces to `width` characters, on the right (or the left).
    fileprivate func padded(_ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(width - count, 0))
        return left ? padding + self : self + padding
    }
}
