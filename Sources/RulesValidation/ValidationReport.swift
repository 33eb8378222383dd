import RulesParser

/// What `validate` found, and how to print it.
public struct ValidationReport: Sendable {
    public var diagnostics: [Diagnostic]
    /// Event definitions read, over all rules files.
    public var definitions: Int

    public init(diagnostics: [Diagnostic], definitions: Int) {
        self.diagnostics = diagnostics
        self.definitions = definitions
    }

    public var errorCount: Int { diagnostics.count { $0.severity == .error } }
    public var warningCount: Int { diagnostics.count { $0.severity == .warning } }

    /// 2 when an input could not be read, 1 when there are errors (or warnings, with
    /// `strict`), else 0.
    public func exitCode(strict: Bool) -> Int32 {
        if diagnostics.contains(where: { $0.code.isUnreadableInput }) { return 2 }
        if errorCount > 0 || (strict && warningCount > 0) { return 1 }
        return 0
    }

    /// One `file:line:column: severity: CODE: message` line per finding.
    public var text: String {
        var out = ""
        for diagnostic in diagnostics {
            out += diagnostic.formatted
            out += "\n"
        }
        return out
    }

    public var summary: String {
        func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        return
            "\(plural(definitions, "event definition")): \(plural(errorCount, "error")), \(plural(warningCount, "warning"))"
    }

    /// `{"diagnostics": [{"file", "line", "column", "severity", "code", "message"}], "definitions": N}`
    public var json: String {
        var out = "{\"diagnostics\": ["
        for (index, d) in diagnostics.enumerated() {
            if index > 0 { out += ", " }
            out += "{\"file\": \(JSON.string(d.file)), \"line\": \(d.line), \"column\": \(d.column), "
            out += "\"severity\": \"\(d.severity.rawValue)\", \"code\": \"\(d.code.rawValue)\", "
            out += "\"message\": \(JSON.string(d.message))}"
        }
        out += "], \"definitions\": \(definitions)}"
        return out
    }
}

/// Minimal JSON text writing, for output that must stay fast on large reports.
public enum JSON {
    public static func string(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
