import Foundation
import RulesParser
import RulesValidation
import Testing

// Fuzzing the validator: random files, truncations and mutations of valid files, and a few
// pathological inputs (megabyte lines, deep nesting, NUL bytes, oversized files). The
// validator runs in-process on an `InMemoryFileSystem`, so thousands of inputs take seconds.
//
// Properties checked for every input: no crash (a crash kills the test process; the signal
// handler below first prints the cases being checked), each run within a time bound, every
// diagnostic names a file that exists, has line >= 1 and column >= 1, a line no further than
// one past the file's last line and a column no further than one past the end of that line,
// and a bounded message. Every 16th input is validated twice and must give the same report.
//
// Replay: every case's generator is seeded from the base seed and its iteration number, both
// printed on failure. HAMN_FUZZ_SEED=N replaces the base seed; HAMN_FUZZ_SCALE=F multiplies
// the iteration counts (e.g. 10 for a longer run).

@Suite("fuzz: validate never crashes and locates every finding")
struct FuzzTests {
    @Test("random bytes and random text")
    func randomFiles() {
        let count = FuzzConfig.iterations(3000)
        var checker = FuzzChecker(name: "random")
        for iteration in 0..<count {
            var rng = FuzzConfig.rng(iteration, stream: 1)
            let kind = iteration % 8
            let bytes: [UInt8] =
                switch kind {
                case 0: FuzzText.randomBytes(&rng, allowNUL: true)
                case 1, 2: FuzzText.randomBytes(&rng, allowNUL: false)
                case 3, 4: FuzzText.printable(&rng)
                default: FuzzText.tokenSoup(&rng)
                }
            // Even kinds go in as a .rp given directly, odd ones as a rules file.
            checker.check(bytes, as: kind % 2 == 0 ? FuzzCorpus.directProgram : FuzzCorpus.rules, iteration: iteration)
        }
        checker.finish(expecting: count)
    }

    @Test("truncations of valid files")
    func truncatedFiles() {
        var checker = FuzzChecker(name: "truncated")
        let rules = FuzzCorpus.rulesBytes
        // Every offset of the rules file, and of each recovery program.
        for length in 0..<rules.count {
            checker.check(Array(rules[..<length]), as: FuzzCorpus.rules, iteration: length)
        }
        // Each truncated .rp both named by the rules file and given directly.
        var iteration = rules.count
        for (path, text) in FuzzCorpus.programs {
            let bytes = Array(text.utf8)
            for length in 0..<bytes.count {
                checker.check(Array(bytes[..<length]), as: path, iteration: iteration, validating: FuzzCorpus.rules)
                checker.check(Array(bytes[..<length]), as: FuzzCorpus.directProgram, iteration: iteration + 1)
                iteration += 2
            }
        }
        checker.finish(expecting: iteration)
    }

    @Test("mutations of valid files")
    func mutatedFiles() {
        let count = FuzzConfig.iterations(3000)
        var checker = FuzzChecker(name: "mutated")
        let programs = FuzzCorpus.programs.map { Array($0.text.utf8) }
        for iteration in 0..<count {
            var rng = FuzzConfig.rng(iteration, stream: 2)
            if iteration % 4 == 3 {
                let bytes = FuzzText.mutate(rng.pick(programs), &rng)
                checker.check(bytes, as: FuzzCorpus.directProgram, iteration: iteration)
            } else {
                checker.check(FuzzText.mutate(FuzzCorpus.rulesBytes, &rng), as: FuzzCorpus.rules, iteration: iteration)
            }
        }
        checker.finish(expecting: count)
    }

    @Test("the base corpus is valid, so mutations start from a clean file")
    func baseCorpusIsClean() {
        let report = FuzzCorpus.validator().validate([FuzzCorpus.rules])
        #expect(report.diagnostics.isEmpty, "\(report.text)")
        #expect(report.definitions == FuzzCorpus.definitionCount)
    }

    // MARK: Pathological inputs

    private static let megabyte = 1 << 20

