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

    /// The digests are in the wire format (engines compare them on joining) and in journals:
    /// their values must never change. FIPS 180-4's examples and values computed apart.
    @Test("digest values: SHA-256 of each file in hex, and the combined digest over paths and digests")
    func values() throws {
        let directory = NSTemporaryDirectory() + "hamn-digest-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let contents: [String: [UInt8]] = [
            "rules.hacmprd": Array("abc".utf8),
            "p.rp": [],
            "two-blocks": Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
            "bytes": Array(repeating: Array(0...255), count: 40).flatMap { $0 },
        ]
        for (name, bytes) in contents {
            FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data(bytes))
        }
        let text = """
            all "\(directory)/two-blocks" 0 NULL
            all "\(directory)/bytes" 0 NULL
            all "\(directory)/absent" 0 NULL
            """
        let (program, _) = RecoveryProgramParser.parse(text, file: "\(directory)/p.rp")
        let definition = EventDefinition(
            trigger: .init(name: "E", state: 0), displayName: "E", recoveryProgram: "\(directory)/p.rp",
            recoveryType: 2, recoveryLevel: 0, monitoring: nil, line: 1, recoveryProgramLine: 3)
        let configuration = ServiceConfiguration(
            node: ClusterNode(name: "a", number: 1), nodes: [ClusterNode(name: "a", number: 1)],
            rules: "\(directory)/rules.hacmprd", journal: "\(directory)/j", socket: "\(directory)/s")
        let digest = ConfigurationDigest.of(
            configuration, rules: RuleBook([.init(definition: definition, program: program)]))
        #expect(
            digest.files == [
                "\(directory)/rules.hacmprd": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "\(directory)/p.rp": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "\(directory)/two-blocks": "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
                "\(directory)/bytes": "e96760a87768717bcebcfd25ddc7d46b4dbc95a4b0014def080c08539f7d90d0",
                "\(directory)/absent": "missing",
            ])
        // Over "path\0digest\n" of every file, sorted by path.
        let fixed = ConfigurationDigest(files: [
            "/etc/hamn/rules.hacmprd": "51df73a4ed57207c7a6b5ef2e28f113fd05687faaf0be720afecbd52be3ef7f9",
            "/etc/hamn/rules/node_up.rp": "missing",
            "/usr/local/bin/b": "unreadable",
        ])
        #expect(fixed.combined == "5758fdcab62b0d9d790f93c8ced5bcff173fb354c1e69e993f2fa8b33f8caa00")
    }
}
