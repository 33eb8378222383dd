/// Text that reaches an administrator's terminal (`status`, `history`, `mon`, the command
/// line's messages) with its control characters shown as escapes: an event name, a command's
/// output or a monitored value may hold anything, and a terminal escape in them must not
/// reach the terminal (to recolour it, retitle it, move the cursor or forge a line).
///
/// Escaped: the C0 controls and DEL (`\t`, `\r`, `\n`, else `\x1b`), the C1 controls
/// (`\u009b`), and the bidirectional overrides and isolates (`\u202e`, "Trojan Source").
/// A backslash is left as it is: the escapes are for reading, not for a parser.
public enum TerminalText {
    /// One line: every control character escaped, line breaks included (so a line break in
    /// a name cannot start a forged line).
    public static func line(_ text: String) -> String {
        escaped(text, keepingLineBreaks: false)
    }

    /// Several lines: as `line`, but line breaks and tabs are kept.
    public static func lines(_ text: String) -> String {
        escaped(text, keepingLineBreaks: true)
    }

    /// A JSON document for a terminal: JSON already escapes C0 controls; the C1 controls and
    /// bidirectional overrides, which it leaves raw, become `\uXXXX` (the same JSON value).
    public static func json(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if needsEscape(scalar), scalar.value >= 0x20 {
                result.append(contentsOf: unicodeEscape(scalar).unicodeScalars)
            } else {
                result.append(scalar)
            }
        }
        return String(result)
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    private static func escaped(_ text: String, keepingLineBreaks: Bool) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n" where keepingLineBreaks, "\t" where keepingLineBreaks: result.unicodeScalars.append(scalar)
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            default:
                result += scalar.value < 0x80 ? "\\x" + hex(scalar.value, digits: 2) : unicodeEscape(scalar)
            }
        }
        return result
    }

    private static func unicodeEscape(_ scalar: Unicode.Scalar) -> String {
        "\\u" + hex(scalar.value, digits: 4)
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
