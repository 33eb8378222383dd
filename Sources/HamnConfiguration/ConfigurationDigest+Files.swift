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
                    guard let word = step.command.split(whereSeparator: { $0 == " " || $0 == "\t" }).first else { continue }
                    let command = String(word)
                    if command.hasPrefix("/") {
                        paths.insert(command)
                    } else if !command.contains("/"), FileManager.default.fileExists(atPath: scripts + "/" + command) {
                        paths.insert(scripts + "/" + command)
                    }
                }
            }
        }
        var files: [String: String] = [:]
        for path in paths {
            if let data = FileManager.default.contents(atPath: path) {
                files[path] = SHA256.hex(Array(data))
            } else {
                files[path] = FileManager.default.fileExists(atPath: path) ? "unreadable" : "missing"
            }
        }
        return ConfigurationDigest(files: files)
    }
}
