import Foundation
import RulesParser
import Testing

/// A finding as tests name it: code, line, column.
struct Finding: Hashable, CustomStringConvertible {
    var code: DiagnosticCode
    var line: Int
    var column: Int

    init(_ code: DiagnosticCode, _ line: Int, _ column: Int) {
        self.code = code
        self.line = line
        self.column = column
    }

    var description: String { "\(code.rawValue)@\(line):\(column)" }
}

func findings(_ diagnostics: [Diagnostic]) -> [Finding] {
    diagnostics.map { Finding($0.code, $0.line, $0.column) }
        .sorted { ($0.line, $0.column, $0.code.rawValue) < ($1.line, $1.column, $1.code.rawValue) }
}

func parseRules(_ text: String, catalogue: VariableCatalogue = .builtIn) -> RulesFile {
    RulesFileParser(catalogue: catalogue).parse(text, file: "rules.hacmprd")
}

/// Nine fields, one per line, joined; `nil` fields are empty lines.
func definition(
    _ name: String = "my_event", _ state: String = "0", _ program: String = "/etc/hamn/rules/my.rp",
    _ type: String = "2", _ level: String = "0", _ variable: String = "", _ instances: String = "",
    _ predicate: String = "", _ rearm: String = ""
) -> String {
    [name, state, program, type, level, variable, instances, predicate, rearm].joined(separator: "\n") + "\n"
}

func fixture(_ name: String) throws -> String {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    return try String(contentsOf: url, encoding: .utf8)
}
