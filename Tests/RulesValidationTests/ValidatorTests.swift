import Foundation
import RulesParser
import RulesValidation
import Testing

private func codes(_ report: ValidationReport) -> [String] {
    report.diagnostics.map { "\($0.code.rawValue)@\(($0.file as NSString).lastPathComponent):\($0.line):\($0.column)" }
}

@Suite("validate: files, permissions and commands")
struct ValidatorTests {
    /// A clean tree: node_up with bundled event scripts, db2_paging with an absolute command.
    func cleanTree() throws -> TempTree {
        let tree = try TempTree()
        for script in ["node_up_local", "node_up_remote", "node_up_local_complete", "node_up_remote_complete"] {
            try tree.script("rules/events/\(script)")
        }
        try tree.write(
            "rules/node_up.rp",
            """
            event "node_up_local" 0 NULL
            other "node_up_remote" 0 NULL
            barrier
            event "node_up_local_complete" 0 NULL
            other "node_up_remote_complete" 0 NULL

            """)
        try tree.write("rules/db2_paging.rp", "all \"/bin/true --paging\" 0 NULL\n")
        try tree.write(
            "rules/rules.hacmprd",
            definition("TE_JOIN_NODE", tree.path("rules/node_up.rp"))
                + definition(
                    "db2_paging", tree.path("rules/db2_paging.rp"), variable: "IBM.PSSP.aixos.PagSp.%totalused",
                    instances: "NodeNum=*", predicate: "X > 70", rearm: "X < 60"))
        return tree
    }

    @Test("a clean tree has no findings")
    func clean() throws {
        let tree = try cleanTree()
        let report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(report.diagnostics.isEmpty, "\(report.text)")
        #expect(report.definitions == 2)
        #expect(report.exitCode(strict: true) == 0)
    }

