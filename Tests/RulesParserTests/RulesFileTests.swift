import RulesParser
import Testing

@Suite("rules.hacmprd")
struct RulesFileTests {
    @Test("the node_up example of SPEC section 2 is clean")
    func nodeUpExample() throws {
        let rules = parseRules(try fixture("node_up.hacmprd"))
        #expect(rules.diagnostics.isEmpty, "\(rules.diagnostics)")
        #expect(rules.definitionCount == 1)
        let definition = try #require(rules.definitions.first)
        #expect(definition.trigger == .init(name: "TE_JOIN_NODE", state: 0))
        #expect(definition.displayName == "node_up")
        #expect(definition.recoveryProgram == "/usr/sbin/cluster/events/node_up.rp")
        #expect(definition.recoveryType == 2)
        #expect(definition.recoveryLevel == 0)
        #expect(definition.monitoring == nil)
        #expect(definition.line == 3)
        #expect(definition.recoveryProgramLine == 5)
    }

    @Test("the db2_paging example of SPEC section 2 is clean")
    func db2PagingExample() throws {
        let rules = parseRules(try fixture("db2_paging.hacmprd"))
        #expect(rules.diagnostics.isEmpty, "\(rules.diagnostics)")
        let definition = try #require(rules.definitions.first)
        #expect(definition.displayName == "db2_paging")
        let monitoring = try #require(definition.monitoring)
        #expect(monitoring.variable == "IBM.PSSP.aixos.PagSp.%totalused")
        #expect(monitoring.instances == .everyNode)
        #expect(monitoring.predicate.description == "(X > 70)")
        #expect(monitoring.rearmPredicate?.description == "(X < 60)")
    }

    @Test("display name falls back to the .rp base name")
    func displayNameFromProgram() throws {
        let rules = parseRules(definition("e", "0", "/etc/hamn/rules/net_down.rp"))
        #expect(rules.definitions.first?.displayName == "net_down")
    }

    @Test("a display name comment names the next definition only")
    func displayNameComment() throws {
        let text =
            "##### Beginning of the Event Definition: first one\n" + definition("a") + definition("b", "0", "/x/b.rp")
        let rules = parseRules(text)
        #expect(rules.definitions.map(\.displayName) == ["first one", "b"])
    }