    @Test("1 MB lines: predicate, event name, instance vector, .rp command")
    func megabyteLines() {
        var checker = FuzzChecker(name: "1MB line", timeLimit: .seconds(30))
        let long = String(repeating: "a", count: Self.megabyte)
        let cases: [(String, [UInt8], [DiagnosticCode]?)] = [
            ("string literal", Array(FuzzCorpus.hadr(predicate: "X.Role == \"\(long)\"").utf8), []),
            // Over the 100,000 positions a regular expression may expand to (issue 16, finding 6).
            ("regular expression", Array(FuzzCorpus.hadr(predicate: "X.Role =~ \"\(long)\"").utf8), [.R015]),
            (
                "blanks",
                Array(FuzzCorpus.hadr(predicate: String(repeating: " ", count: Self.megabyte) + "X.LogGap > 1").utf8),
                []
            ),
            (
                "number",
                Array(FuzzCorpus.hadr(predicate: "X.LogGap > " + String(repeating: "9", count: Self.megabyte)).utf8),
                [.R015]
            ),
            ("name", Array(FuzzCorpus.hadr(predicate: "X.LogGap > 1 && " + long).utf8), [.R015]),
            ("unclosed string", Array(FuzzCorpus.hadr(predicate: "X.Role == \"" + long).utf8), [.R015]),
            ("event name", Array(FuzzCorpus.definition(name: long).utf8), []),
            ("event name with a blank", Array(FuzzCorpus.definition(name: long + " " + long).utf8), [.R003]),
            ("instance vector", Array(FuzzCorpus.hadr(instances: "Database=" + long + ";NodeNum=*").utf8), []),
            (
                "instance vector of ';'",
                Array(FuzzCorpus.hadr(instances: String(repeating: ";", count: 100_000)).utf8), nil
            ),
            ("comment", Array(("#" + long + "\n" + FuzzCorpus.definition(name: "e")).utf8), []),
        ]
        for (index, (what, bytes, expected)) in cases.enumerated() {
            let report = checker.check(bytes, as: FuzzCorpus.rules, iteration: index, note: what)
            if let expected { #expect(Set(report.diagnostics.map(\.code)) == Set(expected), "\(what)") }
        }
        let command = "all \"/bin/true \(long)\" 0 NULL\n"
        let programCases: [(String, String, [DiagnosticCode])] = [
            ("command", command, []),
            ("escapes", "all \"/bin/true " + String(repeating: "\\\"", count: Self.megabyte / 2) + "\" 0 NULL\n", []),
            ("unclosed quote", "all \"/bin/true " + long + "\n", [.P002]),
            ("relationship", long + " \"/bin/true\" 0 NULL\n", [.P001]),
            ("program", "all \"" + long + "\" 0 NULL\n", [.P006]),
        ]
        for (index, (what, text, expected)) in programCases.enumerated() {
            let report = checker.check(
                Array(text.utf8), as: FuzzCorpus.directProgram, iteration: cases.count + index, note: what)
            #expect(report.diagnostics.map(\.code) == expected, "\(what): \(report.diagnostics.map(\.code))")
        }
        checker.finish(expecting: cases.count + programCases.count)
    }

    @Test("100000-deep nesting gives R015 or R016, 100000-long chains are clean, never a crash")
    func deepExpressions() {
        var checker = FuzzChecker(name: "deep", timeLimit: .seconds(10))
        let n = 100_000
        // Flat chains of one precedence are one level (issue 17, item 4): accepted.
        let chains: Set<String> = ["1+1+...", "X > 1 || ...", "1<<1<<..."]
        let predicates: [(String, String)] = [
            ("parentheses", String(repeating: "(", count: n) + "X > 1" + String(repeating: ")", count: n)),
            ("unclosed parentheses", String(repeating: "(", count: n) + "X > 1"),
            ("1+1+...", "X > " + Array(repeating: "1", count: n).joined(separator: "+")),
            ("X > 1 || ...", Array(repeating: "X > 1", count: n).joined(separator: " || ")),
            ("!!!...", String(repeating: "!", count: n) + "X"),
            ("- - -...", "X > " + String(repeating: "- ", count: n) + "1"),
            ("~~~...", String(repeating: "~", count: n) + "X"),
            ("NOT NOT ...", String(repeating: "NOT ", count: n) + "X > 1"),
            ("!~!~...", String(repeating: "!~", count: n) + "X"),
            ("1<<1<<...", "X > " + Array(repeating: "1", count: n).joined(separator: " << ")),
            ("X@P@P...", "X" + String(repeating: "@P", count: n) + " > 1"),
        ]
        var index = 0
        for (what, predicate) in predicates {
            for rearm in [false, true] {
                let text =
                    rearm
                    ? FuzzCorpus.paging(predicate: "X > 90", rearm: predicate)
                    : FuzzCorpus.paging(predicate: predicate, rearm: "X < 60")
                let report = checker.check(Array(text.utf8), as: FuzzCorpus.rules, iteration: index, note: what)
                let codes = report.diagnostics.map(\.code)
                #expect(
                    codes == (chains.contains(what) ? [] : [rearm ? .R016 : .R015]),
                    "\(what)\(rearm ? " (rearm)" : ""): \(report.text.prefix(300))")
                index += 1
            }
        }
        checker.finish(expecting: index)
    }

