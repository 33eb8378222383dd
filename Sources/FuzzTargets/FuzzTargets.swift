import Foundation
import HamnConfiguration
import HamnService
import HamnYAML
import RecoveryPrograms
import RulesEngine
import RulesParser
import RulesValidation

/// The inputs the service reads from others, each as a function of bytes that must never crash,
/// hang or misplace an error: what `hamn-fuzz` runs under libFuzzer (`scripts/fuzz TARGET
/// SECONDS`) and what FuzzTargetsTests' mutation fuzzers and regression inputs run in every test
/// run. A broken property is returned as a problem (the tests report it; `hamn-fuzz` stops
/// with it, so that libFuzzer keeps the input as a crash).
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A rules file, validated with its `.rp` files (the seed programs) in memory.
    case rules
    /// A `.rp` file, validated on its own.
    case program
    /// A predicate: parsed, type-checked against a variable chosen by the first byte, compiled
    /// and evaluated on a few samples.
    case predicate
    /// hamn.yaml, through `ConfigurationLoader.parse`.
    case configuration
    /// A scenario file, through `ScenarioParser.parse`.
    case scenario
    /// One control socket request line, through `ControlRequest.decode`.
    case control
    /// One CPG message, through `WireFormat.decode` (and, when it decodes, encoded again).
    case wire

    /// The file name errors must name.
    public var fileName: String {
        switch self {
        case .rules: FuzzTarget.rulesPath
        case .program: "/fuzz/input.rp"
        case .predicate: "predicate"
        case .configuration: "/fuzz/hamn.yaml"
        case .scenario: "/fuzz/scenario.yaml"
        case .control: "request"
        case .wire: "message"
        }
    }

    static let rulesPath = "/fuzz/rules.hacmprd"

    /// Runs one input; the broken properties, empty when all hold.
    public func run(_ bytes: [UInt8]) -> [String] {
        switch self {
        case .rules: return Self.validate(bytes, as: Self.rulesPath)
        case .program: return Self.validate(bytes, as: fileName)
        case .predicate: return Self.predicate(bytes)
        case .configuration:
            do {
                _ = try ConfigurationLoader.parse(
                    String(decoding: bytes, as: UTF8.self), file: fileName, defaults: Self.defaults)
                return []
            } catch {
                return Self.locationProblems(error, bytes, file: fileName)
            }
        case .scenario:
            do {
                _ = try ScenarioParser.parse(String(decoding: bytes, as: UTF8.self), file: fileName)
                return []
            } catch {
                return Self.locationProblems(error, bytes, file: fileName)
            }
        case .control:
            switch ControlRequest.decode(Data(bytes)) {
            case .success(let request):
                // A request that decodes encodes back to one that decodes to the same request.
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                guard let again = try? encoder.encode(request) else { return ["\(request) does not encode"] }
                guard case .success(let decoded) = ControlRequest.decode(again), decoded == request else {
                    return ["\(request) does not decode the same after encoding"]
                }
                return []
            case .failure(let error):
                return error.message.isEmpty ? ["an error without a message"] : []
            }
        case .wire:
            let message: WireMessage
            do {
                message = try WireFormat.decode(bytes)
            } catch {
                return error.description.isEmpty ? ["an error without a message"] : []
            }
            // What decodes encodes to bytes that decode to the same encoding (bytes, not values:
            // a binary body may carry a NaN).
            let encoded = WireFormat.encode(message)
            guard let again = try? WireFormat.decode(encoded) else { return ["\(message) decodes, its encoding not"] }
            return WireFormat.encode(again) == encoded ? [] : ["\(message) does not encode the same after decoding"]
        }
    }

    /// Messages of each body encoding, for the wire target's seed corpus (`hamn-fuzz wire
    /// --write-seeds DIR`).
    public static var wireSeeds: [[UInt8]] {
        let result = CommandResult(
            command: "/bin/true", line: 3, termination: .exited(0), accepted: true, duration: 0.25, outputTail: "ok\n",
            endedAt: 1_700_000_000.5)
        let failed = CommandResult(
            command: "/bin/false", line: 4, termination: .couldNotStart("No such file"), accepted: false,
            duration: 0, outputTail: "")
        let messages: [WireMessage] = [
            .form,
            .cluster(.segmentDone(eventID: 7, segment: 2, results: [result, failed])),
            .cluster(.segmentDone(eventID: 1, segment: 0, results: [])),
            .cluster(.resume(cancelQueued: true)),
            .cluster(.recovery(enabled: false, nodes: ["n1", "n2"])),
            .cluster(.stopServices(node: "n2", mode: .takeover)),
            .cluster(.reloadRules),
        ]
        return messages.map(WireFormat.encode)
    }

    // MARK: Rules and .rp files

    /// The `.rp` files a rules input may name, from the seed corpus's rules.
    static let programs: [String: String] = [
        "/fuzz/rules/paging.rp": "event \"/bin/true --local\" 0 NULL\nother \"/bin/true\" x NULL\nbarrier\n"
            + "all \"/bin/true done\" 0 NULL\n",
        "/fuzz/rules/node_down.rp": "event \"/bin/true\" 0 NULL\nbarrier\nall \"/bin/true\" x NULL\n",
    ]

    static func validate(_ bytes: [UInt8], as path: String) -> [String] {
        var fileSystem = InMemoryFileSystem()
        for (programPath, text) in programs { fileSystem.add(programPath, text) }
        fileSystem.files[path] = (bytes, 0o644, 0)
        let validator = Validator(options: .init(serviceUser: 0), fileSystem: fileSystem)
        var report = validator.validate([path])
        report.diagnostics.removeAll { $0.file != path }
        return report.diagnostics.flatMap { diagnostic in
            positionProblems(
                line: diagnostic.line, column: diagnostic.column, in: bytes, what: diagnostic.formatted)
        }
    }

    // MARK: Predicates

    static let variables = [
        "IBM.PSSP.aixos.PagSp.%totalused", "IBM.PSSP.Prog.pcount", "HAMN.DB2.HADR", "IBM.PSSP.aixos.FS.%totused",
    ]

    static let samples: [SampleValue] = [
        .number(75), .number(-1), .number(0), .string("Peer"),
        .fields([.init("Role", .string("Primary")), .init("State", .string("Peer")), .init("LogGap", .number(12))]),
        .fields([.init("CurPIDCount", .number(0)), .init("PrevPIDCount", .number(2)), .init("CurPIDList", .string(""))]
        ),
    ]

    static func predicate(_ bytes: [UInt8]) -> [String] {
        guard let first = bytes.first else { return [] }
        let text = Array(bytes.dropFirst())
        let variable = Int(first) < variables.count ? VariableCatalogue.builtIn[variables[Int(first)]] : nil
        let parsed: RulesParser.Predicate
        do throws(PredicateSyntaxError) {
            parsed = try PredicateParser.parse(bytes: text)
        } catch {
            return error.offset >= 0 && error.offset <= text.count
                ? [] : ["offset \(error.offset) outside the predicate's \(text.count) bytes: \(error.message)"]
        }
        guard PredicateTypeChecker.check(parsed, variable: variable).isEmpty,
            let compiled = try? CompiledPredicate(parsed, variable: variable)
        else { return [] }
        for (index, sample) in samples.enumerated() {
            _ = compiled.evaluate(sample, previous: samples[(index + 1) % samples.count])
        }
        return []
    }

    // MARK: YAML files

    static let defaults = ConfigurationLoader.Defaults(
        hostName: "n1", rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil, stateDirectory: "/fuzz/state",
        runtimeDirectory: "/fuzz/run")

    static func locationProblems(_ error: any Error, _ bytes: [UInt8], file: String) -> [String] {
        guard let error = error as? YAMLError else { return ["not a YAMLError: \(error)"] }
        guard error.file == file else { return ["names \(error.file), not \(file): \(error)"] }
        // 1:1 is where the content starts, or the place of an error in a file with no content:
        // not a stand-in for "somewhere".
        if error.line == 1, error.column == 1, let start = contentStart(bytes), start != (1, 1) {
            return ["at 1:1, but the content starts at \(start.line):\(start.column): \(error.description.prefix(300))"]
        }
        return positionProblems(line: error.line, column: error.column, in: bytes, what: error.description)
    }

    /// The line and column of the first byte that is not a blank, a line break or in a comment.
    static func contentStart(_ bytes: [UInt8]) -> (line: Int, column: Int)? {
        var line = 1
        var column = 1
        var inComment = false
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "\n"):
                line += 1
                column = 0
                inComment = false
            // A tab or a lone carriage return is an error where it is: not a blank.
            case UInt8(ascii: " "): break
            case UInt8(ascii: "\r") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\n"): break
            case UInt8(ascii: "#"): inComment = true
            default: if !inComment { return (line, column) }
            }
            column += 1
        }
        return nil
    }

    /// A position must be in the file: a line from 1 to one past the last, a column from 1 to one
    /// past the end of that line (counted in bytes, the most a column can be).
    public static func positionProblems(line: Int, column: Int, in bytes: [UInt8], what: String) -> [String] {
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard line >= 1, line <= lines.count + 1 else {
            return ["line \(line) outside 1...\(lines.count + 1): \(what.prefix(300))"]
        }
        let length = line <= lines.count ? lines[line - 1].count : 0
        guard column >= 1, column <= length + 1 else {
            return ["column \(column) outside 1...\(length + 1) of line \(line): \(what.prefix(300))"]
        }
        return []
    }
}
