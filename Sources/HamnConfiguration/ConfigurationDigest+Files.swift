import Foundation
import RulesEngine

extension ConfigurationDigest {
    /// The digest of the rules of `configuration`. `.rp` paths are read under `rules_root` when
    /// it is set; command files from the real file system, as they run.
    public static func of(_ configuration: ServiceConfiguration, rules: RuleBook) -> ConfigurationDigest {
        var paths: Set<String> = [configuration.rules]
        let root = configuration.rulesRoot.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        let scripts = configuration.eventScriptDirectory
        for rule in rules.rules.values {
            let program = rule.definition.recoveryProgram
            paths.insert(root.map { $0 + program } ?? program)
            for segment in rule.program.segments {
                for step in segment {
                    // The program the validator checks (R020) and the executor starts: after
                    // any `NAME=value` assignments, quotes removed.
                    guard let program = step.program, !program.isEmpty else { continue }
                    if program.hasPrefix("/") {
                        paths.insert(program)
                    } else if !program.contains("/"), FileManager.default.fileExists(atPath: scripts + "/" + program) {
                        paths.insert(scripts + "/" + program)
                    }
                }
            }
        }
        var files: [String: String] = [:]
        for path in paths {
            if let data = FileManager.default.contents(atPath: path) {
                files[path] = sha256Hex(data)
            } else {
                files[path] = FileManager.default.fileExists(atPath: path) ? "unreadable" : "missing"
            }
        }
        return ConfigurationDigest(files: files)
    }
}