    @Test("F002: a NUL byte, located")
    func nulByte() throws {
        var checker = FuzzChecker(name: "NUL")
        let report = checker.check(Array("# x\nab\0c\n".utf8), as: FuzzCorpus.rules, iteration: 0)
        let only = try #require(report.diagnostics.count == 1 ? report.diagnostics.first : nil, "\(report.text)")
        #expect((only.code, only.line, only.column) == (.F002, 2, 3))
        #expect(report.exitCode(strict: false) == 2)
        let program = checker.check([0], as: FuzzCorpus.directProgram, iteration: 1)
        #expect(program.diagnostics.map(\.code) == [.F002])
        // Named from a rules file, the .rp's NUL makes it unusable: R009 on the rules file.
        let named = checker.check(
            Array("all \"/bin/true\" 0 NULL\n\0".utf8), as: FuzzCorpus.programs[0].path,
            iteration: 2, validating: FuzzCorpus.rules)
        #expect(named.diagnostics.map(\.code) == [.R009], "\(named.text)")
        checker.finish(expecting: 3)
    }

    @Test("F003: a file over the size limit is refused, not read")
    func oversized() {
        var checker = FuzzChecker(name: "size limit", sizeLimit: 1000)
        let big = Array(repeating: UInt8(ascii: "#"), count: 1001)
        #expect(checker.check(big, as: FuzzCorpus.rules, iteration: 0).diagnostics.map(\.code) == [.F003])
        #expect(checker.check(big, as: FuzzCorpus.directProgram, iteration: 1).diagnostics.map(\.code) == [.F003])
        let exact = Array(repeating: UInt8(ascii: "#"), count: 1000)
        #expect(checker.check(exact, as: FuzzCorpus.rules, iteration: 2).diagnostics.map(\.code) == [.R019])
        checker.finish(expecting: 3)
    }

    /// Found by this fuzzer: fields 7 to 9 were parsed as repaired Strings, so every invalid
    /// byte shifted the columns by two. They are parsed as the file's bytes now.
    @Test("columns stay right after invalid UTF-8 in fields 7 to 9")
    func invalidUTF8Columns() {
        var checker = FuzzChecker(name: "invalid UTF-8")
        let invalid = "\u{1}\u{1}\u{1}"  // placeholders, each made the invalid byte 0xFF below
        let cases: [(String, DiagnosticCode, Int)] = [
            // The fault's true column: 1-based byte offset in the line.
            (FuzzCorpus.hadr(predicate: "X.Role == \"\(invalid)\" >"), .R015, 18),
            (FuzzCorpus.hadr(rearm: "X.Role == \"\(invalid)\" >"), .R016, 18),
            (FuzzCorpus.hadr(instances: "Database=\(invalid);;"), .R013, 14),
        ]
        for (index, (text, code, column)) in cases.enumerated() {
            let bytes = text.utf8.map { $0 == 0x01 ? 0xFF : $0 }
            let report = FuzzCorpus.validator(fileSystemWith: bytes).validate([FuzzCorpus.rules])
            let found = report.diagnostics.first { $0.code == code }
            #expect(found != nil, "\(code) expected: \(report.text)")
            #expect(found?.column == column, "\(code)")
            _ = checker.check(bytes, as: FuzzCorpus.rules, iteration: index)
        }
        checker.finish(expecting: cases.count)
    }

    // MARK: The real command line

