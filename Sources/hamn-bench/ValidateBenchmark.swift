import ArgumentParser
import RulesValidation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `hamn-bench validate`: how fast the release `hamn-events validate` checks a large, clean
/// rules file end to end (process start, reading, parsing, the `.rp` files, exit), and how much
/// memory it needs for it.
struct ValidateBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Time `hamn-events validate` on a generated rules file.",
        discussion: """
            Generates a rules file of DEFINITIONS event definitions (half cluster events, half \
            Event Management events over the built-in resource variables) naming PROGRAMS .rp \
            files, checks that it validates with no finding at all, then runs the binary RUNS \
            times and prints wall time, throughput (MB = 10^6 bytes) and the child's peak RSS.

            Two corpora (--shape): large, HACMP ES's layout with comment headers and predicates \
            of every kind (about 560 bytes a definition, 1,000 .rp files by default); small, \
            nine lines and nothing else, monitored events with one-line comparisons (about 90 \
            bytes a definition, 50 .rp files by default). Both by default, one report each.

            Targets: >= 100 MB/s, peak RSS < 10x the rules file.
            """
    )

    @Option(help: "Event definitions in the generated rules file.")
    var definitions = 100_000

    @Option(help: "Recovery programs (.rp files) the definitions name, in turn (default: 1000 large, 50 small).")
    var programs: Int?

    @Option(help: "large, small or both.")
    var shape: ShapeChoice = .both

    enum ShapeChoice: String, ExpressibleByArgument, CaseIterable {
        case large, small, both
        var shapes: [ValidationCorpus.Shape] {
            switch self {
            case .large: [.large]
            case .small: [.small]
            case .both: [.large, .small]
            }
        }
    }

    @Option(help: "Timed runs.")
    var runs = 5

    @Option(help: "The hamn-events binary (default: the one beside hamn-bench, same build).")
    var binary: String?

    @Option(help: "Generate into DIR and keep the files, instead of a temporary directory.")
    var keep: String?

    @Option(help: "Seed of the generator: the same seed gives the same files.")
    var seed: UInt64 = 1

    @Option(help: "text or json.")
    var format: ReportFormat = .text

    static let targetMegabytesPerSecond = 100.0
    static let targetRSSMultiple = 10.0

    func validate() throws {
        guard definitions >= 1 else { throw ValidationError("--definitions must be at least 1") }
        guard (programs ?? 1) >= 1 else { throw ValidationError("--programs must be at least 1") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    func run() throws {
        let executable = try hamnEvents()
        var reports: [String] = []
        for shape in shape.shapes {
            let report = try run(shape, executable)
            if format == .text {
                print(report, terminator: "")
                if shape != self.shape.shapes.last { print() }
            } else {
                reports.append(report)
            }
        }
        if format == .json {
            print(
                reports.count == 1
                    ? reports[0] : "{\"benchmark\": \"validate\", \"corpora\": [\(reports.joined(separator: ", "))]}")
        }
    }

    /// One corpus: generated, checked clean, timed; its report.
    private func run(_ shape: ValidationCorpus.Shape, _ executable: String) throws -> String {
        let programs = programs ?? (shape == .large ? 1_000 : 50)
        if let keep { mkdir(keep, 0o755) }  // each corpus in a folder of its own under it
        let directory = try ScratchDirectory.create(keep: keep.map { $0 + "/" + shape.rawValue })
        defer { if keep == nil { ScratchDirectory.remove(directory) } }
        let started = ChildProcess.monotonicSeconds()
        // One line that grows: "generating ... 10% 20% ... 100%".
        writeError(
            "hamn-bench: generating \(definitions) \(shape) definitions and \(programs) .rp files in \(directory):")
        let corpus = try ValidationCorpus.generate(
            in: directory, shape: shape, definitions: definitions, programs: programs, seed: seed
        ) { fraction in
            writeError(" \(Int((fraction * 100).rounded()))%")
        }
        writeError("\n")
        progress(
            "generated \((Double(corpus.rulesBytes) / 1e6).fixed(1)) MB in "
                + "\((ChildProcess.monotonicSeconds() - started).fixed(1)) s")
        let outputs = [directory + "/validate.out", directory + "/validate.err"]

        // The check run also brings the files into the page cache, so that the timed runs
        // measure the validator rather than the disk.
        try checkClean(corpus, executable, outputs)

        var measured: [ChildRun] = []
        for index in 1...runs {
            let run = try ChildProcess.run(
                executable, ["validate", corpus.rulesPath], stdout: outputs[0], stderr: outputs[1])
            guard run.status == 0, fileSize(outputs[0]) == 0 else {
                throw BenchError(
                    "run \(index): \(executable) validate exited with status \(run.status)"
                        + " and wrote \(fileSize(outputs[0])) bytes of findings (rerun with --keep DIR to see them)")
            }
            progress("run \(index)/\(runs): \(run.wallSeconds.fixed(3)) s (CPU \(run.cpuSeconds.fixed(3)) s)")
            measured.append(run)
        }

        let figures = RunFigures(inputBytes: corpus.rulesBytes, definitions: corpus.definitions, runs: measured)
        switch format {
        case .text: return textReport(corpus, executable, figures)
        case .json: return jsonReport(corpus, executable, figures)
        }
    }

    // MARK: Setting up

    /// `--binary`, or `hamn-events` in the directory of this executable.
    private func hamnEvents() throws(BenchError) -> String {
        let path: String
        if let binary {
            path = binary
        } else {
            guard let me = ownExecutable(), let slash = me.lastIndex(of: "/") else {
                throw BenchError("cannot tell where hamn-bench is; give --binary PATH")
            }
            path = String(me[..<slash]) + "/hamn-events"
        }
        guard access(path, X_OK) == 0 else {
            throw BenchError(
                "\(path) is not an executable: build it (swift build -c release --product hamn-events)"
                    + " or give --binary")
        }
        return path
    }

    private func ownExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 { return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        let argument = CommandLine.arguments[0]
        return argument.contains("/") ? argument : nil
    }

    /// Fails, showing the first findings, unless `validate` finds nothing at all.
    private func checkClean(_ corpus: ValidationCorpus, _ executable: String, _ outputs: [String]) throws {
        progress("checking that the corpus validates with no finding")
        let check = try ChildProcess.run(
            executable, ["validate", "--format", "json", corpus.rulesPath], stdout: outputs[0], stderr: outputs[1])
        let expected = "{\"diagnostics\": [], \"definitions\": \(corpus.definitions)}\n"
        let got = readText(outputs[0])
        if check.status == 0, got == expected { return }
        _ = try? ChildProcess.run(executable, ["validate", corpus.rulesPath], stdout: outputs[0], stderr: outputs[1])
        let findings = readText(outputs[0]).split(separator: "\n")
        let summary = readText(outputs[1]).split(separator: "\n").last.map(String.init) ?? ""
        printError("hamn-bench: the generated corpus does not validate clean (status \(check.status)): \(summary)")
        for line in findings.prefix(20) { printError("  " + line) }
        if findings.count > 20 { printError("  ...") }
        printError("expected \(expected)got \(got.prefix(500))")
        throw BenchError("generated corpus is not clean; rerun with --keep DIR to look at it")
    }

    // MARK: Reporting

    private func textReport(_ corpus: ValidationCorpus, _ executable: String, _ figures: RunFigures) -> String {
        func line(_ label: String, _ text: String) -> String {
            label + String(repeating: " ", count: max(1, 14 - label.count)) + text + "\n"
        }
        func mebibytes(_ bytes: Int) -> String { (Double(bytes) / 1024 / 1024).fixed(1) + " MiB" }
        func megabytes(_ bytes: Int) -> String { (Double(bytes) / 1e6).fixed(2) + " MB" }

        var out = line("corpus:", "\(corpus.shape)")
        out += line("binary:", executable)
        out += line(
            "rules file:",
            "\(megabytes(corpus.rulesBytes)) (\(corpus.rulesBytes) bytes), \(corpus.definitions) definitions "
                + "(\(corpus.clusterEvents) cluster, \(corpus.monitoringEvents) Event Management)")
        out += line("programs:", "\(corpus.programPaths.count) .rp files, \(megabytes(corpus.programBytes))")
        for (index, run) in figures.runs.enumerated() {
            out += line(
                "run \(index + 1):",
                "\(run.wallSeconds.fixed(3)) s (CPU \(run.cpuSeconds.fixed(3)) s), "
                    + "peak RSS \(mebibytes(run.peakRSSBytes))")
        }
        for (label, rate) in [("best:", figures.best), ("median:", figures.median)] {
            out += line(
                label,
                "\(rate.megabytesPerSecond.fixed(1)) MB/s, \(Int(rate.definitionsPerSecond.rounded())) definitions/s "
                    + "(\(rate.seconds.fixed(3)) s)")
        }
        out += line("peak RSS:", "\(mebibytes(figures.peakRSSBytes)) = \(figures.rssMultiple.fixed(2))x the rules file")
        let speedMet = figures.median.megabytesPerSecond >= Self.targetMegabytesPerSecond
        let memoryMet = figures.rssMultiple < Self.targetRSSMultiple
        out += line(
            "targets:",
            ">= \(Int(Self.targetMegabytesPerSecond)) MB/s (median): \(speedMet ? "met" : "NOT met"); "
                + "peak RSS < \(Int(Self.targetRSSMultiple))x: \(memoryMet ? "met" : "NOT met")")
        return out
    }

    private func jsonReport(_ corpus: ValidationCorpus, _ executable: String, _ figures: RunFigures) -> String {
        func rate(_ r: RunFigures.Rate) -> String {
            "{\"seconds\": \(r.seconds.fixed(6)), \"megabytesPerSecond\": \(r.megabytesPerSecond.fixed(2)), "
                + "\"definitionsPerSecond\": \(r.definitionsPerSecond.fixed(1))}"
        }
        let runs = figures.runs.map {
            "{\"seconds\": \($0.wallSeconds.fixed(6)), \"cpuSeconds\": \($0.cpuSeconds.fixed(6)), "
                + "\"peakRSSBytes\": \($0.peakRSSBytes)}"
        }
        var out = "{\"benchmark\": \"validate\", \"binary\": \(JSON.string(executable)), "
        out += "\"shape\": \"\(corpus.shape)\", "
        out += "\"rulesBytes\": \(corpus.rulesBytes), \"definitions\": \(corpus.definitions), "
        out += "\"clusterEvents\": \(corpus.clusterEvents), \"monitoringEvents\": \(corpus.monitoringEvents), "
        out += "\"programs\": \(corpus.programPaths.count), \"programBytes\": \(corpus.programBytes), "
        out += "\"runs\": [\(runs.joined(separator: ", "))], "
        out += "\"best\": \(rate(figures.best)), \"median\": \(rate(figures.median)), "
        out += "\"peakRSSBytes\": \(figures.peakRSSBytes), \"rssMultiple\": \(figures.rssMultiple.fixed(3)), "
        out += "\"targets\": {\"megabytesPerSecond\": \(Self.targetMegabytesPerSecond.fixed(0)), "
        out += "\"rssMultiple\": \(Self.targetRSSMultiple.fixed(0)), "
        out += "\"speedMet\": \(figures.median.megabytesPerSecond >= Self.targetMegabytesPerSecond), "
        out += "\"memoryMet\": \(figures.rssMultiple < Self.targetRSSMultiple)}}"
        return out
    }

}

// MARK: Small I/O helpers

/// Progress for the person watching, on standard error so that standard output stays the report.
func progress(_ message: String) {
    printError("hamn-bench: " + message)
}

func printError(_ message: String) {
    writeError(message + "\n")
}

/// Standard error, unbuffered, so that progress shows as it happens.
func writeError(_ text: String) {
    var copy = text
    copy.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func fileSize(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : -1
}

/// A small file's text; empty when it cannot be read.
func readText(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