    @Test("R009: a missing .rp is reported once, at its first mention")
    func missingProgram() throws {
        let tree = try TempTree()
        let missing = tree.path("rules/gone.rp")
        try tree.write("rules/rules.hacmprd", definition("a", missing) + definition("b", missing))
        let report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(report) == ["R009@rules.hacmprd:3:1"])
        #expect(report.exitCode(strict: false) == 1)
    }

    @Test("R009: a .rp that is a directory or not text")
    func unusableProgram() throws {
        let tree = try TempTree()
        try FileManager.default.createDirectory(atPath: tree.path("rules/dir.rp"), withIntermediateDirectories: true)
        try tree.write("rules/binary.rp", "all \"/bin/true\" 0 NULL\n\0")
        try tree.write(
            "rules/rules.hacmprd",
            definition("a", tree.path("rules/dir.rp")) + definition("b", tree.path("rules/binary.rp")))
        let report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(report) == ["R009@rules.hacmprd:3:1", "R009@rules.hacmprd:12:1"])
        #expect(report.diagnostics.last?.message.contains("not a text file") == true)
    }

    @Test("a .rp named many times is checked and reported once")
    func programOnce() throws {
        let tree = try TempTree()
        let program = try tree.write("rules/bad.rp", "evnt \"/bin/true\" 0 NULL\n")
        try tree.write(
            "rules/rules.hacmprd", definition("a", program) + definition("b", program) + definition("c", program))
        let report = Validator().validate([tree.path("rules/rules.hacmprd"), program])
        // Once through the rules file, once more because it was given directly too.
        #expect(codes(report) == ["P001@bad.rp:1:1", "P001@bad.rp:1:1"])
        let once = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(once) == ["P001@bad.rp:1:1"])
    }

    @Test("P011: an 'other' step in TE_QUORUM_LOST's program (it runs on one node), also when the .rp is shared")
    func quorumLostOtherStep() throws {
        let tree = try TempTree()
        let program = try tree.write(
            "rules/release.rp", "event \"/bin/true\" 0 NULL\nother \"/bin/true\" 0 NULL\nall \"/bin/true\" 0 NULL\n")
        try tree.write("rules/rules.hacmprd", definition("a", program) + definition("TE_QUORUM_LOST", program))
        let report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(report) == ["P011@release.rp:2:1"])
        #expect(
            report.diagnostics.first?.message
                == "TE_QUORUM_LOST runs on the node that lost quorum alone: this 'other' step never runs (use event or all)"
        )
        #expect(report.exitCode(strict: false) == 0)
        #expect(report.exitCode(strict: true) == 1)
        // The same program for another event only: no finding.
        try tree.write("rules/rules.hacmprd", definition("a", program))
        #expect(codes(Validator().validate([tree.path("rules/rules.hacmprd")])).isEmpty)
    }

    @Test("R020: rules file, .rp and command writable by others")
    func writableByOthers() throws {
        let tree = try cleanTree()
        chmod(tree.path("rules/rules.hacmprd"), 0o666)
        chmod(tree.path("rules/node_up.rp"), 0o664)
        chmod(tree.path("rules/events/node_up_remote"), 0o777)
        let report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(report) == ["R020@rules.hacmprd:1:1", "R020@node_up.rp:1:1", "R020@node_up.rp:2:8"])
        #expect(report.diagnostics[0].message.contains("writable by others"))
        #expect(report.diagnostics[1].message.contains("writable by its group"))
    }

    @Test("R020: files owned by another user")
    func ownedByAnother() throws {
        var files = InMemoryFileSystem()
        files.add("/etc/hamn/rules.hacmprd", definition("a", "/etc/hamn/a.rp"), owner: 1000)
        files.add("/etc/hamn/a.rp", "all \"/usr/local/bin/x\" 0 NULL\n", owner: 1001)
        files.add("/usr/local/bin/x", "#!/bin/sh\n", mode: 0o755, owner: 1002)
        let validator = Validator(options: .init(serviceUser: 0), fileSystem: files)
        let report = validator.validate(["/etc/hamn/rules.hacmprd"])
        #expect(codes(report) == ["R020@rules.hacmprd:1:1", "R020@a.rp:1:1", "R020@a.rp:1:6"])
        #expect(report.diagnostics[2].message.contains("owned by uid 1002"))
        // The service's own user may own them.
        let asUser = Validator(options: .init(serviceUser: 1000), fileSystem: files).validate([
            "/etc/hamn/rules.hacmprd"
        ])
        #expect(codes(asUser) == ["R020@a.rp:1:1", "R020@a.rp:1:6"])
    }

    @Test("P006 and P007: relative and missing commands")
    func commands() throws {
        let tree = try TempTree()
        try tree.script("rules/events/bundled")
        try tree.write("rules/events/not_executable", "#!/bin/sh\n", mode: 0o644)
        try tree.write("/bin/plain", "data\n", mode: 0o644)
        let program = try tree.write(
            "rules/x.rp",
            """
            all "bundled --arg" 0 NULL
            all "bin/tool" 0 NULL
            all "wall" 0 NULL
            all "\(tree.path("nowhere/tool"))" 0 NULL
            all "\(tree.path("/bin/plain"))" 0 NULL
            all "not_executable" 0 NULL
            all "LANG=C /bin/true" x NULL

            """)
        let report = Validator().validate([program])
        #expect(codes(report) == ["P006@x.rp:2:6", "P006@x.rp:3:6", "P007@x.rp:4:6", "P007@x.rp:5:6", "P007@x.rp:6:6"])
    }

    @Test("--root resolves absolute paths under the staged tree and skips P007")
    func root() throws {
        let tree = try TempTree()
        try tree.write(
            "etc/hamn/rules.hacmprd", definition("a", "/etc/hamn/a.rp") + definition("b", "/etc/hamn/gone.rp"))
        try tree.write("etc/hamn/a.rp", "all \"/opt/site/bin/not-installed-here\" 0 NULL\nall \"wall\" 0 NULL\n")
        let report = Validator(options: .init(root: tree.root)).validate([tree.path("etc/hamn/rules.hacmprd")])
        #expect(codes(report) == ["R009@rules.hacmprd:12:1", "P006@a.rp:2:6"])
        #expect(report.diagnostics[0].message == "recovery program '/etc/hamn/gone.rp' not found")
    }

    @Test("F001, F002, F003: input that cannot be read exits 2")
    func unreadable() throws {
        let tree = try TempTree()
        try tree.write("binary.hacmprd", "TE_JOIN_NODE\n0\n/x\0.rp\n")
        try tree.write("big.hacmprd", String(repeating: "# comment\n", count: 200))
        mkfifo(tree.path("fifo.hacmprd"), 0o644)
        let validator = Validator(options: .init(sizeLimit: 1000))
        let report = validator.validate([
            tree.path("missing.hacmprd"), tree.path("binary.hacmprd"), tree.path("big.hacmprd"),
            tree.path("fifo.hacmprd"),
            tree.root,
        ])
        #expect(
            codes(report) == [
                "F001@missing.hacmprd:1:1", "F002@binary.hacmprd:3:3", "F003@big.hacmprd:1:1", "F001@fifo.hacmprd:1:1",
                "F001@\((tree.root as NSString).lastPathComponent):1:1",
            ])
        #expect(report.exitCode(strict: false) == 2)
    }

    @Test("exit status: warnings pass unless --strict")
    func exitCodes() throws {
        var files = InMemoryFileSystem()
        files.add("/r/rules.hacmprd", "# nothing here\n")
        let report = Validator(fileSystem: files).validate(["/r/rules.hacmprd"])
        #expect(codes(report) == ["R019@rules.hacmprd:1:1"])
        #expect(report.exitCode(strict: false) == 0)
        #expect(report.exitCode(strict: true) == 1)
    }
}