    @Test(
        "the CLI survives fuzzed files and prints well-formed findings",
        .enabled(if: FileManager.default.isExecutableFile(atPath: hamnEventsBinary()), "hamn-events is not built"))
    func commandLine() throws {
        let tree = try TempTree()
        var rng = FuzzConfig.rng(0, stream: 3)
        let inputs: [(String, [UInt8])] = [
            ("mutated", FuzzText.mutate(FuzzCorpus.rulesBytes, &rng)),
            ("random text", FuzzText.tokenSoup(&rng)),
            ("deep", Array(FuzzCorpus.paging(predicate: String(repeating: "(", count: 100_000) + "X", rearm: "").utf8)),
            ("NUL", Array("TE_JOIN_NODE\n0\0\n".utf8)),
        ]
        for (index, (what, bytes)) in inputs.enumerated() {
            let path = tree.path("rules\(index).hacmprd")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            chmod(path, 0o644)
            for format in ["text", "json"] {
                let result = try runCLI(["validate", "--format", format, path])
                #expect(
                    [0, 1, 2].contains(result.status),
                    "\(what) (\(format)): exit status \(result.status)\n\(result.err)")
                if format == "json" {
                    #expect(
                        (try? JSONSerialization.jsonObject(with: Data(result.out.utf8))) != nil, "\(what): not JSON")
                    continue
                }
                for line in result.out.split(separator: "\n") {
                    #expect(
                        line.wholeMatch(of: /.+:[1-9][0-9]*:[1-9][0-9]*: (error|warning): [RPF][0-9]{3}: .+/) != nil,
                        "\(what): malformed finding \(line.prefix(200))")
                }
            }
        }
    }
}

// MARK: - Configuration and replay

private enum FuzzConfig {
    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["HAMN_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x4841_4D4E

    static let scale: Double = ProcessInfo.processInfo.environment["HAMN_FUZZ_SCALE"].flatMap { Double($0) } ?? 1

    static func iterations(_ base: Int) -> Int { max(1, Int(Double(base) * scale)) }

    /// The generator of one case: depends only on the seed, the test (stream) and the
    /// iteration, so any case replays alone.
    static func rng(_ iteration: Int, stream: UInt64) -> FuzzRNG {
        FuzzRNG(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) ^ (UInt64(iteration) &* 0x9E37_79B9_7F4A_7C15))
    }
}

/// SplitMix64: small, fast, and the same on every platform, so a seed replays anywhere.
private struct FuzzRNG: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int.random(in: 0..<n, using: &self) }

    mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }
}

// MARK: - Running and checking one case

/// Runs the validator on one input after another and records every broken property with the
/// seed and iteration that replay it.
private struct FuzzChecker {
    let name: String
    let timeLimit: Duration
    let sizeLimit: Int
    private(set) var checked = 0
    private(set) var slowest: Duration = .zero
    private(set) var failures = 0
    private let slot: Int

    init(name: String, timeLimit: Duration = .seconds(2), sizeLimit: Int = 64 << 20) {
        self.name = name
        self.timeLimit = timeLimit
        self.sizeLimit = sizeLimit
        slot = CrashNote.claimSlot()
    }

    /// Puts `bytes` at `path` in the corpus and validates `validating` (by default `path`).
    @discardableResult
    mutating func check(
        _ bytes: [UInt8], as path: String, iteration: Int, validating: String? = nil, note: String = ""
    ) -> ValidationReport {
        let target = validating ?? path
        let label = "fuzz \(name) seed \(FuzzConfig.seed) iteration \(iteration)\(note.isEmpty ? "" : " (\(note))")"
        CrashNote.set(slot, "\(label): \(path) \(bytes.count) bytes")
        defer { CrashNote.set(slot, "") }

        var fileSystem = FuzzCorpus.fileSystem
        fileSystem.files[path] = (bytes, 0o644, 0)
        let validator = FuzzCorpus.validator(fileSystem, sizeLimit: sizeLimit)
        let clock = ContinuousClock()
        var report: ValidationReport!
        let elapsed = clock.measure { report = validator.validate([target]) }
        checked += 1
        slowest = max(slowest, elapsed)

        var problems: [String] = []
        if elapsed > timeLimit { problems.append("took \(elapsed), over \(timeLimit)") }
        problems += Self.locationProblems(report, fileSystem)
        if iteration % 16 == 0, validator.validate([target]).diagnostics != report.diagnostics {
            problems.append("a second run gave a different report")
        }
        if !problems.isEmpty {
            failures += 1
            // The first failures are enough to go on; the count says how many there were.
            if failures <= 20 {
                Issue.record(
                    """
                    \(label): \(problems.joined(separator: "; "))
                    replay: HAMN_FUZZ_SEED=\(FuzzConfig.seed); input \(Self.save(bytes, label: "\(name)-\(iteration)"))
                    """)
            }
        }
        return report
    }

    func finish(expecting count: Int) {
        let failed = failures == 0 ? "" : "; \(failures) FAILED"
        print("fuzz: \(checked) \(name) inputs: no crash\(failed); slowest \(slowest)")
        #expect(checked == count)
    }

