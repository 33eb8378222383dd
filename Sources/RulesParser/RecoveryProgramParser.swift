/// Parses `.rp` recovery programs (SPEC section 3):
///
///     relationship "command" expected_status NULL
///     barrier
///
/// `#` comment lines and blank lines are ignored. One error is reported per line: the first.
/// Checks that need the file system (P006, P007, R020) are the validator's.
public enum RecoveryProgramParser {
    public static func parse(_ text: String, file: String) -> (RecoveryProgram, [Diagnostic]) {
        var copy = text
        return copy.withUTF8 { parse(bytes: $0, file: file) }
    }

    public static func parse(bytes: UnsafeBufferPointer<UInt8>, file: String) -> (RecoveryProgram, [Diagnostic]) {
        var steps: [Step] = []
        var diagnostics: [Diagnostic] = []
        for line in SourceLines(bytes: bytes) {
            var scanner = LineScanner(bytes: bytes, line: line)
            if line.hadCarriageReturn {
                diagnostics.append(
                    Diagnostic(
                        file: file, line: line.number, column: line.end - line.start + 1, code: .R017,
                        message: "CRLF line end (stripped)"))
            }
            scanner.skipBlanks()
            if scanner.atEnd || scanner.peek == 0x23 { continue }
            do throws(LineScanner.Failure) {
                steps.append(try scanner.parseStep())
            } catch {
                diagnostics.append(
                    Diagnostic(
                        file: file, line: line.number, column: error.column, code: error.code, message: error.message))
            }
        }
        diagnostics += structureDiagnostics(steps, file: file, hadErrors: !diagnostics.isEmpty)
        return (RecoveryProgram(steps: steps), diagnostics)
    }

    /// P008 and P009: what is wrong with the program as a whole.
    private static func structureDiagnostics(_ steps: [Step], file: String, hadErrors: Bool) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        let hasCommand = steps.contains { if case .command = $0 { true } else { false } }
        if !hasCommand && !hadErrors {
            diagnostics.append(
                Diagnostic(file: file, line: 1, column: 1, code: .P008, message: "recovery program has no command"))
        }
        var previousWasBarrier = true  // the start counts as a barrier
        for (index, step) in steps.enumerated() {
            guard case .barrier(let line) = step else {
                previousWasBarrier = false
                continue
            }
            let why: String? =
                index == 0
                ? "barrier at the start of the recovery program (nothing runs before it)"
                : previousWasBarrier
                    ? "barrier twice in a row (nothing runs between them)"
                    : index == steps.count - 1
                        ? "barrier at the end of the recovery program (nothing runs after it)"
                        : nil
            if let why {
                diagnostics.append(Diagnostic(file: file, line: line, column: 1, code: .P009, message: why))
            }
            previousWasBarrier = true
        }
        return diagnostics
    }
}

private struct LineScanner {
    struct Failure: Error {
        var column: Int
        var code: DiagnosticCode
        var message: String
    }

    let bytes: UnsafeBufferPointer<UInt8>
    let line: SourceLines.Line
    var position: Int

    init(bytes: UnsafeBufferPointer<UInt8>, line: SourceLines.Line) {
        self.bytes = bytes
        self.line = line
        self.position = line.start
    }

    var atEnd: Bool { position >= line.end }
    var peek: UInt8 { bytes[position] }
    var column: Int { position - line.start + 1 }

    mutating func skipBlanks() {
        while position < line.end, isBlank(bytes[position]) { position += 1 }
    }

    /// A run of bytes up to a blank (or a quote, when `stopAtQuote`).
    mutating func word(stopAtQuote: Bool = false) -> String {
        let start = position
        while position < line.end, !isBlank(bytes[position]), !(stopAtQuote && bytes[position] == 0x22) {
            position += 1
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    mutating func parseStep() throws(Failure) -> Step {
        let wordColumn = column
        let first = word(stopAtQuote: true)
        if first.lowercased() == "barrier" {
            skipBlanks()
            if !atEnd {
                throw Failure(
                    column: column, code: .P005,
                    message: "text after barrier: \(rest().quotedForMessage())")
            }
            return .barrier(line: line.number)
        }
        guard let relationship = Relationship(rawValue: first.lowercased()) else {
            throw Failure(
                column: wordColumn, code: .P001,
                message: first.isEmpty
                    ? "missing relationship (expected event, other or all)"
                    : "unknown relationship \(first.quotedForMessage()) (expected event, other or all)")
        }
        skipBlanks()
        guard !atEnd, peek == 0x22 else {
            throw Failure(
                column: column, code: .P002,
                message: atEnd
                    ? "missing command (expected a command in double quotes)" : "command not in double quotes")
        }
        let quoteColumn = column
        position += 1
        var command: [UInt8] = []
        var closed = false
        while position < line.end {
            let b = bytes[position]
            if b == 0x22 {
                closed = true
                position += 1
                break
            }
            if b == 0x5C, position + 1 < line.end, bytes[position + 1] == 0x22 || bytes[position + 1] == 0x5C {
                command.append(bytes[position + 1])
                position += 2
                continue
            }
            command.append(b)
            position += 1
        }
        guard closed else {
            throw Failure(column: quoteColumn, code: .P002, message: "the command's quote is not closed")
        }
        if command.allSatisfy(isBlank) {
            throw Failure(column: quoteColumn, code: .P010, message: "empty command")
        }
        if !atEnd, !isBlank(peek) {
            throw Failure(
                column: column, code: .P003,
                message: "expected a blank, then the expected status, after the command's closing quote")
        }
        skipBlanks()
        let statusColumn = column
        let statusText = word()
        let expected: ExpectedStatus
        if statusText == "x" || statusText == "X" {
            expected = .any
        } else if !statusText.isEmpty, statusText.utf8.count <= 3,
            statusText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let code = UInt8(statusText)
        {
            expected = .exactly(code)
        } else {
            throw Failure(
                column: statusColumn, code: .P003,
                message: statusText.isEmpty
                    ? "missing expected status (an integer 0-255 or x)"
                    : "expected status \(statusText.quotedForMessage()) is not an integer 0-255 or x")
        }
        skipBlanks()
        let nullColumn = column
        let null = word()
        guard null == "NULL" else {
            throw Failure(
                column: nullColumn, code: .P004,
                message: null.isEmpty
                    ? "missing NULL at the end of the command line"
                    : "expected NULL at the end of the command line, found \(null.quotedForMessage())")
        }
        skipBlanks()
        if !atEnd {
            throw Failure(column: column, code: .P005, message: "text after NULL: \(rest().quotedForMessage())")
        }
        return .command(
            CommandStep(
                relationship: relationship, command: String(decoding: command, as: UTF8.self), expected: expected,
                line: line.number, column: quoteColumn + 1))
    }

    func rest() -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[position..<line.end]), as: UTF8.self)
    }
}
