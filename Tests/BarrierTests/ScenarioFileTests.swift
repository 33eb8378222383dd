import Foundation
import HamnYAML
import RulesEngine
import Testing

/// The scenarios kept in `scenarios/`, run through the same runner as `hamn-events test`.
@Suite("scenario files")
struct ScenarioFileTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scenarios")

    static var files: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map { directory.appendingPathComponent($0).path }
    }

    @Test("the repository's scenarios are there")
    func present() {
        #expect(Self.files.count >= 6)
    }

    @Test("each scenario meets its expectations", arguments: files)
    func scenario(_ path: String) throws {
        let run = try ScenarioRunner.run(try ScenarioRunner.load(path))
        let check = ScenarioCheck(run)
        #expect(check.passed, "\(path):\n\(check.differences.joined(separator: "\n"))")
    }

    @Test("a wrong expectation fails, with a diff")
    func mismatch() throws {
        var scenario = try ScenarioRunner.load(Self.directory.appendingPathComponent("priorities.yaml").path)
        scenario.expect?.events?.swapAt(1, 2)
        scenario.expect?.absentCommands.append(.init(node: "n2", command: "/etc/hamn/bin/backup"))
        scenario.expect?.commands.append(
            .init(event: "backup", node: "n1", segment: 3, command: "/etc/hamn/bin/backup"))
        let check = ScenarioCheck(try ScenarioRunner.run(scenario))
        #expect(!check.passed)
        #expect(check.differences.contains("events differ (- expected, + actual):"))
        #expect(check.differences.contains("  - TE_JOIN_NODE state 0 node n3 completed"))
        #expect(check.differences.contains("  + TE_FAIL_NODE state 0 node n3 completed"))
        #expect(check.differences.contains { $0.hasPrefix("command \"/etc/hamn/bin/backup\" ran on n2 at 0s") })
        #expect(
            check.differences.contains {
                $0.hasPrefix("expected command \"/etc/hamn/bin/backup\" on n1 for backup segment 3 did not run")
            })
    }

    @Test("scenario files with unknown keys or bad values are refused with their line")
    func malformed() {
        let cases: [(String, String)] = [
            ("rules: r\nnodes: [a]\nspeed: 3\n", "x.yaml:3:1: error: unknown key 'speed'"),
            ("rules: r\nnodes: [a]\ninterval: fast\n", "x.yaml:3:11: error: interval: expected a duration"),
            ("rules: r\nnodes: [a]\nfaults:\n  - {at: 1s, fail_node: b}\n", "x.yaml:4:25: error: faults: no node 'b'"),
            ("rules: r\nnodes: [a]\nfaults:\n  - {at: 1s}\n", "x.yaml:4:5: error: faults[0]: a fault is one of"),
            ("nodes: [a]\n", "x.yaml:1:1: error: missing key 'rules'"),
            (
                "rules: r\nnodes: [a]\nseries:\n  - {variable: V, instance: NodeNum=7, values: \"1\"}\n",
                "x.yaml:4:29: error: series[0].instance: NodeNum must be the number of one of the nodes"
            ),
            (
                "rules: r\nnodes: [a]\nseries:\n  - {variable: V, instance: NodeNum=1, values: \"1 x\"}\n",
                "values: 'x' is not a number"
            ),
        ]
        for (text, expected) in cases {
            #expect(throws: YAMLError.self) { try ScenarioParser.parse(text, file: "x.yaml") }
            do {
                _ = try ScenarioParser.parse(text, file: "x.yaml")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
            }
        }
    }
}