@Suite("validate: the command line")
struct ValidateCommandTests {
    @Test("text output, summary and exit 1 on errors")
    func text() throws {
        let tree = try TempTree()
        let rules = try tree.write("rules.hacmprd", definition("bad name", tree.path("a.rp")))
        try tree.write("a.rp", "all \"/bin/true\" 0 NULL\n")
        let result = try runCLI(["validate", rules])
        #expect(result.status == 1)
        #expect(result.out == "\(rules):1:4: error: R003: event name 'bad name' contains white space\n")
        #expect(result.err.contains("1 event definition: 1 error, 0 warnings"))
    }

    @Test("JSON output has the documented shape")
    func json() throws {
        let tree = try TempTree()
        let rules = try tree.write("rules.hacmprd", definition("ok", tree.path("a.rp")) + "\n")
        try tree.write("a.rp", "all \"/bin/true\" 0 NULL\n")
        let result = try runCLI(["validate", "--format", "json", rules])
        #expect(result.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        #expect(object["definitions"] as? Int == 1)
        let diagnostics = try #require(object["diagnostics"] as? [[String: Any]])
        #expect(diagnostics.count == 1)
        #expect(diagnostics[0]["file"] as? String == rules)
        #expect(diagnostics[0]["line"] as? Int == 10)
        #expect(diagnostics[0]["column"] as? Int == 1)
        #expect(diagnostics[0]["severity"] as? String == "error")
        #expect(diagnostics[0]["code"] as? String == "R002")
    }

    @Test("--strict, usage errors and unreadable input")
    func exitStatuses() throws {
        let tree = try TempTree()
        let rules = try tree.write("rules.hacmprd", "# empty\n")
        #expect(try runCLI(["validate", rules]).status == 0)
        #expect(try runCLI(["validate", "--strict", rules]).status == 1)
        #expect(try runCLI(["validate"]).status == 2)
        #expect(try runCLI(["validate", "--format", "xml", rules]).status == 2)
        #expect(try runCLI(["validate", tree.path("missing")]).status == 2)
        #expect(try runCLI(["validate", "--root", tree.path("nodir"), rules]).status == 2)
        let badConfig = try tree.write("bad.yaml", "variables: [1, 2\n")
        let config = try runCLI(["validate", "--config", badConfig, rules])
        #expect(config.status == 2)
        #expect(config.err.contains("bad.yaml:"))
    }

    @Test("--config makes a configured variable known")
    func config() throws {
        let tree = try TempTree()
        try tree.write("a.rp", "all \"/bin/true\" 0 NULL\n")
        let rules = try tree.write(
            "rules.hacmprd",
            definition(
                "q", tree.path("a.rp"), variable: "Site.Queue.Depth", instances: "NodeNum=*", predicate: "X > 100"))
        let without = try runCLI(["validate", rules])
        #expect(without.out.contains("R014"))
        let configuration = try tree.write(
            "hamn.yaml", "variables:\n  - name: Site.Queue.Depth\n    command: /bin/true\n")
        let with = try runCLI(["validate", "--config", configuration, rules])
        #expect(with.out == "")
        #expect(with.status == 0)
    }

    @Test("--help answers")
    func help() throws {
        let result = try runCLI(["validate", "--help"])
        #expect(result.status == 0)
        #expect(result.out.contains("--root"))
        #expect(result.out.contains("--strict"))
    }
}
