import Foundation
import HamnConfiguration
import RulesEngine
import RulesParser
import Testing

@Suite("configuration digest")
struct ConfigurationDigestTests {
    @Test("the command files are the programs the commands start: after assignments, quotes removed")
    func commandFiles() throws {
        let directory = NSTemporaryDirectory() + "hamn-digest-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory + "/events", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["plain", "assigned", "quoted", "events/bundled"] {
            try "#!/bin/sh\necho \(name)\n".write(toFile: "\(directory)/\(name)", atomically: true, encoding: .utf8)
        }
        let text = """
            all "\(directory)/plain arg" 0 NULL
            all "FOO=1 BAR=2 \(directory)/assigned arg" 0 NULL
            all "'\(directory)/quoted' arg" 0 NULL
            all "bundled arg" 0 NULL
            """
        let (program, diagnostics) = RecoveryProgramParser.parse(text, file: "\(directory)/p.rp")
        #expect(diagnostics.allSatisfy { $0.severity == .warning }, "\(diagnostics)")
        let definition = EventDefinition(
            trigger: .init(name: "E", state: 0), displayName: "E", recoveryProgram: "\(directory)/p.rp",
            recoveryType: 2, recoveryLevel: 0, monitoring: nil, line: 1, recoveryProgramLine: 3)
        let configuration = ServiceConfiguration(
            node: ClusterNode(name: "a", number: 1), nodes: [ClusterNode(name: "a", number: 1)],
            rules: "\(directory)/rules.hacmprd", journal: "\(directory)/j", socket: "\(directory)/s")
        let digest = ConfigurationDigest.of(
            configuration, rules: RuleBook([.init(definition: definition, program: program)]))
        for name in ["plain", "assigned", "quoted", "events/bundled"] {
            #expect(digest.files["\(directory)/\(name)"]?.count == 64, "\(name) is not in the digest: \(digest.files)")
        }
        #expect(!digest.files.keys.contains { $0.contains("FOO=") })
    }
}
