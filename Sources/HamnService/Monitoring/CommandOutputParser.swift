import HamnConfiguration
import RulesEngine

/// Parses the standard output of an administrator-defined variable's command
/// (``ServiceConfiguration/Variable``) by its parser. Pure.
///
/// - `number`: the whole output, trimmed of white space, must be one finite number
///   (`42`, `-3.5`, `1e3`, `0x1F`); anything else (`42 files`, two lines, nothing) is an error,
///   so that a command printing a warning is not read as a value.
/// - `string`: the whole output, trimmed of white space at both ends (may be empty).
/// - `fields`: `key = value` lines (the first `=` splits); blank lines and lines starting with
///   `#` are skipped; any other line without `=`, or a key that is not a name (letters, digits,
///   `_`, not starting with a digit), is an error. A value in double quotes is a string (quotes
///   removed); otherwise a value that parses as a number is a number, else a string. A key given
///   twice keeps its first position and its last value. With declared fields only those are
///   kept, in the declared order: a declared number whose value is not a number is an error; a
///   declared field the output lacks is left out. No field at all is an error.
/// - `db2-hadr`: ``HADRStatusParser``.
public enum CommandOutputParser {
    public static func parse(
        _ output: String, parser: ServiceConfiguration.Variable.Parser,
        fields declared: [(name: String, isNumber: Bool)]? = nil
    ) throws(SamplerError) -> SampleValue {
        switch parser {
        case .number:
            let trimmed = output.monitorTrimmedString
            guard let value = number(trimmed) else {
                throw SamplerError(
                    trimmed.isEmpty
                        ? "the command printed nothing (expected a number)"
                        : "the output is not a number: \(String(trimmed.prefix(120)).quotedForMonitor)")
            }
            return .number(value)
        case .string:
            return .string(output.monitorTrimmedString)
        case .fields:
            return try parseFields(output, declared: declared)
        case .db2Hadr:
            do {
                return try HADRStatusParser.parse(output).value
            } catch {
                throw SamplerError(error.message)
            }
        }
    }

    /// A number as the output gives it: decimal, with an exponent, or `0x` hexadecimal; finite.
    public static func number(_ text: String) -> Double? {
        guard !text.isEmpty, !text.contains(where: \.isWhitespace) else { return nil }
        var body = Substring(text)
        var negative = false
        if body.first == "-" || body.first == "+" {
            negative = body.first == "-"
            body = body.dropFirst()
        }
        if body.hasPrefix("0x") || body.hasPrefix("0X") {
            guard let value = UInt64(body.dropFirst(2), radix: 16) else { return nil }
            return negative ? -Double(value) : Double(value)
        }
        // Double(String) also takes "nan", "inf" and hexadecimal floats: only plain decimals here.
        guard body.first.map({ $0.isASCII && ($0.isNumber || $0 == ".") }) == true,
            body.allSatisfy({
                $0.isASCII && ($0.isNumber || $0 == "." || $0 == "e" || $0 == "E" || $0 == "-" || $0 == "+")
            }),
            let value = Double(text), value.isFinite
        else { return nil }
        return value
    }

    static func parseFields(_ output: String, declared: [(name: String, isNumber: Bool)]?) throws(SamplerError)
        -> SampleValue
    {
        var order: [String] = []
        var values: [String: SampleValue.Scalar] = [:]
        var raw: [String: String] = [:]
        for (index, line) in output.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.monitorTrimmed
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw SamplerError(
                    "line \(index + 1) is not key = value: \(String(trimmed.prefix(120)).quotedForMonitor)")
            }
            let key = String(trimmed[..<equals].monitorTrimmed)
            guard isName(key) else {
                throw SamplerError("line \(index + 1): \(key.quotedForMonitor) is not a field name")
            }
            var value = String(trimmed[trimmed.index(after: equals)...].monitorTrimmed)
            let scalar: SampleValue.Scalar
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
                scalar = .string(value)
            } else if let number = number(value) {
                scalar = .number(number)
            } else {
                scalar = .string(value)
            }
            if values[key] == nil { order.append(key) }
            values[key] = scalar
            raw[key] = value
        }
        var fields: [SampleValue.Field] = []
        if let declared {
            for field in declared {
                guard let text = raw[field.name] else { continue }
                if field.isNumber {
                    guard let number = number(text) else {
                        throw SamplerError(
                            "field \(field.name) is not a number: \(String(text.prefix(120)).quotedForMonitor)")
                    }
                    fields.append(.init(field.name, .number(number)))
                } else {
                    fields.append(.init(field.name, .string(text)))
                }
            }
        } else {
            fields = order.map { .init($0, values[$0]!) }
        }
        guard !fields.isEmpty else {
            throw SamplerError(
                declared == nil
                    ? "the output has no key = value line"
                    : "the output has none of the declared fields (\(declared!.map(\.name).joined(separator: ", ")))")
        }
        return .fields(fields)
    }

    private static func isName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic)
        else { return false }
        return text.unicodeScalars.allSatisfy {
            $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
        }
    }
}
