import Foundation
import FuzzTargets
import HamnConfiguration
import RulesEngine
import Testing

// The mutation fuzzers of every test run: the seed corpus of Fuzz/corpus (what libFuzzer starts
// from too) mutated by a seeded generator — bytes flipped, tokens of the format inserted, lines
// dropped, duplicated, swapped, files cut and spliced — and each input run through its
// FuzzTarget, which checks that it does not crash and that every error names the file and a
// line and column inside it. A crash kills the test process: the base seed and the iteration
// are printed first on stderr when HAMN_FUZZ_TRACE=1, so that the input can be made again.
// HAMN_FUZZ_SEED=N replaces the base seed; HAMN_FUZZ_SCALE=F multiplies the iteration counts.

@Suite("mutation fuzzers: configuration, scenarios, control requests")
struct MutationFuzzTests {
    @Test("hamn.yaml: no crash, every error at a line and column of the file")
    func configuration() {
        MutationFuzzer(target: .configuration, iterations: 20000, tokens: MutationFuzzer.yamlTokens).run()
    }

    @Test("scenario files: no crash, every error at a line and column of the file")
    func scenario() {
        MutationFuzzer(target: .scenario, iterations: 20000, tokens: MutationFuzzer.yamlTokens).run()
    }

    @Test("control requests: no crash; a request that decodes encodes back to itself")
    func control() {
        MutationFuzzer(target: .control, iterations: 50000, tokens: MutationFuzzer.jsonTokens).run()
    }

    @Test("every seed of the corpus passes its target", arguments: FuzzTarget.allCases)
    func seeds(_ target: FuzzTarget) throws {
        let seeds = try Corpus.seeds(target)
        #expect(!seeds.isEmpty)
        for (name, bytes) in seeds {
            #expect(target.run(bytes) == [], "\(target.rawValue)/\(name)")
        }
    }

    @Test("what libFuzzer found stays fixed (Fuzz/regressions)", arguments: FuzzTarget.allCases)
    func regressions(_ target: FuzzTarget) throws {
        for (name, bytes) in try Corpus.files(Corpus.root + "/regressions/" + target.rawValue) {
            #expect(target.run(bytes) == [], "\(target.rawValue)/\(name)")
        }
    }
}

enum Corpus {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz").path

    static func seeds(_ target: FuzzTarget) throws -> [(String, [UInt8])] {
        try files(root + "/corpus/" + target.rawValue)
    }

    static func files(_ directory: String) throws -> [(String, [UInt8])] {
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory).sorted().map { name in
            (name, Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))))
        }
    }
}

struct MutationFuzzer {
    let target: FuzzTarget
    let iterations: Int
    let tokens: [[UInt8]]
    /// An input that takes longer than this is a hang (the slowest seeds take milliseconds).
    var timeLimit = Duration.seconds(5)

    init(target: FuzzTarget, iterations: Int, tokens: [String]) {
        self.target = target
        let scale = ProcessInfo.processInfo.environment["HAMN_FUZZ_SCALE"].flatMap(Double.init) ?? 1
        self.iterations = max(1, Int(Double(iterations) * scale))
        self.tokens = tokens.map { Array($0.utf8) }
    }

