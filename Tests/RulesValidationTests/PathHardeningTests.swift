import Foundation
import RulesParser
import RulesValidation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

private func codes(_ report: ValidationReport) -> [String] {
    report.diagnostics.map { "\($0.code.rawValue)@\(($0.file as NSString).lastPathComponent):\($0.line):\($0.column)" }
}

/// Issue 16, findings 4, 5 and 6: R020 over the whole path, `--root` kept inside the staged
/// tree, and regular expressions too complex to compile.
@Suite("validate: paths, staged trees and regular expressions", .serialized)
struct PathHardeningTests {
    static let nobody: uid_t = 65534

    /// rules/rules.hacmprd -> rules/a.rp -> site/bin/action.
    func tree() throws -> TempTree {
        let tree = try TempTree()
        try tree.script("site/bin/action")
        try tree.write("rules/a.rp", "all \"\(tree.path("site/bin/action"))\" 0 NULL\n")
        try tree.write("rules/rules.hacmprd", definition("a", tree.path("rules/a.rp")))
        return tree
    }

    @Test("R020: a directory above the command that others can write, or another user owns")
    func commandDirectory() throws {
        let tree = try tree()
        #expect(codes(Validator().validate([tree.path("rules/rules.hacmprd")])).isEmpty)
        chmod(tree.path("site"), 0o777)
        var report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(report) == ["R020@a.rp:1:6"])
        #expect(
            report.diagnostics.first?.message
                == "command '\(tree.path("site/bin/action"))' is under \(tree.path("site")), a directory writable by others (mode 777): they could replace what it holds; chmod go-w \(tree.path("site"))"
        )
        chmod(tree.path("site"), 0o755)
        chown(tree.path("site/bin"), Self.nobody, Self.nobody)
        report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(report) == ["R020@a.rp:1:6"])
        #expect(report.diagnostics.first?.message.contains("a directory owned by uid 65534") == true)
        // A root-owned sticky directory (as /tmp) is accepted: only an entry's owner or root can
        // rename or remove the entry there, and the entry below is checked for its owner.
        chown(tree.path("site/bin"), 0, 0)
        chmod(tree.path("site"), 0o1777)
        #expect(codes(Validator().validate([tree.path("rules/rules.hacmprd")])).isEmpty)
        chown(tree.path("site/bin"), Self.nobody, Self.nobody)
        #expect(codes(Validator().validate([tree.path("rules/rules.hacmprd")])) == ["R020@a.rp:1:6"])
    }

    @Test("R020: the directories of the rules and .rp files, and a link another user owns")
    func rulesDirectoryAndLinks() throws {
        let tree = try tree()
        chmod(tree.path("rules"), 0o775)
        let report = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(report) == ["R020@rules.hacmprd:1:1", "R020@a.rp:1:1"])
        #expect(report.diagnostics.allSatisfy { $0.message.contains("a directory writable by its group (mode 775)") })
        chmod(tree.path("rules"), 0o755)
        // The command reached through a link that another user owns (and so can repoint).
        try FileManager.default.createDirectory(atPath: tree.path("links"), withIntermediateDirectories: true)
        chmod(tree.path("links"), 0o755)
        symlink(tree.path("site/bin/action"), tree.path("links/action"))
        lchown(tree.path("links/action"), Self.nobody, Self.nobody)
        try tree.write("rules/a.rp", "all \"\(tree.path("links/action"))\" 0 NULL\n")
        let linked = Validator().validate([tree.path("rules/rules.hacmprd")])
        #expect(codes(linked) == ["R020@a.rp:1:6"])
        #expect(
            linked.diagnostics.first?.message.contains("through the symbolic link \(tree.path("links/action"))") == true
        )
        // And the directory the link leads to is checked too.
        lchown(tree.path("links/action"), 0, 0)
        chmod(tree.path("site/bin"), 0o757)
        #expect(codes(Validator().validate([tree.path("rules/rules.hacmprd")])) == ["R020@a.rp:1:6"])
    }

    @Test("validate --root stays in the staged tree: a link to a secret outside is never read nor shown")
    func rootKeepsLinksInside() throws {
        let outside = try TempTree()
        let secret = try outside.write("shadow", "root:$6$SECRETHASH$abcdef:19000:0:99999:7:::\n", mode: 0o600)
        let staged = try TempTree()
        let rules = try staged.write(
            "etc/hamn/rules.hacmprd",
            definition("a", "/etc/hamn/a.rp") + definition("b", "/etc/hamn/b.rp") + definition("c", "/etc/hamn/c.rp"))
        try FileManager.default.createSymbolicLink(atPath: staged.path("etc/hamn/a.rp"), withDestinationPath: secret)
        try FileManager.default.createSymbolicLink(
            atPath: staged.path("etc/hamn/b.rp"), withDestinationPath: "../../../../../../../../.." + secret)
        try FileManager.default.createSymbolicLink(
            atPath: staged.path("etc/hamn/c.rp"), withDestinationPath: "/etc/shadow")
        let result = try runCLI(["validate", "--root", staged.root, rules])
        #expect(result.status == 1)
        #expect(!result.out.contains("SECRETHASH") && !result.err.contains("SECRETHASH"), "\(result.out)")
        #expect(!result.out.contains("$6$") && !result.out.contains("root:"), "\(result.out)")
        // Each link leads inside the tree, where there is no such file: a.rp and b.rp to the
        // same one (reported once, at its first mention), c.rp to the tree's etc/shadow.
        #expect(
            result.out.components(separatedBy: "\n").filter { $0.contains("R009") } == [
                "\(rules):3:1: error: R009: recovery program '/etc/hamn/a.rp' not found",
                "\(rules):21:1: error: R009: recovery program '/etc/hamn/c.rp' not found",
            ], "\(result.out)")
        // The rules file itself, named inside the tree, is resolved there too.
        try FileManager.default.removeItem(atPath: rules)
        try FileManager.default.createSymbolicLink(atPath: rules, withDestinationPath: secret)
        let linked = try runCLI(["validate", "--root", staged.root, rules])
        #expect(linked.status == 2)
        #expect(!linked.out.contains("SECRETHASH") && !linked.err.contains("SECRETHASH"), "\(linked.out)")
        // A link that stays inside the tree is followed.
        try FileManager.default.removeItem(atPath: rules)
        try staged.write("etc/hamn/real.hacmprd", definition("a", "/etc/hamn/inside.rp"))
        try staged.write("etc/hamn/inside.rp", "all \"/bin/true\" 0 NULL\n")
        try FileManager.default.createSymbolicLink(atPath: rules, withDestinationPath: "/etc/hamn/real.hacmprd")
        let inside = try runCLI(["validate", "--root", staged.root, rules])
        #expect(inside.status == 0, "\(inside.out)\(inside.err)")
    }

    /// 31 bytes that glibc's regcomp expands to a million positions (1.2 GB before the fix).
    static let pathologicalPattern = "^(((ab{1,100}){1,100}){1,100})$"

    @Test("a regular expression too complex to compile is R015 at its column, and validate stays small")
    func tooComplexRegularExpression() throws {
        let tree = try TempTree()
        try tree.write("a.rp", "all \"/bin/true\" 0 NULL\n")
        let rules = try tree.write(
            "rules.hacmprd",
            definition(
                "hadr", tree.path("a.rp"), variable: "HAMN.DB2.HADR", instances: "Database=X;NodeNum=*",
                predicate: "X.Role =~ \"\(Self.pathologicalPattern)\""))
        let result = try runCLI(["validate", rules])
        #expect(result.status == 1)
        #expect(
            result.out.hasPrefix(
                "\(rules):8:11: error: R015: predicate: regular expression does not compile: too complex: it expands to"
            ),
            "\(result.out)")
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        #expect(usage.ru_maxrss < 200 * 1024, "peak memory of validate: \(usage.ru_maxrss) KiB")
        #expect(RegularExpressionCost.estimate(Self.pathologicalPattern).branches > 100_000)
        // The limits: 1,000 optional branches pass, 1,001 do not; a long literal is positions.
        #expect(RegularExpressionCost.problem("a{0,1000}") == nil)
        #expect(
            RegularExpressionCost.problem("a{0,1001}")?.hasPrefix("too complex: it expands to 1001 optional") == true)
        #expect(RegularExpressionCost.problem(String(repeating: "a", count: 100_000)) == nil)
        #expect(
            RegularExpressionCost.problem(String(repeating: "a", count: 100_001))?.contains("100001 positions") == true)
        #expect(RegularExpressionCost.problem("^db2(sysc|acd)[0-9]{1,4}$") == nil)
    }
}