    /// What is wrong with where the diagnostics point.
    static func locationProblems(_ report: ValidationReport, _ fileSystem: InMemoryFileSystem) -> [String] {
        var problems: [String] = []
        var lineCache: [String: [Range<Int>]] = [:]
        for d in report.diagnostics {
            let shown = "\(d.code.rawValue) at \(d.line):\(d.column) (\(d.message.prefix(80)))"
            guard let file = fileSystem.files[d.file] else {
                problems.append("\(shown) names \(d.file), which is not there")
                continue
            }
            let lines = lineCache[d.file] ?? Self.lines(file.bytes)
            lineCache[d.file] = lines
            if d.line < 1 || d.column < 1 {
                problems.append("\(shown): line and column must be 1 or more")
            } else if d.line > lines.count + 1 {
                problems.append("\(shown): the file has \(lines.count) lines")
            } else if d.line <= lines.count, d.column > lines[d.line - 1].count + 1 {
                problems.append("\(shown): line \(d.line) has \(lines[d.line - 1].count) bytes")
            }
            if d.message.utf8.count > 1000 {
                problems.append("\(shown): message of \(d.message.utf8.count) bytes")
            }
        }
        return problems
    }

    /// The byte range of each line, without its `\n` (a `\r` counts: R017 points at it).
    static func lines(_ bytes: [UInt8]) -> [Range<Int>] {
        var lines: [Range<Int>] = []
        var start = 0
        for (index, byte) in bytes.enumerated() where byte == 0x0A {
            lines.append(start..<index)
            start = index + 1
        }
        if start < bytes.count { lines.append(start..<bytes.count) }
        return lines
    }

    /// Writes a failing input where it can be replayed through the CLI.
    static func save(_ bytes: [UInt8], label: String) -> String {
        let path = NSTemporaryDirectory() + "hamn-fuzz-\(FuzzConfig.seed)-\(label).bin"
        return (try? Data(bytes).write(to: URL(fileURLWithPath: path))) != nil ? "saved in \(path)" : "not saved"
    }
}

// MARK: - The valid corpus the fuzzer starts from

private enum FuzzCorpus {
    static let rules = "/etc/hamn/rules/rules.hacmprd"
    /// A recovery program validated directly (`hamn-events validate x.rp`).
    static let directProgram = "/etc/hamn/rules/direct.rp"

    static let programs: [(path: String, text: String)] = [
        (
            "/etc/hamn/rules/node_up.rp",
            """
            # node_up: the joining node acquires its resources, the others make room.
            event "node_up_local" 0 NULL
            other "node_up_remote" 0 NULL
            barrier
            event "/usr/bin/env HAMN_STEP=2 /bin/true" 0 NULL
            all "/bin/sh -c \\"exit 0\\"" x NULL

            """
        ),
        ("/etc/hamn/rules/db2_paging.rp", "all \"/bin/true --paging\" 0 NULL\n"),
        (
            "/etc/hamn/rules/hadr.rp",
            """
            event "/bin/sh -c \\"db2 takeover hadr on db XCATDB\\"" X NULL
            barrier
            all "/bin/true" 0 NULL
            barrier
            other "/usr/bin/env A=1 B=2 /bin/true" 255 NULL

            """
        ),
    ]

    static let fieldComments = [
        "# 6) Resource variable - only used for event management events",
        "# 7) Instance vector - only used for event management events",
        "# 8) Predicate - only used for event management events",
        "# 9) Rearm predicate - only used for event management events",
    ]

    /// One definition in the HACMP ES layout (SPEC section 2).
    static func definition(
        name: String, state: Int = 0, program: String = "/etc/hamn/rules/node_up.rp", variable: String = "",
        instances: String = "", predicate: String = "", rearm: String = ""
    ) -> String {
        var out = "##### Beginning of the Event Definition: \(name.prefix(40))\n#\n"
        out += "\(name)\n\(state)\n\(program)\n2\n0\n"
        for (comment, field) in zip(fieldComments, [variable, instances, predicate, rearm]) {
            out += comment + "\n" + field + "\n"
        }
        return out + "###### End of the Event Definition: \(name.prefix(40))\n"
    }

    static func hadr(
        instances: String = "Database=XCATDB;NodeNum=*", predicate: String = "X.State != \"Peer\"",
        rearm: String = "X.State == \"Peer\""
    ) -> String {
        definition(
            name: "hadr", program: "/etc/hamn/rules/hadr.rp", variable: "HAMN.DB2.HADR", instances: instances,
            predicate: predicate, rearm: rearm)
    }

