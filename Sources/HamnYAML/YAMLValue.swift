import RulesParser
import Yams

/// A YAML document read with positions, so that every error names the file, line and key:
/// what scenario and configuration files need. Unknown keys and wrong types are errors.
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(file):\(line):\(column): error: \(message)" }
}

/// A node of a YAML document and where it is.
public struct YAMLValue {
    let node: Node
    public let file: String
    /// The key path, for messages: `faults[2].at`.
    public let path: String

    public static func parse(_ text: String, file: String) throws(YAMLError) -> YAMLValue? {
        if let (line, column, what) = foreignLineBreak(in: text) {
            throw YAMLError(
                file: file, line: line, column: column,
                message:
                    "\(what): YAML would start a new line there, and positions would not match the lines you see; remove it"
            )
        }
        do {
            guard let node = try Yams.compose(yaml: text) else { return nil }
            return YAMLValue(node: node, file: file, path: "")
        } catch let error as YamlError {
            let (line, column) = position(of: error, in: text)
            throw YAMLError(file: file, line: line, column: column, message: "not valid YAML: \(summary(of: error))")
        } catch {
            throw YAMLError(file: file, line: 1, column: 1, message: "not valid YAML: \(error)")
        }
    }

    /// The first line break other than `\n` and `\r\n` (a lone carriage return, U+0085,
    /// U+2028, U+2029): libyaml counts each as a line, so its positions would name other lines
    /// than an editor shows. Its line and column, counted as everywhere else.
    static func foreignLineBreak(in text: String) -> (line: Int, column: Int, what: String)? {
        var line = 1
        var column = 1
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if previousWasCR, scalar != "\n" {
                return (line, column - 1, "a carriage return that does not end a line (\\r without \\n)")
            }
            previousWasCR = scalar == "\r"
            switch scalar.value {
            case 0x0A:
                line += 1
                column = 1
                continue
            case 0x85, 0x2028, 0x2029:
                return (line, column, "a line break character U+\(String(scalar.value, radix: 16, uppercase: true))")
            default: break
            }
            column += 1
        }
        return previousWasCR ? (line, column - 1, "a carriage return that does not end a line (\\r without \\n)") : nil
    }

    /// Where libyaml (through Yams) found the problem: its mark, or for a reader error (a byte
    /// that may not be in YAML, such as a control character) the line and column of its offset.
    static func position(of error: YamlError, in text: String) -> (line: Int, column: Int) {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return (max(1, mark.line), max(1, mark.column))
        case .duplicatedKeysInMapping(_, let context):
            return (max(1, context.mark.line), max(1, context.mark.column))
        case .reader(_, let offset?, _, _):
            return position(ofCharacter: offset, in: text)
        default:
            return (1, 1)
        }
    }

    /// The line and column (counted in Unicode scalars, as libyaml counts) of the character at
    /// `offset` (in characters); the end of the text when it is past it.
    static func position(ofCharacter offset: Int, in text: String) -> (line: Int, column: Int) {
        let end = text.index(text.startIndex, offsetBy: max(0, offset), limitedBy: text.endIndex) ?? text.endIndex
        var line = 1
        var column = 1
        for scalar in text.unicodeScalars[..<end] {
            if scalar == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return (line, column)
    }

    /// The problem without Yams' copy of the offending line (the position says where it is).
    private static func summary(of error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
            .composer(let context, let problem, _, _):
            guard let context else { return problem }
            return "\(problem) (\(context.text) at \(context.mark.line):\(context.mark.column))"
        case .reader(let problem, _, let value, _):
            return value >= 0 ? "\(problem) (character \(value))" : problem
        case .duplicatedKeysInMapping(let duplicates, _):
            return
                "key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) given twice in this mapping (here and later)"
        default:
            return "\(error)"
        }
    }

    /// A mapping with no keys at line 1 of `file`: what an empty document sets.
    public static func emptyMapping(file: String) -> YAMLValue {
        YAMLValue(node: .mapping(Node.Mapping([])), file: file, path: "")
    }

    public var line: Int { node.mark?.line ?? 1 }
    public var column: Int { node.mark?.column ?? 1 }

    public func error(_ message: String) -> YAMLError {
        YAMLError(file: file, line: line, column: column, message: path.isEmpty ? message : "\(path): \(message)")
    }

    private func child(_ node: Node, _ component: String) -> YAMLValue {
        YAMLValue(node: node, file: file, path: path.isEmpty ? component : path + component)
    }

    /// The entries of a mapping, in order; an error when this is not a mapping or a key is not
    /// one of `allowed`.
    public func mapping(allowed: Set<String>?) throws(YAMLError) -> [(key: String, value: YAMLValue)] {
        try keyedMapping(allowed: allowed).map { ($0.key, $0.value) }
    }

    /// `mapping(allowed:)` with each key's own node (`at`), for messages about the key rather
    /// than its value.
    public func keyedMapping(allowed: Set<String>?) throws(YAMLError) -> [(
        key: String, at: YAMLValue, value: YAMLValue
    )] {
        guard let mapping = node.mapping else { throw error("expected a mapping of keys") }
        var entries: [(key: String, at: YAMLValue, value: YAMLValue)] = []
        var seen = Set<String>()
        for (key, value) in mapping {
            guard let name = key.string else {
                throw YAMLValue(node: key, file: file, path: path).error("keys must be strings")
            }
            let entry = child(value, path.isEmpty ? name : ".\(name)")
            if let allowed, !allowed.contains(name) {
                let keyValue = YAMLValue(node: key, file: file, path: path)
                throw keyValue.error(
                    "unknown key '\(name)' (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            // A set, not a search of the entries: 40,000 keys took 68 s.
            if !seen.insert(name).inserted {
                throw YAMLValue(node: key, file: file, path: path).error("key '\(name)' given twice")
            }
            entries.append((name, YAMLValue(node: key, file: file, path: path), entry))
        }
        return entries
    }

    public var isMapping: Bool { node.mapping != nil }
    public var isSequence: Bool { node.sequence != nil }

    public func sequence() throws(YAMLError) -> [YAMLValue] {
        guard let sequence = node.sequence else { throw error("expected a list") }
        return sequence.enumerated().map { child($1, "[\($0)]") }
    }

    /// A scalar's text; an error for a mapping or a list.
    public func string() throws(YAMLError) -> String {
        guard let scalar = node.scalar else {
            throw error("expected a single value, not a \(isMapping ? "mapping" : "list")")
        }
        return scalar.string
    }

    /// Whether the scalar was written in quotes (so `"50"` stays a string).
    public var isQuoted: Bool {
        guard let scalar = node.scalar else { return false }
        return scalar.style == .singleQuoted || scalar.style == .doubleQuoted
    }

    public func int() throws(YAMLError) -> Int {
        guard let value = Int(try string()) else { throw error("expected a whole number") }
        return value
    }

    public func number() throws(YAMLError) -> Double? {
        guard !isQuoted, let value = Double(try string()), value.isFinite else { return nil }
        return value
    }

    public func bool() throws(YAMLError) -> Bool {
        switch try string() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("expected true or false")
        }
    }

    /// A duration: `10s`, `5m`, `1h`, `250ms`, `1d`, or a number of seconds; at most a year
    /// (`BoundedDuration`, the one bound of every duration the service accepts).
    public func boundedDuration() throws(YAMLError) -> BoundedDuration {
        let text = try string().trimmingBlanks()
        do {
            return try BoundedDuration(parsing: text)
        } catch {
            throw self.error(error.message)
        }
    }

    /// `boundedDuration()` in seconds: a number from 0 to `BoundedDuration.maximumSeconds`.
    public func duration() throws(YAMLError) -> Double {
        try boundedDuration().seconds
    }
}

extension String {
    fileprivate func trimmingBlanks() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