    static var baseSeed: UInt64 {
        ProcessInfo.processInfo.environment["HAMN_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x4841_4D4E
    }

    static let yamlTokens: [String] =
        [
            ":", ": ", "- ", "\n", "\n  ", "\n- ", "  ", "{", "}", "[", "]", ", ", "#", "&a ", "*a", "!!str ", "!!map ",
            "? ", "|\n  ", ">", "\"", "'", "---\n", "...\n", "\t", "\r", "\r\n", "\u{85}", "\u{2028}", "\u{1}",
            "\u{7F}", "\u{FEFF}", "é", "1e19", "1e300",
            "-1", "0", "-0", "9223372036854775807", "99999999999999999999", ".nan", ".inf", "10s", "5m", "1h", "250ms",
            "1d", "0s", "true", "no", "null", "~", "n1", "n2", "n9", "/bin/true", "x: 1\nx: 2\n", "a: b: c",
        ]
        + (ConfigurationLoader.keys.sorted() + [
            "rules", "root", "nodes", "interval", "series", "commands", "faults", "until", "expect", "fencing", "at",
            "fail_node", "stop_node", "join_node", "trigger", "partition", "heal", "variable", "instance", "values",
            "agents", "status", "duration", "events", "name", "number", "device", "timeout", "mode",
        ]).map { $0 + ": " }

    static let jsonTokens: [String] = [
        "{", "}", "[", "]", ":", ",", "\"", "\\", "\\u0000", "\\ud800", "\\n", "null", "true", "false", "0", "-1",
        "1e19", "1e400", "-1e400", "1.5", "9223372036854775808", "\"\"", "\" \"", "\"x y\"", "\"n1\"", "\"*\"",
        "\"status\"", "\"history\"", "\"resume\"", "\"trigger\"", "\"recovery\"", "\"ha_cmd\"", "\"mon\"",
        "\"wait_event\"", "\"fence\"", "\"fence_confirm\"", "\"timeline\"", "\"run\"", "\"limit\"", "\"cancel_queued\"",
        "\"event\"", "\"state\"",
        "\"node\"", "\"nodes\"", "\"setting\"", "\"action\"", "\"name\"", "\"timeout\"", "\"START\"", "\"off\"",
        "\"1-4,7\"", "\n", " ",
    ]

    func run() {
        let seeds = (try? Corpus.seeds(target).map(\.1)) ?? []
        precondition(!seeds.isEmpty, "no seeds for \(target)")
        let trace = ProcessInfo.processInfo.environment["HAMN_FUZZ_TRACE"] == "1"
        let clock = ContinuousClock()
        var failures = 0
        for iteration in 0..<iterations {
            var rng = SeededGenerator(seed: Self.baseSeed &+ UInt64(iteration) &* 0x9E37_79B9)
            let input = mutate(seeds[rng.below(seeds.count)], seeds: seeds, &rng)
            if trace {
                FileHandle.standardError.write(
                    Data("\(target.rawValue) seed \(Self.baseSeed) iteration \(iteration)\n".utf8))
            }
            var problems: [String] = []
            let elapsed = clock.measure { problems = target.run(input) }
            if elapsed > timeLimit { problems.append("took \(elapsed) (a hang)") }
            guard !problems.isEmpty else { continue }
            failures += 1
            if failures <= 5 {
                Issue.record(
                    """
                    \(target.rawValue), seed \(Self.baseSeed), iteration \(iteration): \(problems.joined(separator: "; "))
                    input: \(String(decoding: input.prefix(2000), as: UTF8.self).debugDescription)
                    """)
            }
        }
        #expect(failures == 0, "\(failures) of \(iterations) inputs broke a property")
    }

    /// One to four mutations of a seed.
    func mutate(_ seed: [UInt8], seeds: [[UInt8]], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = seed
        for _ in 0...rng.below(4) {
            let position = bytes.isEmpty ? 0 : rng.below(bytes.count + 1)
            switch rng.below(9) {
            case 0:
                if position < bytes.count { bytes[position] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1, 2:
                bytes.insert(contentsOf: tokens[rng.below(tokens.count)], at: position)
            case 3:
                let end = min(bytes.count, position + 1 + rng.below(16))
                bytes.removeSubrange(position..<end)
            case 4, 5, 6:
                var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                guard lines.count > 1 else { continue }
                let line = rng.below(lines.count)
                let other = rng.below(lines.count)
                switch rng.below(3) {
                case 0: lines.insert(lines[line], at: other)
                case 1: lines.remove(at: line)
                default: lines.swapAt(line, other)
                }
                bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
            case 7:
                bytes.removeSubrange(min(position, bytes.count)...)
            default:
                let other = seeds[rng.below(seeds.count)]
                let start = other.isEmpty ? 0 : rng.below(other.count)
                let piece = other[start..<min(other.count, start + 1 + rng.below(200))]
                bytes.insert(contentsOf: piece, at: min(position, bytes.count))
            }
        }
        return bytes
    }
}
