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
        do {
            guard let node = try Yams.compose(yaml: text) else { return nil }
            return YAMLValue(node: node, file: file, path: "")
        } catch let error as YamlError {
            throw YAMLError(file: file, line: Self.line(of: error) ?? 1, column: 1, message: "not valid YAML: \(error)")
        } catch {
            throw YAMLError(file: file, line: 1, column: 1, message: "not valid YAML: \(error)")
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
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
        guard let mapping = node.mapping else { throw error("expected a mapping of keys") }
        var entries: [(key: String, value: YAMLValue)] = []
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
            if entries.contains(where: { $0.key == name }) {
                throw YAMLValue(node: key, file: file, path: path).error("key '\(name)' given twice")
            }
            entries.append((name, entry))
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
