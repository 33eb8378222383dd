/// How serious a finding is. Errors make `validate` exit 1; warnings do so only with `--strict`.
public enum Severity: String, Sendable, Hashable, Codable {
    case error
    case warning
}

/// The stable diagnostic codes of SPEC section 8, plus the `F` codes for input that cannot
/// be read as a rules or recovery program file at all (see README, "Diagnostics").
// swift-format-ignore: AlwaysUseLowerCamelCase
// The codes are the specification's, as users read and grep them.
public enum DiagnosticCode: String, Sendable, Hashable, CaseIterable, Codable {
    case R001, R002, R003, R005, R006, R007, R008, R009
    case R011, R012, R013, R014, R015, R016, R017, R018, R019
    case R020, R021, R022, R023, R024
    case P001, P002, P003, P004, P005, P006, P007, P008, P009, P010, P011
    /// The file cannot be read (missing, a directory, permission denied).
    case F001
    /// The file is not text (a NUL byte).
    case F002
    /// The file is larger than the validator accepts.
    case F003

    /// The severity the code always has.
    public var severity: Severity {
        switch self {
        case .R006, .R014, .R017, .R018, .R019, .R021, .R022, .R024, .P009, .P011: .warning
        default: .error
        }
    }

    /// Input that could not be read at all: `validate` exits 2, not 1.
    public var isUnreadableInput: Bool {
        switch self {
        case .F001, .F002, .F003: true
        default: false
        }
    }
}

/// One finding, located the way compilers locate theirs: 1-based line and column.
public struct Diagnostic: Sendable, Hashable, Codable {
    public var file: String
    public var line: Int
    public var column: Int
    public var code: DiagnosticCode
    public var message: String

    public var severity: Severity { code.severity }

    public init(file: String, line: Int, column: Int, code: DiagnosticCode, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.code = code
        self.message = message
    }

    /// `file:line:column: severity: CODE: message`
    public var formatted: String {
        "\(file):\(line):\(column): \(severity.rawValue): \(code.rawValue): \(message)"
    }
}

extension String {
    /// A piece of user text for a message: at most `limit` characters, control characters shown
    /// escaped, so that a megabyte line or a stray escape sequence never floods a terminal.
    package func quotedForMessage(limit: Int = 40) -> String {
        var out = ""
        var count = 0
        for scalar in unicodeScalars {
            if count == limit {
                out += "..."
                break
            }
            switch scalar {
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\x" + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return "'" + out + "'"
    }
}