    static func paging(predicate: String, rearm: String) -> String {
        definition(
            name: "paging", program: "/etc/hamn/rules/db2_paging.rp", variable: "IBM.PSSP.aixos.PagSp.%totalused",
            instances: "NodeNum=*", predicate: predicate, rearm: rearm)
    }

    /// Monitoring definitions covering the predicate language: arithmetic, hex, decimals,
    /// lists, regular expressions, LIKE, the aliases, previous values, fields, qualifiers.
    static let monitoring: [(variable: String, instances: String, predicate: String, rearm: String)] = [
        ("IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > 70", "X < 60"),
        ("IBM.PSSP.aixos.PagSp.%totalfree", "NodeNum=3", "X < 10 && X@P >= 10", ""),
        ("IBM.PSSP.aixos.FS.%totused", "NodeNum=*;Name=/var", "X * 100 / 128 > 0x50 __QUAL_COUNT(3, 5)", "X <= 60.5"),
        ("IBM.PSSP.aixos.Mem.Real.%free", "NodeNum=*", "X IN {0, 1, 2} || X NOT IN {50, 60} AND X < 5", "X > 20"),
        ("IBM.PSSP.aixos.CPU.glidle", "NodeNum=*", "!(X >= 5) && ~X != 0 | X % 2 == 1", "-X < -20"),
        ("IBM.PSSP.Prog.pcount", "ProgName=nfsd;UserName=root;NodeNum=*", "X@0 < X@1", "X@0 == X@1"),
        (
            "IBM.PSSP.Prog.pcount", "ProgName=db2sysc;UserName=db2inst1;NodeNum=*",
            "X.CurPIDCount == 0 __QUAL_RATE(2, 60)",
            "X@2 =~ \"^[0-9]+( [0-9]+)*$\""
        ),
        (
            "HAMN.DB2.HADR", "Database=XCATDB;NodeNum=*",
            "X.Role != \"Primary\" && X.Role != \"Standby\" || X.State != \"Peer\"", "X.State == \"Peer\""
        ),
        (
            "HAMN.DB2.HADR", "Database=SAMPLE;NodeNum=2",
            "X.SyncMode LIKE \"NEAR%\" AND X.ConnectStatus NOT LIKE \"Conn%\"",
            "X.State |< {\"Peer\", \"RemoteCatchup\"}"
        ),
        (
            "HAMN.DB2.HADR", "NodeNum=*;Database=BLUDB", "X.HeartBeatsMissed@P >= 1 && X@5 >> 4 > 0x1F",
            "X.State =~ \"^(Peer|RemoteCatchup)$\" && X.LogGap < 1e3"
        ),
        (
            "HAMN.File.Age", "Name=/etc/xcat/.sync-stamp;NodeNum=*", "X > 3600 && __QUAL_COUNT(2, 2)",
            "X <> 0 AND X < 60"
        ),
    ]

    static let text: String = {
        var out = "# rules.hacmprd for the fuzzer: every field kind, every predicate form.\n#\n"
        for (trigger, state) in [("TE_JOIN_NODE", 0), ("TE_FAIL_NODE", 0), ("TE_FAIL_NODE", 2), ("TE_EVENT_ERROR", 0)] {
            out += definition(name: trigger, state: state)
        }
        out += definition(name: "site_down", state: 1, program: "/etc/hamn/rules/hadr.rp")
        for (index, m) in monitoring.enumerated() {
            let program = programs[index % programs.count].path
            out += definition(
                name: "em_\(index)", program: program, variable: m.variable, instances: m.instances,
                predicate: m.predicate, rearm: m.rearm)
        }
        return out
    }()

    static let rulesBytes = Array(text.utf8)
    static let definitionCount = 5 + monitoring.count

    /// The rules file, its programs, the commands they run and one bundled event script.
    static let fileSystem: InMemoryFileSystem = {
        var fs = InMemoryFileSystem()
        fs.add(rules, text)
        for (path, text) in programs { fs.add(path, text) }
        for command in ["/bin/true", "/bin/sh", "/usr/bin/env"] { fs.add(command, "", mode: 0o755) }
        for script in ["node_up_local", "node_up_remote"] {
            fs.add("/etc/hamn/rules/events/\(script)", "", mode: 0o755)
        }
        return fs
    }()

