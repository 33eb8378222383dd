import Foundation
import RulesEngine
import RulesParser
import RulesValidation
import TestSupport
import Testing

/// What is true of every shipped tree (rules/, samples/db2, samples/xcat-hamn, samples/walkthrough) as a whole:
/// it validates clean, its files have the modes the validator and the scripts require, its
/// scripts parse, and its scenarios pass (and would fail if the rules did something else).
@Suite("shipped trees: validation, modes, scenarios", .timeLimit(.minutes(1)))
struct ShippedTreeTests {
    struct Tree: Sendable, CustomStringConvertible {
        var root: String
        var rules: String
        var definitions: Int
        var description: String { rules }
    }

    static let trees = [
        Tree(root: "rules", rules: "rules/etc/hamn/rules.hacmprd", definitions: 11),
        Tree(root: "samples/db2", rules: "samples/db2/etc/hamn/db2/rules.hacmprd", definitions: 4),
        Tree(root: "samples/xcat-hamn", rules: "samples/xcat-hamn/etc/hamn/rules.hacmprd", definitions: 10),
        // The README's "Install on a cluster" (scripts/test-walkthrough runs it on two nodes).
        Tree(root: "samples/walkthrough", rules: "samples/walkthrough/etc/hamn/rules.hacmprd", definitions: 1),
    ]

    @Test("validate --root is clean: no error, no warning", arguments: trees)
    func validates(_ tree: Tree) {
        let report = Validator(options: .init(root: repositoryRoot + "/" + tree.root)).validate([
            repositoryRoot + "/" + tree.rules
        ])
        #expect(report.diagnostics.map { "\($0.file):\($0.line): \($0.code): \($0.message)" } == [])
        #expect(report.definitions == tree.definitions)
    }

    /// Every regular file under the tree, relative to the repository.
    static func files(under directory: String) -> [String] {
        let base = repositoryRoot + "/" + directory
        let enumerator = FileManager.default.enumerator(atPath: base)
        var found: [String] = []
        while let next = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + next, isDirectory: &isDirectory),
                !isDirectory.boolValue
            {
                found.append(directory + "/" + next)
            }
        }
        return found.sorted()
    }

    @Test("scripts are 0755 POSIX sh that parses; everything else is 0644", arguments: trees)
    func modes(_ tree: Tree) throws {
        let files = Self.files(under: tree.root)
        #expect(files.count >= 3)
        var scripts = 0
        for file in files {
            let path = repositoryRoot + "/" + file
            var info = stat()
            #expect(stat(path, &info) == 0)
            let text = try String(contentsOfFile: path, encoding: .utf8)
            if text.hasPrefix("#!") {
                scripts += 1
                #expect(info.st_mode & 0o7777 == 0o755, "\(file)")
                #expect(text.hasPrefix("#!/bin/sh\n"), "\(file)")
                let syntax = try runTool("/bin/sh", ["-n", path])
                #expect(syntax.status == 0, "\(file): \(syntax.err)")
                let posix = try runTool("/usr/bin/bash", ["--posix", "-n", path])
                #expect(posix.status == 0, "\(file): \(posix.err)")
            } else {
                #expect(info.st_mode & 0o7777 == 0o644, "\(file)")
            }
        }
        #expect(scripts > 0)
    }

    static var scenarioFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/scenarios")) ?? [])
            .filter {
                ($0.hasPrefix("rules-") || $0.hasPrefix("db2-") || $0.hasPrefix("xcat-")) && $0.hasSuffix(".yaml")
            }.sorted()
    }

    @Test("there is a scenario for each tree, and each of them passes")
    func scenarios() throws {
        let names = Self.scenarioFiles
        #expect(
            names.contains { $0.hasPrefix("rules-") } && names.contains { $0.hasPrefix("db2-") }
                && names.contains { $0.hasPrefix("xcat-") })
        for name in names {
            let scenario = try ScenarioRunner.load(repositoryRoot + "/scenarios/" + name)
            #expect(scenario.expect != nil, "\(name) expects something")
            let check = ScenarioCheck(try ScenarioRunner.run(scenario))
            #expect(check.differences == [], "\(name)")
        }
    }

    /// A scenario with one expectation changed must fail: the scenarios check what happens.
    @Test(
        "a scenario whose expectation is changed fails",
        arguments: [
            (
                "xcat-failover.yaml", "segment: 5, command: /usr/local/sbin/xcat_network_services",
                "segment: 4, command: /usr/local/sbin/xcat_network_services"
            ),
            (
                "xcat-sync-age.yaml",
                "    - {name: xcat_sync_stale, state: 0, node: aixmn2, outcome: completed}\n  commands:", "  commands:"
            ),
            ("db2-paging.yaml", "values: \"50 65 75 92 95 65 55 72 91\"", "values: \"50 65 75 92 95 65 62 72 91\""),
            (
                "rules-node-failure.yaml", "node: n2, segment: 1, command: node_up_local,",
                "node: n2, segment: 0, command: node_up_local,"
            ),
            (
                "rules-stop-modes.yaml", "    - {command: node_down_remote, node: n3}",
                "    - {command: node_down_local_complete, node: n3}"
            ),
            ("quorum-lost-stop.yaml", "no_quorum_policy: {action: stop, delay: 10s}", "no_quorum_policy: freeze"),
            (
                "quorum-lost-stop.yaml", "no_quorum_policy: {action: stop, delay: 10s}",
                "no_quorum_policy: {action: stop, delay: 40s}"
            ),
        ])
    func mutated(_ name: String, _ original: String, _ replacement: String) throws {
        let path = repositoryRoot + "/scenarios/" + name
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains(original))
        let scenario = try ScenarioParser.parse(text.replacingOccurrences(of: original, with: replacement), file: path)
        let check = ScenarioCheck(try ScenarioRunner.run(scenario))
        #expect(!check.passed)
    }
}