    static let cases: [(String, String, [Finding])] = [
        ("R001 incomplete last definition", definition() + "extra_event\n0\n", [Finding(.R001, 10, 1)]),
        ("R001 counts comment-free lines", "# c\n" + definition() + "# c\nextra\n", [Finding(.R001, 12, 1)]),
        ("R002 one empty line at the end", definition() + "\n", [Finding(.R002, 10, 1)]),
        ("R002 three empty lines at the end", definition() + "\n\n\n", [Finding(.R002, 10, 1)]),
        ("R002 blank lines with spaces", definition() + "  \n", [Finding(.R018, 10, 1), Finding(.R002, 10, 1)]),
        ("R003 empty event name", definition(""), [Finding(.R003, 1, 1)]),
        ("R003 white space in the name", definition("my event"), [Finding(.R003, 1, 3)]),
        ("R005 duplicate trigger", definition() + definition(), [Finding(.R005, 10, 1)]),
        ("R006 same name, other state", definition("e", "0") + definition("e", "1"), [Finding(.R006, 10, 1)]),
        ("R006 not for TE_FAIL_NODE's states", definition("TE_FAIL_NODE", "0") + definition("TE_FAIL_NODE", "3"), []),
        (
            "R006 for a state TE_JOIN_NODE never has",
            definition("TE_JOIN_NODE", "0") + definition("TE_JOIN_NODE", "1"),
            [Finding(.R006, 10, 1), Finding(.R024, 10, 1)]
        ),
        ("R024 TE_QUORUM_LOST with a state never raised", definition("TE_QUORUM_LOST", "1"), [Finding(.R024, 1, 1)]),
        ("R024 not for TE_FAIL_NODE state 3", definition("TE_FAIL_NODE", "3"), []),
        ("TE_QUORUM_LOST state 0 is a cluster event", definition("TE_QUORUM_LOST", "0"), []),
        ("R007 state", definition("e", "zero"), [Finding(.R007, 2, 1)]),
        ("R007 recovery type", definition("e", "0", "/x.rp", "2a"), [Finding(.R007, 4, 1)]),
        ("R007 empty recovery level", definition("e", "0", "/x.rp", "2", ""), [Finding(.R007, 5, 1)]),
        ("R008 empty path", definition("e", "0", ""), [Finding(.R008, 3, 1)]),
        ("R008 relative path", definition("e", "0", "rules/x.rp"), [Finding(.R008, 3, 1)]),
        (
            "R011 variable without predicate",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*"),
            [Finding(.R011, 8, 1)]
        ),
        (
            "R012 instance vector without variable", definition("e", "0", "/x.rp", "2", "0", "", "NodeNum=*"),
            [Finding(.R012, 7, 1)]
        ),
        (
            "R012 each of fields 7 to 9", definition("e", "0", "/x.rp", "2", "0", "", "NodeNum=*", "X > 1", "X < 1"),
            [Finding(.R012, 7, 1), Finding(.R012, 8, 1), Finding(.R012, 9, 1)]
        ),
        (
            "R013 element without =",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.Prog.pcount", "NodeNum=*;ProgName", "X@0 < X@1"),
            [Finding(.R013, 7, 11)]
        ),
        (
            "R013 element the variable does not have",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*;Name=/tmp", "X > 1"),
            [Finding(.R013, 7, 11)]
        ),
        (
            "R013 element without a value",
            definition("e", "0", "/x.rp", "2", "0", "HAMN.File.Age", "Name=", "X > 1"), [Finding(.R013, 7, 5)]
        ),
        (
            "R014 unknown variable", definition("e", "0", "/x.rp", "2", "0", "Site.Queue.Depth", "NodeNum=*", "X > 1"),
            [Finding(.R014, 6, 1)]
        ),
        (
            "R015 predicate",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > > 70"),
            [Finding(.R015, 8, 5)]
        ),
        (
            "R015 predicate with leading blanks",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "  (X > 70"),
            [Finding(.R015, 8, 10)]
        ),
        (
            "R015 bad regular expression",
            definition("e", "0", "/x.rp", "2", "0", "HAMN.DB2.HADR", "Database=XCATDB;NodeNum=*", "X.Role =~ \"(Pri\""),
            [Finding(.R015, 8, 11)]
        ),
        (
            "R016 rearm predicate",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > 70", "X <"),
            [Finding(.R016, 9, 4)]
        ),
        ("R018 trailing blanks", definition("e  "), [Finding(.R018, 1, 2)]),
        ("R019 empty file", "", [Finding(.R019, 1, 1)]),
        ("R019 only comments", "# nothing\n#\n", [Finding(.R019, 1, 1)]),
        (
            "R021 empty instance vector",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "", "X > 70"),
            [Finding(.R021, 7, 1)]
        ),
        (
            "R022 rearm identical to predicate",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > 70", "X>70"),
            [Finding(.R022, 9, 1)]
        ),
        (
            "R023 string field compared with a number",
            definition("e", "0", "/x.rp", "2", "0", "HAMN.DB2.HADR", "Database=XCATDB;NodeNum=*", "X.Role == 1"),
            [Finding(.R023, 8, 8)]
        ),
        (
            "R023 field the variable does not have",
            definition(
                "e", "0", "/x.rp", "2", "0", "HAMN.DB2.HADR", "Database=XCATDB;NodeNum=*", "X.Rol == \"Primary\""),
            [Finding(.R023, 8, 1)]
        ),
        (
            "R023 field number out of range",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.Prog.pcount", "ProgName=nfsd;NodeNum=*", "X@3 > 1"),
            [Finding(.R023, 8, 1)]
        ),
        (
            "R023 number variable compared with a string",
            definition(
                "e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > 70", "X == \"low\""),
            [Finding(.R023, 9, 3)]
        ),
        (
            "R023 structured value used whole",
            definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.Prog.pcount", "ProgName=nfsd;NodeNum=*", "X < 1"),
            [Finding(.R023, 8, 1)]
        ),
    ]

    @Test("each diagnostic code at its line and column", arguments: cases)
    func diagnostic(_ name: String, _ text: String, _ expected: [Finding]) {
        let rules = parseRules(text)
        #expect(
            findings(rules.diagnostics)
                == expected.sorted { ($0.line, $0.column, $0.code.rawValue) < ($1.line, $1.column, $1.code.rawValue) },
            "\(name): \(rules.diagnostics.map(\.formatted))")
    }

    @Test("R017 on every CRLF line, stripped")
    func crlf() throws {
        let text = definition("e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > 70")
            .replacingOccurrences(of: "\n", with: "\r\n")
        let rules = parseRules(text)
        #expect(rules.diagnostics.allSatisfy { $0.code == .R017 })
        #expect(findings(rules.diagnostics).map(\.line) == Array(1...9))
        #expect(rules.diagnostics.first?.column == 2)
        let definition = try #require(rules.definitions.first)
        #expect(definition.trigger.name == "e")
        #expect(definition.monitoring?.predicate.description == "(X > 70)")
    }

    @Test("the R015 line is the one SPEC section 8 shows")
    func formattedLine() throws {
        let text =
            String(repeating: "# c\n", count: 34)
            + definition(
                "e", "0", "/x.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > > 70")
        let diagnostic = try #require(parseRules(text).diagnostics.first)
        #expect(
            diagnostic.formatted
                == "rules.hacmprd:42:5: error: R015: predicate: unexpected token '>' (expected an operand)")
    }

    @Test("a definition with an error is not returned, the others are")
    func partialResults() {
        let rules = parseRules(definition("a") + definition("b", "x") + definition("c", "0", "/c.rp"))
        #expect(rules.definitions.map(\.trigger.name) == ["a", "c"])
        #expect(rules.definitionCount == 3)
    }

    @Test("configured variables are known and typed")
    func configuredVariable() {
        let queue = ResourceVariable(
            name: "Site.Queue", kind: .structured([.init("Depth", .number), .init("Owner", .string)]),
            instanceElements: ["NodeNum", "Queue"], summary: "")
        let catalogue = VariableCatalogue.builtIn.adding([queue])
        let good = parseRules(
            definition("e", "0", "/x.rp", "2", "0", "Site.Queue", "Queue=in;NodeNum=*", "X.Depth > 100"),
            catalogue: catalogue)
        #expect(good.diagnostics.isEmpty)
        let bad = parseRules(
            definition("e", "0", "/x.rp", "2", "0", "Site.Queue", "Queue=in;NodeNum=*", "X.Owner > 100"),
            catalogue: catalogue)
        #expect(findings(bad.diagnostics) == [Finding(.R023, 8, 9)])
    }

    @Test(
        "the same texts over many definitions: each checked for its own variable, each definition its own lines (what validate keeps is per variable)"
    )
    func repeatedTexts() throws {
        // The same instance vector under three variables: fine for two, not for the paging one;
        // each definition's R013 at its own line; the paths and names as written.
        var text = ""
        for round in 0..<3 {
            text += definition(
                "fs\(round)", "0", "/p/a.rp", "2", "0", "IBM.PSSP.aixos.FS.%totused", "NodeNum=*;Name=/var", "X > 1")
            text += definition(
                "pg\(round)", "0", "/p/b.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*;Name=/var",
                "X > 1")
            text += definition("nu\(round)", "0", "/p/a.rp", "2", "0", "HAMN.File.Age", "NodeNum=*;Name=/var", "X > 1")
        }
        let rules = parseRules(text)
        #expect(findings(rules.diagnostics) == (0..<3).map { Finding(.R013, 27 * $0 + 16, 11) })
        #expect(rules.definitions.map(\.trigger.name) == (0..<3).flatMap { ["fs\($0)", "nu\($0)"] })
        #expect(rules.definitions.map(\.recoveryProgram) == Array(repeating: "/p/a.rp", count: 6))
        #expect(rules.definitions.map(\.displayName) == Array(repeating: "a", count: 6))
        #expect(rules.recoveryProgramReferences.map(\.path) == (0..<9).map { $0 % 3 == 1 ? "/p/b.rp" : "/p/a.rp" })
    }

    @Test("chains in a rules file: 2,000 terms are clean, deep parentheses are R015/R016 at their line and column")
    func chainsAndNesting() throws {
        let variable = "IBM.PSSP.aixos.PagSp.%totalused"
        let chain = (0..<2_000).map { "X > \($0)" }.joined(separator: " || ")
        let rearm = (0..<2_000).map { "X < \($0)" }.joined(separator: " && ")
        let clean = parseRules(definition("e", "0", "/x.rp", "2", "0", variable, "NodeNum=*", chain, rearm))
        #expect(clean.diagnostics.isEmpty, "\(clean.diagnostics)")
        // The same chain twice is R022, found through the chain's links.
        let same = parseRules(definition("e", "0", "/x.rp", "2", "0", variable, "NodeNum=*", chain, "  " + chain))
        #expect(findings(same.diagnostics) == [Finding(.R022, 9, 3)])
        let deep = String(repeating: "(", count: 300) + "X > 1" + String(repeating: ")", count: 300)
        let refused = parseRules(definition("e", "0", "/x.rp", "2", "0", variable, "NodeNum=*", deep, "  " + deep))
        #expect(findings(refused.diagnostics) == [Finding(.R015, 8, 202), Finding(.R016, 9, 204)])
        #expect(
            refused.diagnostics.map(\.message).allSatisfy {
                $0.hasSuffix("expression nested too deeply (more than 200 levels)")
            })
    }
}