    static func validator(fileSystemWith rulesBytes: [UInt8]) -> Validator {
        var files = fileSystem
        files.files[rules] = (rulesBytes, 0o644, 0)
        return validator(files)
    }

    static func validator(_ fileSystem: InMemoryFileSystem = fileSystem, sizeLimit: Int = 64 << 20) -> Validator {
        Validator(options: .init(serviceUser: 0, sizeLimit: sizeLimit), fileSystem: fileSystem)
    }
}

// MARK: - Generating and mutating inputs

private enum FuzzText {
    /// Pieces that mean something to one of the parsers, for random text and insertions.
    static let tokens: [String] = [
        "X", "X@P", "X@0", "X@1", "X.Role", "X.State@P", "X.", "@", "@P", "(", ")", "{", "}", ",", ";", "=", "==", "!=",
        "<>", "<", "<=", ">", ">=", "<<", ">>", "=~", "!~", "|<", "><", "?=", "!?", "&", "&&", "|", "||", "^", "!", "~",
        "-", "+", "*", "/", "%", "IN", "NOT", "LIKE", "AND", "OR", "not", "__QUAL_COUNT(3, 5)", "__QUAL_RATE(",
        "__QUAL_COUNT", "0x", "0xFFFFFFFFFFFFFFFFF", "1e308", "1e999", ".5", "1.", "99999999999999999999", "0", "70",
        "\"", "\"Peer\"", "\"[\"", "\"(\"", "\"a\\\"b\"", "\\", "NodeNum=*", "Name=/var", "ProgName=nfsd", "*",
        "IBM.PSSP.aixos.PagSp.%totalused", "HAMN.DB2.HADR", "IBM.PSSP.Prog.pcount", "TE_JOIN_NODE", "TE_FAIL_NODE",
        "/etc/hamn/rules/node_up.rp", "/etc/hamn/rules/missing.rp", "relative.rp", "event", "other", "all", "barrier",
        "BARRIER", "NULL", "x", "256", "-1", "\"/bin/true\"", "\"node_up_local\"", "\"./run\"", "\"\"", "#",
        "##### Beginning of the Event Definition: ",
        " ", "  ", "\t", "\u{0B}", "\n", "\n", "\n", "\r\n", "\r", "é", "\u{FFFD}", "\u{1F600}",
    ]

    /// Bytes that are not valid UTF-8 on their own.
    static let invalidUTF8: [[UInt8]] = [
        [0xFF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80],
    ]

    static func randomBytes(_ rng: inout FuzzRNG, allowNUL: Bool) -> [UInt8] {
        (0..<rng.below(2048)).map { _ in
            allowNUL ? UInt8.random(in: 0...255, using: &rng) : UInt8.random(in: 1...255, using: &rng)
        }
    }

    /// Printable ASCII, heavy in newlines, blanks, quotes and operator characters.
    static func printable(_ rng: inout FuzzRNG) -> [UInt8] {
        let alphabet = Array("\n\n\n\n  \tXX\"\"#()@.{};=*<>!~&|+-/%^?,0123456789abcxyzNULPIAE_/\\".utf8)
        let common = Array(32...126).map(UInt8.init)
        return (0..<rng.below(3000)).map { _ in rng.below(3) == 0 ? rng.pick(common) : rng.pick(alphabet) }
    }

    /// Lines of tokens, nine-line definitions more often than not, so that inputs get past the
    /// field layout into the predicate, instance vector and .rp parsers.
    static func tokenSoup(_ rng: inout FuzzRNG) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<(1 + rng.below(40)) {
            for _ in 0..<rng.below(8) {
                out += rng.below(30) == 0 ? rng.pick(invalidUTF8) : Array(rng.pick(tokens).utf8)
                if rng.below(2) == 0 { out.append(0x20) }
            }
            out.append(0x0A)
        }
        return out
    }

    /// One to four mutations: byte flips, insertions of tokens or invalid UTF-8, deletions,
    /// and whole lines duplicated, dropped or swapped. Half of them land on a line that is not
    /// a comment, where a random offset would mostly hit comments.
    static func mutate(_ original: [UInt8], _ rng: inout FuzzRNG) -> [UInt8] {
        var bytes = original
        for _ in 0..<(1 + rng.below(4)) {
            let at = rng.below(2) == 0 ? offsetInField(bytes, &rng) : bytes.isEmpty ? 0 : rng.below(bytes.count)
            switch rng.below(8) {
            case 0 where at < bytes.count: bytes[at] ^= UInt8(1) << UInt8(rng.below(8))
            case 1 where at < bytes.count: bytes[at] = UInt8.random(in: 1...255, using: &rng)
            case 2, 3: bytes.insert(contentsOf: Array(rng.pick(tokens).utf8), at: at)
            case 4: bytes.insert(contentsOf: rng.pick(invalidUTF8), at: at)
            case 5: bytes.removeSubrange(at..<min(bytes.count, at + 1 + rng.below(16)))
            default:
                var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
                guard !lines.isEmpty else { continue }
                let i = rng.below(lines.count)
                let j = rng.below(lines.count)
                switch rng.below(3) {
                case 0: lines.insert(lines[i], at: j)
                case 1: lines.remove(at: i)
                default: lines.swapAt(i, j)
                }
                bytes = Array(lines.joined(separator: [0x0A]))
            }
        }
        return bytes
    }
}

extension FuzzText {
    /// A random offset within (or at the end of) a random line that is not a comment.
    static func offsetInField(_ bytes: [UInt8], _ rng: inout FuzzRNG) -> Int {
        var fields: [Range<Int>] = []
        var start = 0
        for index in 0...bytes.count where index == bytes.count || bytes[index] == 0x0A {
            if start == index || bytes[start] != UInt8(ascii: "#") { fields.append(start..<index) }
            start = index + 1
        }
        guard !fields.isEmpty else { return 0 }
        let field = rng.pick(fields)
        return field.lowerBound + rng.below(field.count + 1)
    }
}

// MARK: - Saying which case crashed

/// A crash kills the test process before any `Issue` is recorded, so each running checker
/// keeps a note of its current case in memory the signal handler can print without
/// allocating; the handler then hands the signal back to the previous handler (the Swift
/// runtime's backtracer).
private enum CrashNote {
    static let slots = 16
    static let slotSize = 512
    static let signals = [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT]
    static let header = "\nfuzz: crashed; the fuzz cases being checked at that moment:\n"

    /// The header, then one note per slot; all NUL-terminated C strings.
    nonisolated(unsafe) static let notes: UnsafeMutablePointer<CChar> = {
        let count = header.utf8.count + 1 + slots * slotSize
        let notes = UnsafeMutablePointer<CChar>.allocate(capacity: count)
        notes.initialize(repeating: 0, count: count)
        _ = header.withCString { strcpy(notes, $0) }
        install()
        return notes
    }()
    /// The handlers found, by signal number, to hand each signal back to.
    nonisolated(unsafe) static let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
    static let lock = NSLock()
    nonisolated(unsafe) static var nextSlot = 0

    static func note(_ slot: Int) -> UnsafeMutablePointer<CChar> {
        notes + header.utf8.count + 1 + slot * slotSize
    }

    static func claimSlot() -> Int {
        _ = notes
        useAlternateStack()
        return lock.withLock {
            defer { nextSlot += 1 }
            return nextSlot % slots
        }
    }

    static func set(_ slot: Int, _ text: String) {
        let base = note(slot)
        base.update(repeating: 0, count: slotSize)
        var bytes = Array(text.utf8.prefix(slotSize - 2))
        if !bytes.isEmpty { bytes.append(0x0A) }
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(base).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    private static func install() {
        for signal in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                // Only write(2) and sigaction(2) here: the process is in an unknown state.
                _ = write(2, CrashNote.notes, strlen(CrashNote.notes))
                for slot in 0..<CrashNote.slots {
                    _ = write(2, CrashNote.note(slot), strlen(CrashNote.note(slot)))
                }
                sigaction(signal, CrashNote.previous + Int(signal), nil)
                // A fault returns to the faulting instruction, which faults again under the
                // previous handler; a raised signal must be raised again.
                if signal == SIGABRT || signal == SIGTRAP { raise(signal) }
            }
            action.sa_flags = Int32(SA_ONSTACK)
            sigaction(signal, &action, previous + Int(signal))
        }
    }

    /// A stack overflow leaves no stack to run the handler on: give this thread another one.
    private static func useAlternateStack() {
        var current = stack_t()
        sigaltstack(nil, &current)
        if current.ss_flags & Int32(SS_DISABLE) == 0, current.ss_sp != nil { return }
        let size = 1 << 16
        var stack = stack_t(
            ss_sp: UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16), ss_flags: 0, ss_size: size)
        sigaltstack(&stack, nil)
    }
}
